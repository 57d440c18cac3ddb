"""The local Dagster instance's event log: Dagster's SQLite event log, without a connection and an fsync per event.

Dagster's ``SqliteEventLogStorage`` builds a new SQLAlchemy engine and opens a new SQLite connection for every
read and write (about 2,300 at scale 1: one run of the daily job stores ~750 events, each mirrored into the
cross-run index), and SQLite's default ``synchronous=FULL`` makes each commit, and each last-connection close
(a WAL checkpoint), wait for the disk. On a busy disk that was a third of the run's wall time.

This subclass changes only how connections are made, never what is stored or where (the same files under
``<DAGSTER_HOME>/history/runs``, read by the bench, the progress display and ``dagster dev``):

- one engine per shard, kept with its connection (a few shards, least recently used first out), not an engine
  and a connection per statement; a table found once (``has_table``, asked on every asset-check and tagged
  asset event) is not looked up again;
- ``PRAGMA synchronous=NORMAL`` on every connection: in WAL mode (Dagster puts these files in WAL mode) a
  commit no longer waits for the disk, and a crash of the process loses nothing committed (only an OS crash
  or power loss may lose the last transactions, never corrupt the file);
- after a write to a run's shard, its WAL is checkpointed into ``<run_id>.db`` as Dagster's close did: that
  file's change is what ``dagster dev``'s file watcher reacts to (the live run view);
- a batch of events (Dagster batches the ~240 "planned" events it writes when a run is created, when
  ``DAGSTER_EVENT_BATCH_SIZE`` is set: :data:`EVENT_BATCH_SIZE`, set by sales_supervisor.pipeline for its runs)
  is stored event by event as ``store_event`` does, through one connection to the run's shard and with one
  checkpoint for the batch.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as db
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool

SYNCHRONOUS = "NORMAL"
_KEPT_ENGINES = 8
EVENT_BATCH_SIZE = 1000  # DAGSTER_EVENT_BATCH_SIZE for the runs of sales_supervisor.pipeline


def _set_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
    finally:
        cursor.close()


class SupervisorSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log with kept connections and ``synchronous=NORMAL`` (see the module docstring)."""

    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_lock = threading.Lock()
        self._tables_found: set[str] = set()
        self._held: dict[str, Connection] = {}
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> SupervisorSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> Engine:
        with self._engines_lock:
            engine = self._engines.get(shard)
            if engine is not None:
                self._engines.move_to_end(shard)
                return engine
            engine = db.create_engine(
                self.conn_string_for_shard(shard),
                # One kept connection, used under the storage's lock from whichever thread holds it; ``has_table``
                # may open a second, short-lived one beside it.
                poolclass=QueuePool, pool_size=1, max_overflow=2,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
            )
            db.event.listen(engine, "connect", _set_pragmas)
            self._engines[shard] = engine
            while len(self._engines) > _KEPT_ENGINES:
                _, old = self._engines.popitem(last=False)
                old.dispose()
            return engine

    def has_table(self, table_name: str) -> bool:
        # Tables are only ever added (migrations), so a table once found stays found.
        if table_name not in self._tables_found:
            engine = self._engine(INDEX_SHARD_NAME)
            with engine.connect() as conn:  # may be asked while the index's kept connection is in use
                if not engine.dialect.has_table(conn, table_name):
                    return False
            self._tables_found.add(table_name)
        return True

    def _ready_engine(self, shard: str) -> Engine:
        engine = self._engine(shard)
        if shard not in self._initialized_dbs:
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        return engine

    @staticmethod
    @contextmanager
    def _checkpointed(conn: Connection, shard: str) -> Iterator[None]:
        """Checkpoint a run's shard after a block that wrote to it (what Dagster's close of the connection did)."""
        raw = conn.connection.dbapi_connection
        changes = raw.total_changes
        yield
        if shard != INDEX_SHARD_NAME and raw.total_changes != changes:
            raw.execute("PRAGMA wal_checkpoint(PASSIVE)")

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            held = self._held.get(shard)
            if held is not None:  # inside store_event_batch: checkpointed once, at the batch's end
                with held.begin():
                    yield held
                return
            with self._ready_engine(shard).connect() as conn, self._checkpointed(conn, shard):
                with conn.begin():
                    yield conn

    @contextmanager
    def _holding(self, shard: str) -> Iterator[None]:
        """Keep one connection to ``shard`` for every use (each still its own transaction) until the block ends."""
        with self._db_lock:
            conn = self._held[shard] = self._ready_engine(shard).connect()
            checkpointed = self._checkpointed(conn, shard)
            checkpointed.__enter__()
        try:
            yield
        finally:
            with self._db_lock:
                del self._held[shard]
                try:
                    checkpointed.__exit__(None, None, None)
                finally:
                    conn.close()

    def store_event_batch(self, events) -> None:
        with contextlib.ExitStack() as stack:
            for run_id in dict.fromkeys(e.run_id for e in events):
                if run_id not in self._held:
                    stack.enter_context(self._holding(run_id))
            for event in events:
                self.store_event(event)

    def _dispose_engines(self, keep_index: bool = False) -> None:
        with self._engines_lock:
            for shard in [s for s in self._engines if not (keep_index and s == INDEX_SHARD_NAME)]:
                self._engines.pop(shard).dispose()

    def wipe(self) -> None:
        with self._db_lock:
            self._dispose_engines(keep_index=True)  # the run files are deleted: no connection may outlive them
        super().wipe()

    def dispose(self) -> None:
        super().dispose()
        self._dispose_engines()
