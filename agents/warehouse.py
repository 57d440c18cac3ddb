"""The one way code reaches the warehouse: a DuckDB file (the default) or a PostgreSQL database.

One setting picks it (``SALES_SUPERVISOR_WAREHOUSE=duckdb|postgres``; for PostgreSQL also
``SALES_SUPERVISOR_WAREHOUSE_URL=postgresql://user:pass@host:5432/dbname``); every reader and
writer of the warehouse (landing, checks, semantic layer, risk, evidence, digests) gets a
:class:`Warehouse` from :meth:`Warehouse.from_settings` and never calls ``duckdb.connect`` or
``psycopg.connect`` itself. dbt (profiles.yml), dlt and MetricFlow get their configuration from
the same object (:meth:`Warehouse.dbt_env`, :meth:`Warehouse.dlt_destination`).

Usage::

    wh = Warehouse.from_settings(settings)
    with wh.connect(read_only=True) as con:
        rows = con.execute(
            f"select opportunity_id from {wh.table('marts', 'fct_opportunities')} where stage = :stage",
            {"stage": "negotiation"},
        ).fetchall()
        table = con.execute("select * from marts.dim_reps").fetch_arrow()   # or .fetch_df()
    with wh.connect() as con:                  # one transaction: committed on exit, rolled back on error
        con.insert_arrow("risk", "risk_flags", arrow_table)

Parameter style, the same on both: ``:name`` placeholders with a dict of values (the syntax of
SQLAlchemy's ``text()``, whose parser this module uses: ``::`` casts are not placeholders, ``\\:``
escapes a colon). They are rewritten to the driver's own style (DuckDB ``?``, psycopg
``%(name)s``), so values are always bound, never pasted into SQL. A list value with
``= any(:ids)`` works on both. Without parameters the SQL is passed through unchanged.

Transactions: on PostgreSQL a ``connect()`` block is one transaction (committed on a clean exit,
rolled back on an exception); on DuckDB each statement commits on its own, as before, unless
the caller issues ``begin``/``commit`` (use :meth:`WarehouseConnection.transaction` for both).

SQL that must run on both keeps to the common subset, or branches on ``wh.dialect``
(``"duckdb"`` or ``"postgres"``). ``con.raw`` is the driver connection, for the rare
dialect-specific call (DuckDB's ``register``, psycopg's ``copy``).

Plain Python: no Dagster import. Drivers are imported lazily.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from sales_supervisor.settings import Settings

__all__ = ["Warehouse", "WarehouseConnection", "WarehouseError", "WarehouseResult", "RunConnection", "DIALECTS"]

Dialect = Literal["duckdb", "postgres"]
DIALECTS: tuple[str, ...] = ("duckdb", "postgres")

# profiles.yml reads these (dbt_project/profiles.yml); dbt_env() sets them.
DBT_TARGET_ENV = "DBT_TARGET"
DUCKDB_PATH_ENV = "SALES_SUPERVISOR_DUCKDB_PATH"
PG_ENV = {
    "host": "SALES_SUPERVISOR_PG_HOST",
    "port": "SALES_SUPERVISOR_PG_PORT",
    "user": "SALES_SUPERVISOR_PG_USER",
    "password": "SALES_SUPERVISOR_PG_PASSWORD",
    "dbname": "SALES_SUPERVISOR_PG_DBNAME",
}


class WarehouseError(RuntimeError):
    """The warehouse is misconfigured or cannot be reached."""


@functools.lru_cache(maxsize=1024)
def _compile(sql: str, dialect: str) -> tuple[str, tuple[str, ...] | None]:
    """``:name`` SQL in the driver's paramstyle; the parameter order for positional drivers."""
    from sqlalchemy import text
    from sqlalchemy.engine.default import DefaultDialect

    if dialect == "postgres":
        from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

        compiled = text(sql).compile(dialect=PGDialect_psycopg())
        return compiled.string, None
    compiled = text(sql).compile(dialect=DefaultDialect(paramstyle="qmark"))
    return compiled.string, tuple(compiled.positiontup or ())


def _pg_conninfo(url: str) -> dict[str, Any]:
    """A SQLAlchemy- or libpq-style URL (``postgresql[+driver]://user:pw@host:port/db``) as parts."""
    from sqlalchemy.engine import make_url

    try:
        u = make_url(url)
    except Exception as exc:  # noqa: BLE001 - say which setting is wrong
        raise WarehouseError(f"SALES_SUPERVISOR_WAREHOUSE_URL is not a database URL: {exc}") from exc
    if not u.drivername.startswith("postgres"):
        raise WarehouseError(
            f"SALES_SUPERVISOR_WAREHOUSE_URL must be a postgresql:// URL, got a {u.drivername!r} URL"
        )
    return {
        "host": u.host or "localhost",
        "port": int(u.port or 5432),
        "user": u.username or "postgres",
        "password": u.password or "",
        "dbname": u.database or "postgres",
        **{k: v for k, v in u.query.items() if isinstance(v, str)},
    }


class WarehouseResult:
    """The rows of one statement: ``fetchall``/``fetchone`` (tuples), ``fetch_arrow``, ``fetch_df``."""

    def __init__(self, cursor: Any, dialect: str) -> None:
        self._cursor = cursor
        self._dialect = dialect

    @property
    def columns(self) -> list[str]:
        return [d[0] for d in (self._cursor.description or ())]

    def fetchall(self) -> list[tuple]:
        return [tuple(r) for r in self._cursor.fetchall()]

    def fetchone(self) -> tuple | None:
        row = self._cursor.fetchone()
        return tuple(row) if row is not None else None

    def scalar(self) -> Any:
        row = self.fetchone()
        return row[0] if row else None

    def mappings(self) -> list[dict[str, Any]]:
        cols = self.columns
        return [dict(zip(cols, r)) for r in self._cursor.fetchall()]

    def fetch_arrow(self) -> pa.Table:
        if self._dialect == "duckdb":
            to_arrow = getattr(self._cursor, "to_arrow_table", None) or self._cursor.fetch_arrow_table
            return to_arrow()
        import pyarrow as pa

        cols = self.columns
        rows = self._cursor.fetchall()
        return pa.table({c: [r[i] for r in rows] for i, c in enumerate(cols)}) if cols else pa.table({})

    def fetch_df(self) -> pd.DataFrame:
        if self._dialect == "duckdb":
            return self._cursor.df()
        import pandas as pd

        return pd.DataFrame(self._cursor.fetchall(), columns=self.columns)


class WarehouseConnection:
    """A connection to the warehouse; see the module docstring for the parameter style."""

    def __init__(self, warehouse: Warehouse, raw: Any) -> None:
        self.warehouse = warehouse
        self.dialect: str = warehouse.dialect
        self.raw = raw

    @classmethod
    def adopt(cls, con: Any) -> WarehouseConnection:
        """A connection as this API: a WarehouseConnection as is, a driver connection (DuckDB, psycopg) wrapped."""
        if isinstance(con, WarehouseConnection):
            return con
        if type(con).__module__.startswith("psycopg"):
            return cls(Warehouse("postgres", url="postgresql://adopted/connection"), con)
        return cls(Warehouse("duckdb", path=Path("adopted-connection")), con)

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> WarehouseResult:
        if self.dialect == "duckdb":
            if params:
                compiled, names = _compile(sql, "duckdb")
                missing = [n for n in names or () if n not in params]
                if missing:
                    raise WarehouseError(f"no value for parameter(s) {', '.join(missing)} in: {sql[:200]}")
                cursor = self.raw.execute(compiled, [params[n] for n in names or ()])
            else:
                cursor = self.raw.execute(sql)
            return WarehouseResult(cursor, "duckdb")
        cur = self.raw.cursor()
        if params:
            cur.execute(_compile(sql, "postgres")[0], dict(params))
        else:
            cur.execute(sql)
        return WarehouseResult(cur, "postgres")

    def executemany(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        if self.dialect == "duckdb":
            compiled, names = _compile(sql, "duckdb")
            self.raw.executemany(compiled, [[r[n] for n in names or ()] for r in rows])
        else:
            with self.raw.cursor() as cur:
                cur.executemany(_compile(sql, "postgres")[0], [dict(r) for r in rows])

    @contextlib.contextmanager
    def transaction(self) -> Iterator[WarehouseConnection]:
        """All statements inside commit together or not at all (both dialects)."""
        if self.dialect == "duckdb":
            self.raw.execute("begin transaction")
            try:
                yield self
            except BaseException:
                self.raw.execute("rollback")
                raise
            self.raw.execute("commit")
        else:
            with self.raw.transaction():
                yield self

    def table(self, schema: str, name: str) -> str:
        return self.warehouse.table(schema, name)

    def has_table(self, schema: str, name: str) -> bool:
        """Whether schema.name exists as a table or view (no error, no aborted transaction)."""
        return bool(
            self.execute(
                "select count(*) from information_schema.tables where table_schema = :s and table_name = :n",
                {"s": schema, "n": name},
            ).scalar()
        )

    def columns(self, schema: str, name: str) -> list[str]:
        """The column names of schema.name in table order (empty when it does not exist)."""
        rows = self.execute(
            "select column_name from information_schema.columns where table_schema = :s and table_name = :n "
            "order by ordinal_position",
            {"s": schema, "n": name},
        ).fetchall()
        return [r[0] for r in rows]

    def insert_arrow(self, schema: str, name: str, data: pa.Table) -> int:
        """Bulk-insert an Arrow table into an existing table, matching columns by name.

        DuckDB scans the Arrow table directly; PostgreSQL takes it through COPY (binary-safe,
        one round trip per batch), never one INSERT per row."""
        if data.num_rows == 0:
            return 0
        cols = ", ".join(self.warehouse.quote(c) for c in data.column_names)
        target = self.table(schema, name)
        if self.dialect == "duckdb":
            view = "_warehouse_insert_arrow"
            self.raw.register(view, data)
            try:
                self.raw.execute(f"insert into {target} ({cols}) select {cols} from {view}")
            finally:
                self.raw.unregister(view)
            return data.num_rows
        with self.raw.cursor() as cur, cur.copy(f"copy {target} ({cols}) from stdin") as copy:
            for batch in data.to_batches():
                columns = [c.to_pylist() for c in batch.columns]
                for row in zip(*columns):
                    copy.write_row(row)
        return data.num_rows


@dataclass(frozen=True)
class Warehouse:
    """Where the warehouse is: ``dialect`` "duckdb" (``path``) or "postgres" (``url``)."""

    dialect: Dialect
    path: Path | None = None
    url: str | None = None

    def __post_init__(self) -> None:
        if self.dialect not in DIALECTS:
            raise WarehouseError(f"unknown warehouse {self.dialect!r}: choose one of {', '.join(DIALECTS)}")
        if self.dialect == "duckdb" and self.path is None:
            raise WarehouseError("a DuckDB warehouse needs a file path")
        if self.dialect == "postgres":
            if not self.url:
                raise WarehouseError(
                    "SALES_SUPERVISOR_WAREHOUSE=postgres needs SALES_SUPERVISOR_WAREHOUSE_URL "
                    "(postgresql://user:password@host:5432/dbname)"
                )
            _pg_conninfo(self.url)  # fail early on a malformed URL

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_settings(cls, settings: Settings) -> Warehouse:
        kind = getattr(settings, "warehouse", "duckdb") or "duckdb"
        if kind == "postgres":
            return cls("postgres", url=settings.warehouse_url)
        return cls("duckdb", path=settings.warehouse_path)

    @classmethod
    def duckdb(cls, path: Path | str) -> Warehouse:
        return cls("duckdb", path=Path(path))

    @classmethod
    def coerce(cls, value: Warehouse | Path | str) -> Warehouse:
        """A Warehouse as is; a path (what older callers pass) as that DuckDB file."""
        if isinstance(value, Warehouse):
            return value
        if isinstance(value, str) and value.startswith("postgres"):
            return cls("postgres", url=value)
        return cls.duckdb(value)

    # -- naming ---------------------------------------------------------------------------

    @staticmethod
    def quote(identifier: str) -> str:
        return '"' + identifier.replace('"', '""') + '"'

    def table(self, schema: str, name: str) -> str:
        """A schema-qualified, quoted table name: ``wh.table("marts", "dim_reps")``."""
        return f"{self.quote(schema)}.{self.quote(name)}"

    @property
    def label(self) -> str:
        """Where it is, for messages (never the password)."""
        if self.dialect == "duckdb":
            return f"DuckDB file {self.path}"
        info = _pg_conninfo(self.url or "")
        return f"PostgreSQL database {info['dbname']} on {info['host']}:{info['port']}"

    def exists(self) -> bool:
        """Whether there is a warehouse to read (a DuckDB file not yet created is not)."""
        if self.dialect == "duckdb":
            return bool(self.path and self.path.exists())
        return True

    # -- connections ------------------------------------------------------------------------

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[WarehouseConnection]:
        """A connection, closed on exit. While a run connection to this DuckDB file is open in this process
        (:meth:`run_connection`), it is that one, left open (a read-only request gets it too: DuckDB admits
        one configuration per file within a process)."""
        if self.dialect == "duckdb":
            shared = _RUN_CONNECTIONS.get(self._key())
            if shared is not None:
                yield shared
                return
            assert self.path is not None
            if not read_only:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            raw = self._open_driver(read_only)
            try:
                yield WarehouseConnection(self, raw)
            finally:
                raw.close()
            return
        raw = self._open_driver(read_only)
        raw.read_only = read_only
        try:
            yield WarehouseConnection(self, raw)
            raw.commit()
        except BaseException:
            raw.rollback()
            raise
        finally:
            raw.close()

    def _open_driver(self, read_only: bool = False) -> Any:
        """The driver's connection (every connection this module makes is opened here)."""
        if self.dialect == "duckdb":
            import duckdb

            return duckdb.connect(str(self.path), read_only=read_only)
        import psycopg

        try:
            return psycopg.connect(**_pg_conninfo(self.url or ""))
        except psycopg.OperationalError as exc:
            raise WarehouseError(f"cannot connect to the {self.label}: {exc}".strip()) from exc

    def _key(self) -> str:
        return str(Path(self.path).resolve()) if self.path is not None else ""

    def run_connection(self) -> RunConnection:
        """The run's one connection to a DuckDB file (opened now, read-write): until it is closed, every
        :meth:`connect` to this file in this process gets it instead of opening the file again."""
        if self.dialect != "duckdb":
            raise WarehouseError("a run connection is for the DuckDB file (a server warehouse takes many)")
        return RunConnection(self)

    # -- the tools' configuration -------------------------------------------------------------

    def dbt_env(self) -> dict[str, str]:
        """Environment variables profiles.yml reads to reach this warehouse."""
        if self.dialect == "duckdb":
            return {DBT_TARGET_ENV: "duckdb", DUCKDB_PATH_ENV: str(self.path)}
        info = _pg_conninfo(self.url or "")
        return {DBT_TARGET_ENV: "postgres", **{env: str(info[key]) for key, env in PG_ENV.items()}}

    def dlt_destination(self) -> Any:
        """The dlt destination that lands into this warehouse."""
        import dlt

        if self.dialect == "duckdb":
            return dlt.destinations.duckdb(str(self.path))
        info = _pg_conninfo(self.url or "")
        from urllib.parse import quote

        creds = (
            f"postgresql://{quote(info['user'], safe='')}:{quote(info['password'], safe='')}"
            f"@{info['host']}:{info['port']}/{info['dbname']}"
        )
        return dlt.destinations.postgres(credentials=creds)


# The open run connections of this process, by resolved DuckDB file path.
_RUN_CONNECTIONS: dict[str, WarehouseConnection] = {}


class RunConnection:
    """One read-write connection to a DuckDB file shared by a whole run (the Dagster resource opens it for
    the steps after dbt: risk, drafts, digests and the checks that run then). Registered for this process
    while open, so code that asks the Warehouse for a connection reuses it; :meth:`close` releases the file."""

    def __init__(self, warehouse: Warehouse) -> None:
        key = warehouse._key()
        self.warehouse = warehouse
        existing = _RUN_CONNECTIONS.get(key)
        self._owner = existing is None  # one already open in this process is shared, not opened again
        if existing is None:
            assert warehouse.path is not None
            warehouse.path.parent.mkdir(parents=True, exist_ok=True)
            existing = _RUN_CONNECTIONS[key] = WarehouseConnection(warehouse, warehouse._open_driver(read_only=False))
        self.connection = existing

    @property
    def closed(self) -> bool:
        return _RUN_CONNECTIONS.get(self.warehouse._key()) is not self.connection

    def close(self) -> None:
        key = self.warehouse._key()
        if self._owner and _RUN_CONNECTIONS.get(key) is self.connection:
            del _RUN_CONNECTIONS[key]
            self.connection.raw.close()


def close_run_connections() -> int:
    """Close every run connection open in this process (at the end of an in-process run); how many."""
    open_ = list(_RUN_CONNECTIONS.items())
    for key, con in open_:
        _RUN_CONNECTIONS.pop(key, None)
        con.raw.close()
    return len(open_)
