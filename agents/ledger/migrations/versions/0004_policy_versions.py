"""The learning loop (issue 17): policy versions (propose / apply / roll back) and action outcomes.

Revision ID: 0004_policy_versions
Revises: 0002_delivery_outcome_unknown
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_policy_versions"
down_revision = "0002_delivery_outcome_unknown"
branch_labels = None
depends_on = None

POLICY_STATUSES = ("proposed", "applied", "superseded", "rolled back", "rejected")
OUTCOME_DECISIONS = ("approved", "dismissed", "undecided")
FINAL_RESULTS = ("won", "lost", "open")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "policy_versions",
        sa.Column("version_id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("yaml_text", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("policy_version", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=True),
        sa.Column("based_on", sa.Integer(), nullable=True),
        sa.Column("applied_at", sa.DateTime(), nullable=True),
        sa.Column("applied_by", sa.String(128), nullable=True),
        sa.Column("replaced", sa.Integer(), nullable=True),
        sa.CheckConstraint(_in("status", POLICY_STATUSES), name="ck_policy_versions_status"),
    )
    op.create_index(
        "uq_policy_versions_one_applied", "policy_versions", ["status"], unique=True,
        sqlite_where=sa.text("status = 'applied'"), postgresql_where=sa.text("status = 'applied'"),
    )
    op.create_table(
        "action_outcomes",
        sa.Column("item_id", sa.String(64), sa.ForeignKey("items.item_id"), primary_key=True),
        sa.Column("opportunity_id", sa.String(128), nullable=True),
        sa.Column("rule_id", sa.String(128), nullable=False),
        sa.Column("manager_id", sa.String(128), nullable=False),
        sa.Column("rep_id", sa.String(128), nullable=True),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("flagged_on", sa.Date(), nullable=False),
        sa.Column("check_on", sa.Date(), nullable=False),
        sa.Column("aimed_change", sa.String(64), nullable=False),
        sa.Column("achieved", sa.Boolean(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("final_result", sa.String(8), nullable=True),
        sa.Column("checked_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(_in("decision", OUTCOME_DECISIONS), name="ck_action_outcomes_decision"),
        sa.CheckConstraint(f"final_result IS NULL OR {_in('final_result', FINAL_RESULTS)}", name="ck_action_outcomes_final"),
    )
    op.create_index("ix_action_outcomes_rule_id", "action_outcomes", ["rule_id"])


def downgrade() -> None:
    op.drop_index("ix_action_outcomes_rule_id", table_name="action_outcomes")
    op.drop_table("action_outcomes")
    op.drop_index("uq_policy_versions_one_applied", table_name="policy_versions")
    op.drop_table("policy_versions")
