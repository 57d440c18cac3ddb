"""Decisions may come from Microsoft Teams: approver_channel admits 'teams'.

Revision ID: 0008_teams_approver_channel
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0008_teams_approver_channel"
down_revision = "0006"
branch_labels = None
depends_on = None

OLD = ("cli", "slack", "autonomy")
NEW = ("cli", "slack", "autonomy", "teams")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _replace_channel_check(values: tuple[str, ...]) -> None:
    with op.batch_alter_table("decisions") as batch:  # SQLite: a table copy; Postgres: two ALTERs
        batch.drop_constraint("ck_decisions_channel", type_="check")
        batch.create_check_constraint("ck_decisions_channel", _in("approver_channel", values))


def upgrade() -> None:
    _replace_channel_check(NEW)


def downgrade() -> None:
    # Teams decisions stay decisions; they are recorded as made in Slack's stead only to satisfy the old check.
    op.execute("UPDATE decisions SET approver_channel = 'slack' WHERE approver_channel = 'teams'")
    _replace_channel_check(OLD)
