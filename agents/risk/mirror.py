"""The deal features on a server warehouse (PostgreSQL): the rows they need, read from the server into
an in-memory DuckDB, where :mod:`agents.risk.features` (DuckDB SQL) reads them as it reads a DuckDB
warehouse.

The set-based engine first runs its gate query (the rule conditions, :mod:`agents.risk.setbased`) on the
server itself; only the candidate deals it lets through need features. So the mirror holds, for those
deals, their stage, field and activity history (and the buying roles of those activities), plus the
tables every deal's features read whole (deals, reps; accounts of the candidates) and, per stage, the row
that carries its lowest stage order (the features' fallback order is the same as over the whole table).
Without candidates (the row-by-row engine, the backtest) it holds the marts' tables whole.

Plain Python; the server connection is an :class:`agents.warehouse.WarehouseConnection`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agents.risk.features import SourceCoverage
    from agents.warehouse import WarehouseConnection

MARTS = "marts"
# The marts the deal and rep features read (agents/risk/features.py).
FEATURE_TABLES = (
    "fct_opportunities", "fct_stage_history", "fct_field_history", "fct_activities",
    "bridge_activity_contacts", "dim_accounts", "dim_reps",
)

# PostgreSQL's information_schema type names -> (Arrow type name, DuckDB type, SQL cast on the server).
_TYPES: dict[str, tuple[str, str, str | None]] = {
    "text": ("string", "VARCHAR", None),
    "character varying": ("string", "VARCHAR", None),
    "character": ("string", "VARCHAR", None),
    "integer": ("int64", "BIGINT", "bigint"),
    "smallint": ("int64", "BIGINT", "bigint"),
    "bigint": ("int64", "BIGINT", None),
    "numeric": ("float64", "DOUBLE", "double precision"),
    "double precision": ("float64", "DOUBLE", None),
    "real": ("float64", "DOUBLE", "double precision"),
    "boolean": ("bool", "BOOLEAN", None),
    "date": ("date32", "DATE", None),
    "timestamp without time zone": ("timestamp", "TIMESTAMP", None),
    "timestamp with time zone": ("timestamp", "TIMESTAMP", "timestamp"),
}


def server_coverage(con: WarehouseConnection) -> SourceCoverage:
    """Which marts hold rows at all, asked of the server (the mirror may hold a subset)."""
    from agents.risk.features import SourceCoverage

    def has(sql: str) -> bool:
        return bool(con.execute(f"select exists ({sql})").scalar())

    return SourceCoverage(
        has_stage_history=has(f"select 1 from {MARTS}.fct_stage_history"),
        has_activities=has(f"select 1 from {MARTS}.fct_activities"),
        has_field_history=has(f"select 1 from {MARTS}.fct_field_history"),
        has_buying_roles=has(f"select 1 from {MARTS}.bridge_activity_contacts where buying_role is not null"),
    )


def _arrow_type(name: str):
    import pyarrow as pa

    return {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_(),
            "date32": pa.date32(), "timestamp": pa.timestamp("us")}[name]


def _copy(con: WarehouseConnection, duck: Any, table: str, where: str = "", params: dict | None = None) -> int:
    """``marts.<table>`` (the rows ``where`` selects) from the server into the same table in ``duck``."""
    import pyarrow as pa

    cols = con.execute(
        "select column_name, data_type from information_schema.columns where table_schema = :s and table_name = :t "
        "order by ordinal_position",
        {"s": MARTS, "t": table},
    ).fetchall()
    if not cols:
        raise LookupError(f"{MARTS}.{table} is not in the warehouse: build the marts first (dbt build)")
    spec = [(name, _TYPES.get(kind, ("string", "VARCHAR", "text"))) for name, kind in cols]
    q = con.warehouse.quote
    select = ", ".join(f"{q(n)}::{cast}" if cast else q(n) for n, (_, _, cast) in spec)
    rows = con.execute(f"select {select} from {MARTS}.{q(table)} t {where}", params).fetchall()
    arrow = pa.table(
        {n: pa.array([r[i] for r in rows], type=_arrow_type(a)) for i, (n, (a, _, _)) in enumerate(spec)}
    )
    duck.execute(f"create table {MARTS}.{q(table)} ({', '.join(f'{q(n)} {d}' for n, (_, d, _) in spec)})")
    duck.register("_mirror_rows", arrow)
    try:
        duck.execute(f"insert into {MARTS}.{q(table)} select * from _mirror_rows")
    finally:
        duck.unregister("_mirror_rows")
    return len(rows)


@contextlib.contextmanager
def feature_mirror(con: WarehouseConnection, only: Sequence[str] | None = None) -> Iterator[Any]:
    """An in-memory DuckDB holding what the features of ``only`` (every deal when None) read, closed on exit."""
    import duckdb

    duck = duckdb.connect()
    try:
        duck.execute(f"create schema {MARTS}")
        if only is None:
            for table in FEATURE_TABLES:
                _copy(con, duck, table)
        else:
            ids = {"ids": list(only)}
            mine = "where t.opportunity_id = any(:ids)"
            _copy(con, duck, "fct_opportunities")
            _copy(con, duck, "dim_reps")
            _copy(con, duck, "dim_accounts", f"where t.account_id in (select account_id from {MARTS}.fct_opportunities "
                                             "where opportunity_id = any(:ids))", ids)
            # The candidates' stints, and per stage the row with its lowest order (the features' fallback order).
            _copy(con, duck, "fct_stage_history",
                  f"{mine} or t.stage_history_id in (select distinct on (stage) stage_history_id "
                  f"from {MARTS}.fct_stage_history where stage_order is not null order by stage, stage_order, "
                  "stage_history_id)", ids)
            _copy(con, duck, "fct_field_history", mine, ids)
            _copy(con, duck, "fct_activities", mine, ids)
            _copy(con, duck, "bridge_activity_contacts",
                  f"where t.activity_id in (select activity_id from {MARTS}.fct_activities where opportunity_id = any(:ids))",
                  ids)
        yield duck
    finally:
        duck.close()
