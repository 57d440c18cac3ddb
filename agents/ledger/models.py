"""The review ledger's tables as SQLAlchemy 2 declarative models.

These models are what the domain code reads and writes; the schema itself is
created and evolved only by the alembic migrations in ``migrations/versions``
(a migration is frozen history, so it spells its DDL out instead of importing
these classes). A test checks the two agree.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ACTIONS = ("approve", "edit", "dismiss")
APPROVING_ACTIONS = ("approve", "edit")
# autonomy: an L5 approval (agents/ledger/autonomy.py, migration 0006); teams: migration 0008; console: 0005
APPROVER_CHANNELS = ("cli", "slack", "autonomy", "teams", "console")
DELIVERY_CHANNELS = ("rep_slack", "rep_email", "crm_note")
# "unknown": the send may have reached the far side; never retried automatically, a person resolves it.
DELIVERY_STATUSES = ("pending", "sent", "failed", "unknown")
DIGEST_STATUSES = ("created", "posted", "post_failed")
SEVERITIES = ("low", "medium", "high", "critical")
MODES = ("shadow", "live")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out, stored as naive UTC.

    SQLite has no time zones and Postgres would hand back the session's zone;
    storing naive UTC everywhere keeps the audit hash input identical on both.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the ledger stores aware UTC datetimes only")
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # defensive: a raw SQLite string
            value = dt.datetime.fromisoformat(value)
        return value.replace(tzinfo=dt.timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dt.datetime: UTCDateTime, dt.date: Date, dict[str, Any]: JSON, Any: JSON}

    def __repr__(self) -> str:
        keys = [c.key for c in self.__table__.primary_key.columns]
        ident = ", ".join(f"{k}={getattr(self, k, None)!r}" for k in keys)
        return f"{type(self).__name__}({ident})"


class Meta(Base):
    """Small key/value settings that several processes must agree on (mode, kill switch)."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[dt.datetime]
    updated_by: Mapped[str] = mapped_column(String(128))


class Digest(Base):
    __tablename__ = "digests"
    __table_args__ = (
        UniqueConstraint("run_id", "manager_id", name="uq_digests_run_manager"),
        CheckConstraint(_in("status", DIGEST_STATUSES), name="ck_digests_status"),
    )
    digest_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(128))
    manager_id: Mapped[str] = mapped_column(String(128), index=True)
    as_of: Mapped[dt.date]
    created_at: Mapped[dt.datetime]
    channel: Mapped[str | None] = mapped_column(String(32))
    external_ref: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="created")
    posted_at: Mapped[dt.datetime | None]
    error: Mapped[str | None] = mapped_column(Text)


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("digest_id", "flag_id", name="uq_items_digest_flag"),
        CheckConstraint(_in("severity", SEVERITIES), name="ck_items_severity"),
        Index("ix_items_rule_id", "rule_id"),
    )
    item_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    digest_id: Mapped[str] = mapped_column(ForeignKey("digests.digest_id"), index=True)
    opportunity_id: Mapped[str | None] = mapped_column(String(128), index=True)
    rep_id: Mapped[str | None] = mapped_column(String(128))
    manager_id: Mapped[str] = mapped_column(String(128), index=True)
    rule_id: Mapped[str] = mapped_column(String(128))
    severity: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    draft: Mapped[Any] = mapped_column(JSON)
    evidence: Mapped[Any] = mapped_column(JSON)
    flag_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime]


class Decision(Base):
    __tablename__ = "decisions"
    __table_args__ = (
        CheckConstraint(_in("action", ACTIONS), name="ck_decisions_action"),
        CheckConstraint(_in("approver_channel", APPROVER_CHANNELS), name="ck_decisions_channel"),
        CheckConstraint(_in("mode", MODES), name="ck_decisions_mode"),
        CheckConstraint("action <> 'edit' OR edited_text IS NOT NULL", name="ck_decisions_edit_text"),
        # At most one effective decision per item, enforced by the database.
        UniqueConstraint("item_id", name="uq_decisions_item_id"),
    )
    # An integer id assigned under the ledger's write lock, so ids grow in commit order: a sensor cursor.
    decision_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.item_id"))
    action: Mapped[str] = mapped_column(String(16))
    approver_id: Mapped[str] = mapped_column(String(128))
    approver_channel: Mapped[str] = mapped_column(String(16))
    decided_at: Mapped[dt.datetime]
    edited_text: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    # The mode in force when the decision was taken: shadow approvals are never published later.
    mode: Mapped[str] = mapped_column(String(8), default="shadow")


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("idempotency_key", name="uq_deliveries_idempotency_key"),
        UniqueConstraint("item_id", "channel", name="uq_deliveries_item_channel"),
        CheckConstraint(_in("channel", DELIVERY_CHANNELS), name="ck_deliveries_channel"),
        CheckConstraint(_in("status", DELIVERY_STATUSES), name="ck_deliveries_status"),
    )
    delivery_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.item_id"))
    channel: Mapped[str] = mapped_column(String(16))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    external_ref: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime]
    claimed_at: Mapped[dt.datetime | None]
    lease_until: Mapped[dt.datetime | None]
    sent_at: Mapped[dt.datetime | None]
    error: Mapped[str | None] = mapped_column(Text)


class Snooze(Base):
    __tablename__ = "snoozes"
    snooze_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    opportunity_id: Mapped[str] = mapped_column(String(128), index=True)
    rule_id: Mapped[str | None] = mapped_column(String(128))  # None: every rule on this deal
    starts: Mapped[dt.date | None]  # None: from any as-of date (set it for replays and backtests)
    until: Mapped[dt.date]  # inclusive
    reason: Mapped[str | None] = mapped_column(Text)
    by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime]


class AuditRow(Base):
    """Append-only and hash chained; the migration adds triggers refusing UPDATE and DELETE."""

    __tablename__ = "audit"
    __table_args__ = (
        UniqueConstraint("row_hash", name="uq_audit_row_hash"),
        Index("ix_audit_subject", "subject_type", "subject_id"),
    )
    # Assigned explicitly (tail + 1) under the write lock, so the sequence has no gaps of its own.
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime]
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(255))
    payload: Mapped[str] = mapped_column(Text)  # canonical JSON text, hashed exactly as stored
    prev_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64))


# Tables of agents/ledger/autonomy.py (migration 0006) share this metadata.
from agents.ledger import autonomy_models as _autonomy_models  # noqa: E402,F401
