"""The review ledger: digests, items, decisions, deliveries, snoozes, meta, and the append-only audit trail.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

APPEND_ONLY_MESSAGE = "audit is append-only"

SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER audit_refuse_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}: UPDATE refused'); END""",
    f"""CREATE TRIGGER audit_refuse_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}: DELETE refused'); END""",
]

POSTGRES_TRIGGERS = [
    f"""CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION USING MESSAGE = '{APPEND_ONLY_MESSAGE}: ' || TG_OP || ' refused', ERRCODE = 'insufficient_privilege';
END
$$""",
    "CREATE TRIGGER audit_refuse_update_delete BEFORE UPDATE OR DELETE ON audit "
    "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()",
    "CREATE TRIGGER audit_refuse_truncate BEFORE TRUNCATE ON audit "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()",
]


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "digests",
        sa.Column("digest_id", sa.String(64), primary_key=True),
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("manager_id", sa.String(128), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("channel", sa.String(32), nullable=True),
        sa.Column("external_ref", sa.String(255), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("posted_at", sa.DateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.UniqueConstraint("run_id", "manager_id", name="uq_digests_run_manager"),
        sa.CheckConstraint(_in("status", ("created", "posted", "post_failed")), name="ck_digests_status"),
    )
    op.create_index("ix_digests_manager_id", "digests", ["manager_id"])
    op.create_table(
        "items",
        sa.Column("item_id", sa.String(64), primary_key=True),
        sa.Column("digest_id", sa.String(64), sa.ForeignKey("digests.digest_id"), nullable=False),
        sa.Column("opportunity_id", sa.String(128), nullable=True),
        sa.Column("rep_id", sa.String(128), nullable=True),
        sa.Column("manager_id", sa.String(128), nullable=False),
        sa.Column("rule_id", sa.String(128), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("draft", sa.JSON(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("flag_id", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("digest_id", "flag_id", name="uq_items_digest_flag"),
        sa.CheckConstraint(_in("severity", ("low", "medium", "high", "critical")), name="ck_items_severity"),
    )
    op.create_index("ix_items_digest_id", "items", ["digest_id"])
    op.create_index("ix_items_opportunity_id", "items", ["opportunity_id"])
    op.create_index("ix_items_manager_id", "items", ["manager_id"])
    op.create_index("ix_items_rule_id", "items", ["rule_id"])
    op.create_table(
        "decisions",
        sa.Column("decision_id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("item_id", sa.String(64), sa.ForeignKey("items.item_id"), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("approver_id", sa.String(128), nullable=False),
        sa.Column("approver_channel", sa.String(16), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=False),
        sa.Column("edited_text", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.UniqueConstraint("item_id", name="uq_decisions_item_id"),
        sa.CheckConstraint(_in("action", ("approve", "edit", "dismiss")), name="ck_decisions_action"),
        sa.CheckConstraint(_in("approver_channel", ("cli", "slack")), name="ck_decisions_channel"),
        sa.CheckConstraint(_in("mode", ("shadow", "live")), name="ck_decisions_mode"),
        sa.CheckConstraint("action <> 'edit' OR edited_text IS NOT NULL", name="ck_decisions_edit_text"),
    )
    op.create_table(
        "deliveries",
        sa.Column("delivery_id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("item_id", sa.String(64), sa.ForeignKey("items.item_id"), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("external_ref", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.UniqueConstraint("idempotency_key", name="uq_deliveries_idempotency_key"),
        sa.UniqueConstraint("item_id", "channel", name="uq_deliveries_item_channel"),
        sa.CheckConstraint(_in("channel", ("rep_slack", "rep_email", "crm_note")), name="ck_deliveries_channel"),
        sa.CheckConstraint(_in("status", ("pending", "sent", "failed")), name="ck_deliveries_status"),
    )
    op.create_table(
        "snoozes",
        sa.Column("snooze_id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("opportunity_id", sa.String(128), nullable=False),
        sa.Column("rule_id", sa.String(128), nullable=True),
        sa.Column("starts", sa.Date(), nullable=True),
        sa.Column("until", sa.Date(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_snoozes_opportunity_id", "snoozes", ["opportunity_id"])
    op.create_table(
        "audit",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject_type", sa.String(32), nullable=False),
        sa.Column("subject_id", sa.String(255), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("row_hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("row_hash", name="uq_audit_row_hash"),
    )
    op.create_index("ix_audit_subject", "audit", ["subject_type", "subject_id"])

    dialect = op.get_context().dialect.name
    if dialect == "sqlite":
        for ddl in SQLITE_TRIGGERS:
            op.execute(ddl)
    elif dialect == "postgresql":
        for ddl in POSTGRES_TRIGGERS:
            op.execute(ddl)
    else:
        raise NotImplementedError(f"the ledger supports SQLite and Postgres, not {dialect}: no append-only triggers for it")


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_refuse_truncate ON audit")
        op.execute("DROP TRIGGER IF EXISTS audit_refuse_update_delete ON audit")
        op.execute("DROP FUNCTION IF EXISTS audit_refuse_change()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_refuse_delete")
        op.execute("DROP TRIGGER IF EXISTS audit_refuse_update")
    for table in ("audit", "snoozes", "deliveries", "decisions", "items", "digests", "meta"):
        op.drop_table(table)
