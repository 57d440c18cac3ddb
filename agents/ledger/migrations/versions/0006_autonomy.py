"""Governed autonomy: deferred sends (quiet hours), recalls of autonomous sends, LLM spend per draft,
and the ``autonomy`` approver channel for L5 approvals.

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0003"
branch_labels = None
depends_on = None

OLD_CHANNELS = ("cli", "slack")
NEW_CHANNELS = ("cli", "slack", "autonomy")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _replace_channel_check(values: tuple[str, ...]) -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.drop_constraint("ck_decisions_channel", type_="check")
        batch.create_check_constraint("ck_decisions_channel", _in("approver_channel", values))


def upgrade() -> None:
    op.create_table(
        "deferred_sends",
        sa.Column("deferral_id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("item_id", sa.String(64), sa.ForeignKey("items.item_id"), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("not_before", sa.DateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("released_at", sa.DateTime(), nullable=True),
        sa.UniqueConstraint("item_id", "channel", name="uq_deferred_sends_item_channel"),
    )
    op.create_table(
        "recalls",
        sa.Column("recall_id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("item_id", sa.String(64), sa.ForeignKey("items.item_id"), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("recalled_by", sa.String(128), nullable=False),
        sa.Column("recalled_at", sa.DateTime(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.UniqueConstraint("idempotency_key", name="uq_recalls_idempotency_key"),
    )
    op.create_table(
        "llm_spend",
        sa.Column("spend_id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("packet_id", sa.String(64), nullable=False),
        sa.Column("rep_id", sa.String(128), nullable=True),
        sa.Column("manager_id", sa.String(128), nullable=True),
        sa.Column("drafter", sa.String(128), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_llm_spend_day_rep", "llm_spend", ["day", "rep_id"])
    _replace_channel_check(NEW_CHANNELS)


def downgrade() -> None:
    op.execute("DELETE FROM decisions WHERE approver_channel = 'autonomy'")
    _replace_channel_check(OLD_CHANNELS)
    op.drop_index("ix_llm_spend_day_rep", table_name="llm_spend")
    op.drop_table("llm_spend")
    op.drop_table("recalls")
    op.drop_table("deferred_sends")
