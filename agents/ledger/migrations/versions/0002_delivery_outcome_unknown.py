"""Deliveries gain the status 'unknown': the send may or may not have reached the far side.

Such a delivery is never retried automatically; it waits on the needs-attention list until a
person resolves it (``sales-supervisor publish resolve ID --sent|--not-sent``).

Revision ID: 0002_delivery_outcome_unknown
Revises: 0001_initial
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0002_delivery_outcome_unknown"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

OLD = ("pending", "sent", "failed")
NEW = ("pending", "sent", "failed", "unknown")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _replace_status_check(values: tuple[str, ...]) -> None:
    with op.batch_alter_table("deliveries") as batch:  # SQLite: a table copy; Postgres: two ALTERs
        batch.drop_constraint("ck_deliveries_status", type_="check")
        batch.create_check_constraint("ck_deliveries_status", _in("status", values))


def upgrade() -> None:
    _replace_status_check(NEW)


def downgrade() -> None:
    op.execute("UPDATE deliveries SET status = 'failed' WHERE status = 'unknown'")
    _replace_status_check(OLD)
