"""The ledger's engine, schema upgrades and its one unit of work.

Every change goes through ``UnitOfWork.write()``: one short transaction that
holds the ledger's single write lock from its first statement and in which
the change and its audit row (``UnitOfWork.audit``) are written together, so
every interface (CLI, Slack app, Dagster assets) gets the same rules by
calling the same functions.

Concurrency: every write transaction first takes the write lock (SQLite
``BEGIN IMMEDIATE`` in WAL mode, waiting up to the busy timeout; Postgres a
transaction-scoped advisory lock). Writes are short, so waiting is cheap, and
serialising them is what keeps the audit chain linear, the audit ``seq``
gapless and decision ids in commit order (a safe sensor cursor).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from agents.ledger.audit import GENESIS_HASH, canonical_json, compute_row_hash
from agents.ledger.models import AuditRow, Meta

LEDGER_FILENAME = "ledger.sqlite"
DEFAULT_BUSY_TIMEOUT_S = 15.0
# Arbitrary constant naming the ledger's write lock among Postgres advisory locks.
PG_WRITE_LOCK_KEY = 5_177_201_911


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


def jsonable(value: Any) -> Any:
    """Plain JSON (dates as ISO strings, pydantic models dumped) so what is stored is what is audited."""
    return json.loads(canonical_json(value))


class UnitOfWork:
    """Transactions over the ledger database, and the one function that writes an audit row."""

    def __init__(self, engine: Engine, *, clock: Callable[[], dt.datetime] | None = None):
        self.engine = engine
        self.read_engine = engine.execution_options(ledger_read_only=True)
        self._clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self._batch = threading.local()  # the open batch() transaction of this thread, if any

    def now(self) -> dt.datetime:
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
        with self.write() as session:
            self._batch.session = session
            try:
                yield
            finally:
                self._batch.session = None

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """One short write transaction holding the ledger's write lock from its first statement
        (inside :meth:`batch`, the batch's transaction)."""
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
    def read(self) -> Iterator[Session]:
        # Inside batch() a read joins the batch's transaction: it sees the batch's own writes (a digest's
        # items, their decisions) and adds no transaction of its own to the one the batch promises.
        if (batch := getattr(self._batch, "session", None)) is not None:
            yield batch
            return
        with Session(self.read_engine, expire_on_commit=False) as session, session.begin():
            yield session

    def audit(
        self,
        session: Session,
        *,
        actor: str,
        action: str,
        subject_type: str,
        subject_id: str,
        payload: Mapping[str, Any] | None = None,
        flush: bool = True,
    ) -> AuditRow:
        """Append the next audit row in ``session``'s transaction (it commits or rolls back with the change).
        ``flush=False``: the row is only added to the session (a caller writing many rows flushes them once)."""
        # The chain's tail: read once per transaction, then remembered on the session (this transaction holds
        # the write lock, so no other writer can append meanwhile): a batch of N rows costs one read, not N.
        tail = session.info.get("ledger_audit_tail")
        if tail is None:
            tail = session.execute(select(AuditRow.seq, AuditRow.row_hash).order_by(AuditRow.seq.desc()).limit(1)).first()
        seq, prev_hash = (tail[0] + 1, tail[1]) if tail else (1, GENESIS_HASH)
        at = self.now()
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
        if flush:
            session.flush()
        session.info["ledger_audit_tail"] = (row.seq, row.row_hash)
        return row

    def get_meta(self, session: Session, key: str, default: Any) -> Any:
        row = session.get(Meta, key)
        return default if row is None else row.value

    def set_meta(self, session: Session, key: str, value: Any, actor: str) -> None:
        row = session.get(Meta, key)
        if row is None:
            session.add(Meta(key=key, value=value, updated_at=self.now(), updated_by=actor))
        else:
            row.value, row.updated_at, row.updated_by = value, self.now(), actor
        session.flush()
