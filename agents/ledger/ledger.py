"""The review ledger: what was put in front of a manager, what they decided, what went out.

A transactional store separate from the DuckDB warehouse (SQLite under the
state folder by default, Postgres by URL), so the Slack app can record
decisions while a pipeline run holds the warehouse.

Every state change writes its audit row in the same transaction; a refused
attempt (wrong approver, second decision, send while halted) writes an audit
row of the refusal in a transaction of its own, so it persists even though the
caller gets an exception.

Concurrency: every write transaction first takes the ledger's single write
lock (SQLite ``BEGIN IMMEDIATE`` in WAL mode, waiting up to the busy timeout;
Postgres a transaction-scoped advisory lock). Writes are short, so waiting is
cheap, and serialising them is what keeps the audit chain linear, the audit
``seq`` gapless and decision ids in commit order (a safe sensor cursor).

Delivery semantics (invariant 6), per channel. ``claim_delivery`` inserts a
pending row under the idempotency key (unique in the database) with a lease;
only the claimant that *acquired* the row sends. A crash between claim and
``mark_sent`` leaves a pending row whose lease expires; the next claim
re-acquires it with ``Claim.resumed`` set, meaning "a previous attempt may or
may not have reached the far side". What the publisher does then is the
per-channel choice in ``DELIVERY_SEMANTICS``. The lease (5 minutes by
default) must be longer than a send's own timeout, or a slow send could be
re-claimed while still in flight.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import statistics
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine, and_, create_engine, event, exists, not_, or_, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from agents.ledger.audit import (
    GENESIS_HASH,
    AuditReport,
    canonical_json,
    compute_row_hash,
    verify_rows,
)
from agents.ledger.business_days import business_days_between, window_start
from agents.ledger.models import (
    ACTIONS,
    APPROVER_CHANNELS,
    APPROVING_ACTIONS,
    DELIVERY_CHANNELS,
    MODES,
    SEVERITIES,
    AuditRow,
    Decision,
    Delivery,
    Digest,
    Item,
    Meta,
    Snooze,
)

LEDGER_FILENAME = "ledger.sqlite"
DEFAULT_BUSY_TIMEOUT_S = 15.0
DEFAULT_LEASE = dt.timedelta(minutes=5)
DEFAULT_MAX_ATTEMPTS = 5
# Arbitrary constant naming the ledger's write lock among Postgres advisory locks.
PG_WRITE_LOCK_KEY = 5_177_201_911
# Both must be recorded as passed before the ledger lets the mode become live (invariant 5).
REQUIRED_LIVE_GATES = ("eval", "shadow_agreement")

DELIVERY_SEMANTICS: Mapping[str, str] = {
    "crm_note": (
        "at-least-once, made effectively exactly-once by check-before-write: the note body carries the "
        "idempotency key as a marker; on a resumed claim the publisher searches the deal's notes for the "
        "marker and, if found, calls mark_sent with that note's id instead of writing again."
    ),
    "rep_slack": (
        "at-least-once with check-before-write: the message carries the idempotency key in Slack message "
        "metadata; on a resumed claim the publisher reads the DM's history since claimed_at and marks sent "
        "if the key is there. If the history cannot be read, it marks the delivery failed (outcome unknown) "
        "rather than risk a duplicate."
    ),
    "rep_email": (
        "at-most-once: SMTP cannot be read back, so a resumed claim (outcome unknown) is marked failed "
        "'outcome unknown, not resent' for a person to check; only a claim whose previous attempt is known "
        "to have failed is retried. The Message-ID is derived from the key so a receiving system can dedupe."
    ),
}


# --------------------------------------------------------------------------- errors


class LedgerError(Exception):
    """Base class for refusals and misuse reported by the ledger."""


class NotAuthorised(LedgerError, PermissionError):
    """The approver is neither the item's manager nor one of their allow-listed delegates."""


class AlreadyDecided(LedgerError):
    """The item already has its one effective decision; ``.decision`` is that decision."""

    def __init__(self, message: str, decision: Decision):
        super().__init__(message)
        self.decision = decision


class UnknownItem(LedgerError, LookupError):
    pass


class UnknownDigest(LedgerError, LookupError):
    pass


class UnknownDelivery(LedgerError, LookupError):
    pass


class NotApproved(LedgerError):
    """A delivery was claimed for an item without a live-mode approval (invariant 4)."""


class SendsHalted(LedgerError):
    """The kill switch is engaged, or the ledger is in shadow mode: nothing may be sent."""


class DeliveryConflict(LedgerError):
    """The key belongs to another item or channel, or the item/channel already has another key."""


class GateNotPassed(LedgerError):
    """Live mode was requested without every required gate recorded as passed."""


# --------------------------------------------------------------------------- value objects


@dataclasses.dataclass(frozen=True)
class Claim:
    """The outcome of ``claim_delivery``: send only when ``acquired``."""

    delivery: Delivery
    acquired: bool
    previous_status: str | None  # None: a fresh claim; "pending": a crashed attempt; "failed"; "sent"

    @property
    def resumed(self) -> bool:
        """A previous attempt was claimed and never finished: it may have sent. Check before writing."""
        return self.acquired and self.previous_status == "pending"

    @property
    def already_sent(self) -> bool:
        return self.delivery.status == "sent"


@dataclasses.dataclass(frozen=True)
class ApprovedItem:
    item: Item
    decision: Decision
    owed: tuple[str, ...]  # channels with no sent (and no dead-lettered) delivery yet

    @property
    def edited_text(self) -> str | None:
        return self.decision.edited_text


@dataclasses.dataclass(frozen=True)
class DecisionStats:
    key: str
    decided: int = 0
    approved: int = 0
    edited: int = 0
    dismissed: int = 0

    @property
    def agreement_rate(self) -> float | None:
        """approved / decided: the manager took the draft as written."""
        return self.approved / self.decided if self.decided else None

    @property
    def agreement_rate_with_edits(self) -> float | None:
        """(approved + edited) / decided: the manager agreed the deal needed the action."""
        return (self.approved + self.edited) / self.decided if self.decided else None

    @property
    def dismissal_rate(self) -> float | None:
        return self.dismissed / self.decided if self.decided else None

    def _add(self, action: str) -> DecisionStats:
        field = {"approve": "approved", "edit": "edited", "dismiss": "dismissed"}[action]
        return dataclasses.replace(self, decided=self.decided + 1, **{field: getattr(self, field) + 1})


# --------------------------------------------------------------------------- engine and migrations


def ledger_url(home: Path | str) -> str:
    """The default ledger: ``<state folder>/ledger.sqlite``."""
    return f"sqlite:///{Path(home).expanduser().resolve() / LEDGER_FILENAME}"


def create_ledger_engine(url: str, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> Engine:
    """An engine with the ledger's transaction discipline.

    SQLite: WAL (readers never block the writer and vice versa), a busy timeout
    (a writer waits for the lock instead of failing), foreign keys on, and
    BEGIN emitted by us so writes take the lock up front (``BEGIN IMMEDIATE``):
    a deferred transaction that reads and then writes can fail with "database
    is locked" without ever waiting, which is exactly what a busy timeout is
    meant to prevent.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise ValueError(f"the ledger needs a SQLite file (shared by several processes), got {url!r}")
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"timeout": busy_timeout_s})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # the driver emits no BEGIN; _on_begin does
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("ledger_read_only") else "BEGIN IMMEDIATE")

    return engine


def upgrade_schema(engine: Engine) -> list[str]:
    """Bring the schema to the newest migration; returns the heads before (empty list: a new ledger).

    Cheap when already current (one read), and safe when two processes start
    at once: the upgrade runs under the write lock and re-reads the version
    inside it.
    """
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from agents.ledger.migrations import alembic_config

    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    with engine.execution_options(ledger_read_only=True).connect() as conn:
        current = MigrationContext.configure(conn).get_current_heads()
    if set(current) == heads:
        return list(current)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_WRITE_LOCK_KEY})
        command.upgrade(alembic_config(connection=conn), "head")
    return list(current)


def open_ledger(
    url: str | None = None,
    *,
    home: Path | str | None = None,
    delegates: Mapping[str, Iterable[str]] | None = None,
    busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    clock: Callable[[], dt.datetime] | None = None,
) -> Ledger:
    """Open (creating and migrating as needed) the ledger at ``url``, or ``<home>/ledger.sqlite``.

    ``delegates`` maps a manager id to the approver ids allowed to decide on
    that manager's items.
    """
    if url is None:
        if home is None:
            raise ValueError("open_ledger needs a SQLAlchemy URL or the state folder (home)")
        url = ledger_url(home)
    engine = create_ledger_engine(url, busy_timeout_s=busy_timeout_s)
    try:
        upgrade_schema(engine)
    except Exception:
        engine.dispose()
        raise
    return Ledger(engine, delegates=delegates, clock=clock)


# --------------------------------------------------------------------------- the ledger


def _jsonable(value: Any) -> Any:
    """Plain JSON (dates as ISO strings, pydantic models dumped) so what is stored is what is audited."""
    return json.loads(canonical_json(value))


def _utc_day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.timezone.utc)


class Ledger:
    """The domain API over the ledger database. Returned ORM objects are detached snapshots."""

    def __init__(
        self,
        engine: Engine,
        *,
        delegates: Mapping[str, Iterable[str]] | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ):
        self.engine = engine
        self._read_engine = engine.execution_options(ledger_read_only=True)
        self._delegates = {manager: frozenset(ds) for manager, ds in (delegates or {}).items()}
        self._clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self._batch = threading.local()  # the open batch() transaction of this thread, if any

    # -- plumbing

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def _now(self) -> dt.datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the ledger clock must return aware datetimes")
        return now.astimezone(dt.timezone.utc)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """The writes made inside share one transaction (one write lock, one commit), e.g. a digest
        and its items; an error rolls them all back. Nested batches join the outer one."""
        if getattr(self._batch, "session", None) is not None:
            yield
            return
        with self._write() as session:
            self._batch.session = session
            try:
                yield
            finally:
                self._batch.session = None

    @contextlib.contextmanager
    def _write(self) -> Iterator[Session]:
        """One short write transaction holding the ledger's write lock from its first statement."""
        if (batch := getattr(self._batch, "session", None)) is not None:
            yield batch
            return
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            if self.engine.dialect.name == "postgresql":
                session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_WRITE_LOCK_KEY})
            else:
                session.connection()  # emits BEGIN IMMEDIATE
            yield session

    @contextlib.contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self._read_engine, expire_on_commit=False) as session, session.begin():
            yield session

    def _audit(
        self,
        session: Session,
        *,
        actor: str,
        action: str,
        subject_type: str,
        subject_id: str,
        payload: Mapping[str, Any] | None = None,
    ) -> AuditRow:
        tail = session.execute(select(AuditRow.seq, AuditRow.row_hash).order_by(AuditRow.seq.desc()).limit(1)).first()
        seq, prev_hash = (tail.seq + 1, tail.row_hash) if tail else (1, GENESIS_HASH)
        at = self._now()
        payload_text = canonical_json(dict(payload or {}))
        row = AuditRow(
            seq=seq,
            at=at,
            actor=actor,
            action=action,
            subject_type=subject_type,
            subject_id=str(subject_id),
            payload=payload_text,
            prev_hash=prev_hash,
            row_hash=compute_row_hash(
                at=at,
                actor=actor,
                action=action,
                subject_type=subject_type,
                subject_id=str(subject_id),
                payload=payload_text,
                prev_hash=prev_hash,
            ),
        )
        session.add(row)
        session.flush()
        return row

    def _get_meta(self, session: Session, key: str, default: Any) -> Any:
        row = session.get(Meta, key)
        return default if row is None else row.value

    def _set_meta(self, session: Session, key: str, value: Any, actor: str) -> None:
        row = session.get(Meta, key)
        if row is None:
            session.add(Meta(key=key, value=value, updated_at=self._now(), updated_by=actor))
        else:
            row.value, row.updated_at, row.updated_by = value, self._now(), actor
        session.flush()

    # -- audit

    def record_event(
        self, actor: str, action: str, subject_type: str, subject_id: str, payload: Mapping[str, Any] | None = None
    ) -> AuditRow:
        """Append an audit row for something that happened outside the ledger (a CRM read, a run, a send)."""
        with self._write() as s:
            return self._audit(s, actor=actor, action=action, subject_type=subject_type, subject_id=subject_id, payload=payload)

    def audit_head(self) -> tuple[int, str] | None:
        """(seq, row_hash) of the newest audit row: publish it elsewhere to anchor the chain."""
        with self._read() as s:
            tail = s.execute(select(AuditRow.seq, AuditRow.row_hash).order_by(AuditRow.seq.desc()).limit(1)).first()
        return (tail.seq, tail.row_hash) if tail else None

    def audit_rows(
        self, *, since_seq: int = 0, subject_type: str | None = None, subject_id: str | None = None, limit: int | None = None
    ) -> list[AuditRow]:
        query = select(AuditRow).where(AuditRow.seq > since_seq).order_by(AuditRow.seq)
        if subject_type is not None:
            query = query.where(AuditRow.subject_type == subject_type)
        if subject_id is not None:
            query = query.where(AuditRow.subject_id == subject_id)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as s:
            return list(s.scalars(query))

    def verify_audit(self, anchor: tuple[int, str] | None = None) -> AuditReport:
        """Recompute the whole chain; see ``agents.ledger.audit.verify_rows`` for what is reported."""
        table = AuditRow.__table__
        with self._read_engine.connect() as conn:
            result = conn.execution_options(yield_per=2000).execute(select(table).order_by(table.c.seq))
            return verify_rows(result, anchor=anchor)

    # -- digests and items

    def create_digest(
        self,
        run_id: str,
        manager_id: str,
        as_of: dt.date,
        *,
        channel: str | None = None,
        digest_id: str | None = None,
        actor: str = "pipeline",
    ) -> Digest:
        """One digest per manager per run; a retried run gets the existing digest back."""
        with self._write() as s:
            existing = s.scalars(select(Digest).where(Digest.run_id == run_id, Digest.manager_id == manager_id)).first()
            if existing is not None:
                return existing
            digest = Digest(
                digest_id=digest_id or uuid.uuid4().hex,
                run_id=run_id,
                manager_id=manager_id,
                as_of=as_of,
                created_at=self._now(),
                channel=channel,
                status="created",
            )
            s.add(digest)
            s.flush()
            self._audit(
                s,
                actor=actor,
                action="digest.created",
                subject_type="digest",
                subject_id=digest.digest_id,
                payload={"run_id": run_id, "manager_id": manager_id, "as_of": as_of, "channel": channel},
            )
            return digest

    def mark_digest_posted(self, digest_id: str, *, channel: str, external_ref: str | None, actor: str = "pipeline") -> Digest:
        with self._write() as s:
            digest = s.get(Digest, digest_id)
            if digest is None:
                raise UnknownDigest(digest_id)
            digest.status, digest.channel, digest.external_ref = "posted", channel, external_ref
            digest.posted_at, digest.error = self._now(), None
            self._audit(
                s, actor=actor, action="digest.posted", subject_type="digest", subject_id=digest_id,
                payload={"channel": channel, "external_ref": external_ref},
            )
            return digest

    def mark_digest_failed(self, digest_id: str, error: str, *, channel: str | None = None, actor: str = "pipeline") -> Digest:
        with self._write() as s:
            digest = s.get(Digest, digest_id)
            if digest is None:
                raise UnknownDigest(digest_id)
            digest.status, digest.error = "post_failed", error
            if channel is not None:
                digest.channel = channel
            self._audit(
                s, actor=actor, action="digest.post_failed", subject_type="digest", subject_id=digest_id,
                payload={"channel": channel, "error": error},
            )
            return digest

    def get_digest(self, digest_id: str) -> Digest | None:
        with self._read() as s:
            return s.get(Digest, digest_id)

    def add_item(
        self,
        digest_id: str,
        *,
        flag_id: str,
        rule_id: str,
        severity: str,
        draft: Any,
        evidence: Any,
        opportunity_id: str | None = None,
        rep_id: str | None = None,
        manager_id: str | None = None,
        priority: int = 0,
        item_id: str | None = None,
        actor: str = "pipeline",
    ) -> Item:
        """Put one flagged deal and its draft in a digest; the same flag in the same digest is added once.

        The item's manager is the digest's manager (passing another is an
        error): who may approve follows from it. ``priority``: lower sorts
        first (1 = top of the digest).
        """
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
        with self._write() as s:
            digest = s.get(Digest, digest_id)
            if digest is None:
                raise UnknownDigest(digest_id)
            if manager_id is not None and manager_id != digest.manager_id:
                raise ValueError(f"item manager {manager_id!r} differs from the digest's manager {digest.manager_id!r}")
            existing = s.scalars(select(Item).where(Item.digest_id == digest_id, Item.flag_id == flag_id)).first()
            if existing is not None:
                return existing
            item = Item(
                item_id=item_id or uuid.uuid4().hex,
                digest_id=digest_id,
                opportunity_id=opportunity_id,
                rep_id=rep_id,
                manager_id=digest.manager_id,
                rule_id=rule_id,
                severity=severity,
                priority=priority,
                draft=_jsonable(draft),
                evidence=_jsonable(evidence),
                flag_id=flag_id,
                created_at=self._now(),
            )
            s.add(item)
            s.flush()
            self._audit(
                s,
                actor=actor,
                action="item.added",
                subject_type="item",
                subject_id=item.item_id,
                payload={
                    "digest_id": digest_id, "flag_id": flag_id, "rule_id": rule_id, "severity": severity,
                    "opportunity_id": opportunity_id, "rep_id": rep_id, "manager_id": digest.manager_id,
                    "priority": priority, "draft": item.draft, "evidence": item.evidence,
                },
            )
            return item

    def get_item(self, item_id: str) -> Item | None:
        with self._read() as s:
            return s.get(Item, item_id)

    def items_for_digest(self, digest_id: str) -> list[Item]:
        with self._read() as s:
            return list(s.scalars(select(Item).where(Item.digest_id == digest_id).order_by(Item.priority, Item.item_id)))

    def pending_items(
        self, manager_id: str | None = None, *, digest_id: str | None = None, latest_only: bool = False
    ) -> list[Item]:
        """Items with no decision yet, oldest digest first, then by priority.

        ``latest_only``: only items of each manager's most recent digest. An older digest's
        undecided item was superseded by the run after it (the deal is flagged again there if
        it still is), so a reviewer's queue does not fill with stale copies.
        """
        undecided = not_(exists().where(Decision.item_id == Item.item_id))
        query = (
            select(Item)
            .join(Digest, Digest.digest_id == Item.digest_id)
            .where(undecided)
            .order_by(Digest.as_of, Digest.created_at, Item.priority, Item.item_id)
        )
        if manager_id is not None:
            query = query.where(Item.manager_id == manager_id)
        if digest_id is not None:
            query = query.where(Item.digest_id == digest_id)
        if latest_only:
            newer = aliased(Digest)
            query = query.where(
                not_(exists().where(newer.manager_id == Digest.manager_id, newer.created_at > Digest.created_at))
            )
        with self._read() as s:
            return list(s.scalars(query))

    def latest_item_for(self, opportunity_id: str) -> Item | None:
        """The most recent item raised for a deal (its manager decides on snoozes too)."""
        with self._read() as s:
            return s.scalars(
                select(Item).where(Item.opportunity_id == opportunity_id).order_by(Item.created_at.desc())
            ).first()

    # -- decisions

    def delegates_of(self, manager_id: str) -> frozenset[str]:
        return self._delegates.get(manager_id, frozenset())

    def is_authorised(self, approver_id: str, manager_id: str) -> bool:
        return bool(approver_id) and (approver_id == manager_id or approver_id in self.delegates_of(manager_id))

    def record_decision(
        self,
        item_id: str,
        action: Literal["approve", "edit", "dismiss"],
        approver_id: str,
        channel: Literal["cli", "slack"],
        edited_text: str | None = None,
        reason: str | None = None,
    ) -> Decision:
        """Record the one effective decision on an item.

        Only the item's manager or an allow-listed delegate may decide; anyone
        else gets ``NotAuthorised`` and the attempt is audited. Decisions are
        final: repeating the same decision (a Slack retry, a double click)
        returns the recorded one unchanged; a different second decision raises
        ``AlreadyDecided`` and is audited as refused.
        """
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, got {action!r}")
        if channel not in APPROVER_CHANNELS:
            raise ValueError(f"channel must be one of {APPROVER_CHANNELS}, got {channel!r}")
        if action == "edit" and not (edited_text and edited_text.strip()):
            raise ValueError("an edit needs the edited text")
        if action != "edit" and edited_text is not None:
            raise ValueError("edited_text goes only with action='edit'")
        if not approver_id:
            raise ValueError("approver_id is required")
        attempt = {"action": action, "approver_id": approver_id, "channel": channel, "edited_text": edited_text, "reason": reason}
        refusal: LedgerError | None = None
        with self._write() as s:
            item = s.get(Item, item_id)
            if item is None:
                raise UnknownItem(item_id)
            if not self.is_authorised(approver_id, item.manager_id):
                # Only this audit row is in the transaction: it commits, then the caller gets the exception.
                self._audit(
                    s, actor=approver_id, action="decision.refused", subject_type="item", subject_id=item_id,
                    payload={**attempt, "refusal": "not_authorised", "manager_id": item.manager_id},
                )
                refusal = NotAuthorised(
                    f"{approver_id} may not decide item {item_id}: only manager {item.manager_id} "
                    "or an allow-listed delegate may"
                )
            else:
                existing = s.scalars(select(Decision).where(Decision.item_id == item_id)).first()
                if existing is not None:
                    if (existing.action, existing.approver_id, existing.edited_text) == (action, approver_id, edited_text):
                        return existing
                    self._audit(
                        s, actor=approver_id, action="decision.refused", subject_type="item", subject_id=item_id,
                        payload={**attempt, "refusal": "already_decided", "decision_id": existing.decision_id},
                    )
                    refusal = AlreadyDecided(
                        f"item {item_id} was already decided ({existing.action} by {existing.approver_id} "
                        f"at {existing.decided_at:%Y-%m-%d %H:%M}Z); decisions are final",
                        existing,
                    )
                else:
                    decision = Decision(
                        item_id=item_id,
                        action=action,
                        approver_id=approver_id,
                        approver_channel=channel,
                        decided_at=self._now(),
                        edited_text=edited_text,
                        reason=reason,
                        mode=self._get_meta(s, "mode", "shadow"),
                    )
                    s.add(decision)
                    s.flush()
                    self._audit(
                        s, actor=approver_id, action="decision.recorded", subject_type="item", subject_id=item_id,
                        payload={
                            **attempt, "decision_id": decision.decision_id, "manager_id": item.manager_id,
                            "on_behalf_of": item.manager_id if approver_id != item.manager_id else None,
                            "mode": decision.mode,
                        },
                    )
                    return decision
        assert refusal is not None
        raise refusal

    def get_decision(self, item_id: str) -> Decision | None:
        with self._read() as s:
            return s.scalars(select(Decision).where(Decision.item_id == item_id)).first()

    def decisions_since(self, cursor: str | int | None, *, limit: int = 500) -> tuple[list[Decision], str]:
        """Decisions recorded after ``cursor``, oldest first, and the cursor to pass next time.

        The cursor is an opaque string (a Dagster sensor cursor); ``None`` starts
        from the beginning. With no new decisions the cursor comes back unchanged.
        """
        try:
            after = int(cursor) if cursor not in (None, "") else 0
        except (TypeError, ValueError):
            raise ValueError(f"not a ledger decision cursor: {cursor!r}") from None
        with self._read() as s:
            rows = list(
                s.scalars(select(Decision).where(Decision.decision_id > after).order_by(Decision.decision_id).limit(limit))
            )
        return rows, str(rows[-1].decision_id if rows else after)

    # -- mode and kill switch (invariant 5)

    def mode(self) -> str:
        with self._read() as s:
            return self._get_meta(s, "mode", "shadow")

    def kill_switch_engaged(self) -> bool:
        with self._read() as s:
            return bool(self._get_meta(s, "kill_switch", {}).get("engaged"))

    def sends_allowed(self) -> tuple[bool, str]:
        with self._read() as s:
            return self._sends_allowed(s)

    def _sends_allowed(self, s: Session) -> tuple[bool, str]:
        kill = self._get_meta(s, "kill_switch", {})
        if kill.get("engaged"):
            return False, f"kill switch engaged by {kill.get('by')}: {kill.get('reason')}"
        if self._get_meta(s, "mode", "shadow") != "live":
            return False, "shadow mode: nothing reaches reps or the CRM"
        return True, "live"

    def set_mode(
        self, mode: Literal["shadow", "live"], *, actor: str, reason: str, gates: Mapping[str, bool] | None = None
    ) -> str:
        """Switch mode. Live needs every gate in ``REQUIRED_LIVE_GATES`` recorded as passed; shadow never does."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        gates = dict(gates or {})
        refusal: LedgerError | None = None
        with self._write() as s:
            current = self._get_meta(s, "mode", "shadow")
            problems = [f"{g}: not recorded" for g in REQUIRED_LIVE_GATES if g not in gates]
            problems += [f"{g}: failed" for g, ok in gates.items() if not ok]
            if mode == "live" and problems:
                self._audit(
                    s, actor=actor, action="mode.refused", subject_type="ledger", subject_id="mode",
                    payload={"from": current, "to": mode, "reason": reason, "gates": gates, "problems": problems},
                )
                refusal = GateNotPassed("live mode refused: " + "; ".join(problems))
            elif mode != current:
                self._set_meta(s, "mode", mode, actor)
                self._audit(
                    s, actor=actor, action="mode.changed", subject_type="ledger", subject_id="mode",
                    payload={"from": current, "to": mode, "reason": reason, "gates": gates},
                )
        if refusal is not None:
            raise refusal
        return mode

    def engage_kill_switch(self, *, actor: str, reason: str) -> None:
        """Stop all sends at once: every later claim is refused until released."""
        with self._write() as s:
            self._set_meta(s, "kill_switch", {"engaged": True, "by": actor, "reason": reason}, actor)
            self._audit(s, actor=actor, action="kill_switch.engaged", subject_type="ledger", subject_id="kill_switch", payload={"reason": reason})

    def release_kill_switch(self, *, actor: str, reason: str) -> None:
        with self._write() as s:
            self._set_meta(s, "kill_switch", {"engaged": False, "by": actor, "reason": reason}, actor)
            self._audit(s, actor=actor, action="kill_switch.released", subject_type="ledger", subject_id="kill_switch", payload={"reason": reason})

    # -- deliveries (invariant 6)

    @staticmethod
    def delivery_key(item_id: str, channel: str) -> str:
        """The canonical idempotency key: one delivery per item per channel, ever."""
        return f"sales-supervisor/{channel}/{item_id}"

    def approved_undelivered_items(
        self, channels: Sequence[str] = ("rep_slack", "crm_note"), *, max_attempts: int = DEFAULT_MAX_ATTEMPTS
    ) -> list[ApprovedItem]:
        """Items approved (or edited) in live mode that still owe a delivery on one of ``channels``.

        A channel is owed until its delivery is sent; one that failed
        ``max_attempts`` times is dead-lettered (left for a person) and no
        longer owed. Shadow-mode approvals are never returned: going live does
        not flush the shadow backlog to reps.
        """
        unknown = set(channels) - set(DELIVERY_CHANNELS)
        if unknown or not channels:
            raise ValueError(f"channels must be a non-empty subset of {DELIVERY_CHANNELS}")

        def settled(channel: str):
            return exists().where(
                Delivery.item_id == Item.item_id,
                Delivery.channel == channel,
                or_(Delivery.status == "sent", and_(Delivery.status == "failed", Delivery.attempts >= max_attempts)),
            )

        query = (
            select(Item, Decision)
            .join(Decision, Decision.item_id == Item.item_id)
            .where(Decision.action.in_(APPROVING_ACTIONS), Decision.mode == "live")
            .where(or_(*[not_(settled(c)) for c in channels]))
            .order_by(Decision.decision_id)
        )
        with self._read() as s:
            pairs = [(item, decision) for item, decision in s.execute(query)]
            if not pairs:
                return []
            deliveries = s.scalars(select(Delivery).where(Delivery.item_id.in_([i.item_id for i, _ in pairs]))).all()
        done = {
            (d.item_id, d.channel)
            for d in deliveries
            if d.status == "sent" or (d.status == "failed" and d.attempts >= max_attempts)
        }
        out = []
        for item, decision in pairs:
            owed = tuple(c for c in channels if (item.item_id, c) not in done)
            if owed:
                out.append(ApprovedItem(item=item, decision=decision, owed=owed))
        return out

    def claim_delivery(
        self,
        item_id: str,
        channel: str,
        idempotency_key: str,
        *,
        lease: dt.timedelta = DEFAULT_LEASE,
        actor: str = "publisher",
    ) -> Claim:
        """Claim the right to send ``item_id`` on ``channel`` under ``idempotency_key``.

        - no row yet: a pending row is inserted (the key is unique in the
          database) and the claim is acquired;
        - sent: not acquired (``already_sent``) - do nothing;
        - pending with a live lease: not acquired - another worker is sending;
        - pending with an expired lease (a crash) or failed: re-acquired,
          ``attempts`` + 1; ``resumed`` tells a crash apart from a known failure.

        Refused (``SendsHalted``, audited) when the kill switch is engaged or in
        shadow mode, and (``NotApproved``, audited) unless the item has a live
        approval.
        """
        if channel not in DELIVERY_CHANNELS:
            raise ValueError(f"channel must be one of {DELIVERY_CHANNELS}, got {channel!r}")
        if not idempotency_key:
            raise ValueError("an idempotency key is required")
        try:
            return self._claim(item_id, channel, idempotency_key, lease, actor)
        except IntegrityError:
            # A concurrent claim won the unique key between our read and insert (possible only
            # without the write lock, e.g. a foreign writer): the row exists now, read it back.
            return self._claim(item_id, channel, idempotency_key, lease, actor)

    def _claim(self, item_id: str, channel: str, key: str, lease: dt.timedelta, actor: str) -> Claim:
        refusal: LedgerError | None = None
        with self._write() as s:
            now = self._now()
            existing = s.scalars(select(Delivery).where(Delivery.idempotency_key == key)).first()
            if existing is not None:
                if (existing.item_id, existing.channel) != (item_id, channel):
                    raise DeliveryConflict(
                        f"key {key!r} belongs to item {existing.item_id} on {existing.channel}, not {item_id} on {channel}"
                    )
                if existing.status == "sent":
                    return Claim(existing, acquired=False, previous_status="sent")
                if existing.status == "pending" and existing.lease_until is not None and existing.lease_until > now:
                    return Claim(existing, acquired=False, previous_status="pending")
            else:
                other = s.scalars(select(Delivery).where(Delivery.item_id == item_id, Delivery.channel == channel)).first()
                if other is not None:
                    raise DeliveryConflict(f"item {item_id} already has a {channel} delivery under key {other.idempotency_key!r}")
            allowed, why = self._sends_allowed(s)
            decision = s.scalars(select(Decision).where(Decision.item_id == item_id)).first()
            base = {"item_id": item_id, "channel": channel, "idempotency_key": key}
            if not allowed:
                self._audit(s, actor=actor, action="delivery.refused", subject_type="item", subject_id=item_id, payload={**base, "refusal": why})
                refusal = SendsHalted(why)
            elif decision is None or decision.action not in APPROVING_ACTIONS or decision.mode != "live":
                found = "no decision" if decision is None else f"{decision.action} in {decision.mode} mode"
                self._audit(
                    s, actor=actor, action="delivery.refused", subject_type="item", subject_id=item_id,
                    payload={**base, "refusal": "not_approved", "decision": found},
                )
                refusal = NotApproved(f"item {item_id} has no live approval ({found}): nothing is sent without one")
            elif existing is None:
                delivery = Delivery(
                    item_id=item_id, channel=channel, idempotency_key=key, status="pending", attempts=1,
                    created_at=now, claimed_at=now, lease_until=now + lease,
                )
                s.add(delivery)
                s.flush()
                self._audit(
                    s, actor=actor, action="delivery.claimed", subject_type="delivery", subject_id=key,
                    payload={**base, "attempt": 1, "decision_id": decision.decision_id},
                )
                return Claim(delivery, acquired=True, previous_status=None)
            else:
                previous = existing.status
                existing.status, existing.attempts = "pending", existing.attempts + 1
                existing.claimed_at, existing.lease_until = now, now + lease
                s.flush()
                self._audit(
                    s, actor=actor, action="delivery.reclaimed", subject_type="delivery", subject_id=key,
                    payload={**base, "attempt": existing.attempts, "previous_status": previous, "previous_error": existing.error},
                )
                return Claim(existing, acquired=True, previous_status=previous)
        assert refusal is not None
        raise refusal

    def mark_sent(self, idempotency_key: str, external_ref: str | None = None, *, actor: str = "publisher") -> Delivery:
        """Record a delivery as sent (idempotent: marking a sent delivery again changes nothing)."""
        with self._write() as s:
            delivery = s.scalars(select(Delivery).where(Delivery.idempotency_key == idempotency_key)).first()
            if delivery is None:
                raise UnknownDelivery(idempotency_key)
            if delivery.status == "sent":
                return delivery
            delivery.status, delivery.external_ref, delivery.sent_at = "sent", external_ref, self._now()
            delivery.lease_until, delivery.error = None, None
            s.flush()
            self._audit(
                s, actor=actor, action="delivery.sent", subject_type="delivery", subject_id=idempotency_key,
                payload={"item_id": delivery.item_id, "channel": delivery.channel, "external_ref": external_ref, "attempts": delivery.attempts},
            )
            return delivery

    def mark_failed(self, idempotency_key: str, error: str, *, actor: str = "publisher") -> Delivery:
        with self._write() as s:
            delivery = s.scalars(select(Delivery).where(Delivery.idempotency_key == idempotency_key)).first()
            if delivery is None:
                raise UnknownDelivery(idempotency_key)
            if delivery.status == "sent":
                raise LedgerError(f"delivery {idempotency_key!r} was already sent; it cannot fail now")
            delivery.status, delivery.error, delivery.lease_until = "failed", error, None
            s.flush()
            self._audit(
                s, actor=actor, action="delivery.failed", subject_type="delivery", subject_id=idempotency_key,
                payload={"item_id": delivery.item_id, "channel": delivery.channel, "error": error, "attempts": delivery.attempts},
            )
            return delivery

    def get_delivery(self, idempotency_key: str) -> Delivery | None:
        with self._read() as s:
            return s.scalars(select(Delivery).where(Delivery.idempotency_key == idempotency_key)).first()

    def deliveries_for(self, item_id: str) -> list[Delivery]:
        with self._read() as s:
            return list(s.scalars(select(Delivery).where(Delivery.item_id == item_id).order_by(Delivery.delivery_id)))

    # -- snoozes

    def add_snooze(
        self,
        opportunity_id: str,
        until: dt.date,
        *,
        by: str,
        reason: str | None = None,
        rule_id: str | None = None,
        starts: dt.date | None = None,
    ) -> Snooze:
        """Silence flags on a deal through ``until`` (inclusive), for one rule or (``rule_id=None``) all."""
        if starts is not None and starts > until:
            raise ValueError("a snooze cannot start after it ends")
        with self._write() as s:
            snooze = Snooze(
                opportunity_id=opportunity_id, rule_id=rule_id, starts=starts, until=until,
                reason=reason, by=by, created_at=self._now(),
            )
            s.add(snooze)
            s.flush()
            self._audit(
                s, actor=by, action="snooze.added", subject_type="opportunity", subject_id=opportunity_id,
                payload={"snooze_id": snooze.snooze_id, "rule_id": rule_id, "starts": starts, "until": until, "reason": reason},
            )
            return snooze

    def active_snoozes(self, as_of: dt.date) -> list[Snooze]:
        query = (
            select(Snooze)
            .where(Snooze.until >= as_of, or_(Snooze.starts.is_(None), Snooze.starts <= as_of))
            .order_by(Snooze.opportunity_id, Snooze.snooze_id)
        )
        with self._read() as s:
            return list(s.scalars(query))

    def is_snoozed(self, opportunity_id: str, rule_id: str, as_of: dt.date) -> bool:
        return any(
            sz.opportunity_id == opportunity_id and sz.rule_id in (None, rule_id) for sz in self.active_snoozes(as_of)
        )

    # -- gates and KPIs

    def _decided(
        self, *, since: dt.datetime | None = None, until: dt.datetime | None = None, mode: str | None = None
    ) -> list[tuple[str, str, dt.datetime, str, dt.datetime]]:
        """(rule_id, manager_id, item created_at, action, decided_at) for decisions in [since, until)."""
        query = select(Item.rule_id, Item.manager_id, Item.created_at, Decision.action, Decision.decided_at).join(
            Decision, Decision.item_id == Item.item_id
        )
        if since is not None:
            query = query.where(Decision.decided_at >= since)
        if until is not None:
            query = query.where(Decision.decided_at < until)
        if mode is not None:
            query = query.where(Decision.mode == mode)
        with self._read() as s:
            return [tuple(r) for r in s.execute(query)]

    @staticmethod
    def _window(since: dt.date | None, until: dt.date | None) -> dict[str, dt.datetime | None]:
        return {
            "since": _utc_day_start(since) if since else None,
            "until": _utc_day_start(until + dt.timedelta(days=1)) if until else None,
        }

    def shadow_agreement(
        self,
        as_of: dt.date,
        *,
        business_days: int = 10,
        by: Literal["rule", "manager", "all"] = "rule",
        mode: str | None = "shadow",
    ) -> dict[str, DecisionStats]:
        """Agreement (``DecisionStats.agreement_rate`` = approved / decided) over the last
        ``business_days`` business days ending ``as_of`` (by decision date, UTC), per rule,
        per manager, or overall (key ``"*"``). ``mode=None`` counts live decisions too.
        """
        start = window_start(as_of, business_days)
        stats: dict[str, DecisionStats] = {}
        for rule_id, manager_id, _created, action, _decided in self._decided(mode=mode, **self._window(start, as_of)):
            key = {"rule": rule_id, "manager": manager_id, "all": "*"}[by]
            stats[key] = stats.get(key, DecisionStats(key))._add(action)
        return dict(sorted(stats.items()))

    def median_business_days_to_approval(
        self,
        *,
        since: dt.date | None = None,
        until: dt.date | None = None,
        manager_id: str | None = None,
        rule_id: str | None = None,
    ) -> float | None:
        """Median business days from flag (item created) to approval or edit; None when nothing was approved."""
        days = [
            business_days_between(created.date(), decided.date())
            for r_id, m_id, created, action, decided in self._decided(**self._window(since, until))
            if action in APPROVING_ACTIONS and manager_id in (None, m_id) and rule_id in (None, r_id)
        ]
        return float(statistics.median(days)) if days else None

    def dismissal_rate_by_rule(self, *, since: dt.date | None = None, until: dt.date | None = None) -> dict[str, DecisionStats]:
        """Per rule; read ``.dismissal_rate`` (dismissed / decided)."""
        stats: dict[str, DecisionStats] = {}
        for rule_id, _m, _c, action, _d in self._decided(**self._window(since, until)):
            stats[rule_id] = stats.get(rule_id, DecisionStats(rule_id))._add(action)
        return dict(sorted(stats.items()))

    def decisions_by_manager(self, *, since: dt.date | None = None, until: dt.date | None = None) -> dict[str, DecisionStats]:
        """Per manager (the items' manager, whoever decided): counts by action."""
        stats: dict[str, DecisionStats] = {}
        for _r, manager_id, _c, action, _d in self._decided(**self._window(since, until)):
            stats[manager_id] = stats.get(manager_id, DecisionStats(manager_id))._add(action)
        return dict(sorted(stats.items()))
