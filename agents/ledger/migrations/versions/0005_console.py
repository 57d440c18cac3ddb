"""Decisions may come from the supervisor console: the approver channel 'console'.

The console (sales-supervisor console) records decisions through the same ledger rules as the CLI
and Slack; its channel is named so the audit trail and the KPIs say where a decision was taken.
Console sign-in accounts live in a file under the home folder, and review time is read from the
audit trail (digest first viewed -> last decision), so no table is added.

Revision ID: 0005_console
Revises: 0008_teams_approver_channel
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0005_console"
down_revision = "0008_teams_approver_channel"
branch_labels = None
depends_on = None

OLD = ("cli", "slack", "autonomy", "teams")
NEW = ("cli", "slack", "autonomy", "teams", "console")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _replace_channel_check(values: tuple[str, ...]) -> None:
    with op.batch_alter_table("decisions") as batch:  # SQLite: a table copy; Postgres: two ALTERs
        batch.drop_constraint("ck_decisions_channel", type_="check")
        batch.create_check_constraint("ck_decisions_channel", _in("approver_channel", values))


def upgrade() -> None:
    _replace_channel_check(NEW)


def downgrade() -> None:
    # A console decision stays a decision; downgrading files it under the CLI (the audit row keeps 'console').
    op.execute("UPDATE decisions SET approver_channel = 'cli' WHERE approver_channel = 'console'")
    _replace_channel_check(OLD)
