"""A rep's weekly scorecard verdicts (issue 14): one row per rep and scorecard week.

Revision ID: 0003
Revises: 0004_policy_versions (chained after the merged 0004; the lead may re-chain)
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0004_policy_versions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scorecard_verdicts",
        sa.Column("verdict_id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("rep_id", sa.String(128), nullable=False),
        sa.Column("manager_id", sa.String(128), nullable=True),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("verdict", sa.String(32), nullable=False),
        sa.Column("previous_verdict", sa.String(32), nullable=True),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("policy_version", sa.String(64), nullable=False),
        sa.Column("flag_id", sa.String(128), nullable=False),
        sa.Column("scorecard", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("rep_id", "as_of", name="uq_scorecard_verdicts_rep_as_of"),
    )
    op.create_index("ix_scorecard_verdicts_rep_id", "scorecard_verdicts", ["rep_id"])


def downgrade() -> None:
    op.drop_index("ix_scorecard_verdicts_rep_id", table_name="scorecard_verdicts")
    op.drop_table("scorecard_verdicts")
