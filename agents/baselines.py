"""Governed baselines: saved queries of the semantic layer, stored in the warehouse with their provenance.

``semantic.<saved_query>`` holds the latest answer (replaced each run);
``semantic.semantic_queries`` keeps every request ever made (append-only): the
query id, the request, the generated SQL, the semantic manifest's hash, the
result rows, the as-of date and the run. Risk flags cite these query ids.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from agents.semantic_layer import SemanticLayer, SemanticQueryResult
from agents.warehouse import Warehouse

SEMANTIC_SCHEMA = "semantic"
QUERIES_TABLE = "semantic_queries"

_QUERIES_DDL = f"""
create table if not exists {SEMANTIC_SCHEMA}.{QUERIES_TABLE} (
    query_id VARCHAR, saved_query VARCHAR, request_json VARCHAR, "sql" VARCHAR, manifest_hash VARCHAR,
    result_hash VARCHAR, row_count BIGINT, rows_json VARCHAR, metricflow_version VARCHAR,
    as_of DATE, run_id VARCHAR, executed_at TIMESTAMP
)"""


_QUERIES_COLUMNS = (
    "query_id", "saved_query", "request_json", "sql", "manifest_hash", "result_hash", "row_count", "rows_json",
    "metricflow_version", "as_of", "run_id", "executed_at",
)
_QUERIES_PARAMS = ", ".join(f":{c}" for c in _QUERIES_COLUMNS)


def _replace_table(con, schema: str, name: str, frame) -> None:
    """Replace schema.name with a DataFrame's rows (its columns and types)."""
    table = con.table(schema, name)
    if con.dialect == "duckdb":
        con.raw.register("result_frame", frame)
        try:
            con.execute(f"create or replace table {table} as select * from result_frame")
        finally:
            con.raw.unregister("result_frame")
        return
    import pyarrow as pa

    data = pa.Table.from_pandas(frame, preserve_index=False)
    con.execute(f"drop table if exists {table}")
    con.execute(f"create table {table} ({', '.join(f'{con.warehouse.quote(f.name)} {_pg_type(f.type)}' for f in data.schema)})")
    con.insert_arrow(schema, name, data)


def _pg_type(t) -> str:
    import pyarrow as pa

    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t):
        return "bigint"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "double precision"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_date(t):
        return "date"
    return "text"


def run_saved_query(layer: SemanticLayer, name: str) -> SemanticQueryResult:
    return layer.saved_query(name)


def store_result(warehouse: Warehouse | Path, result: SemanticQueryResult, *, as_of: dt.date, run_id: str) -> None:
    """Replace semantic.<saved_query> with the result and append its provenance."""
    name = result.request.saved_query
    if not name:
        raise ValueError("store_result stores saved-query results (request.saved_query is empty)")
    frame = result.to_dataframe()
    wh = Warehouse.coerce(warehouse)
    with wh.connect() as con:
        con.execute(f"create schema if not exists {SEMANTIC_SCHEMA}")
        _replace_table(con, SEMANTIC_SCHEMA, name, frame)
        con.execute(_QUERIES_DDL)
        con.execute(
            f"insert into {SEMANTIC_SCHEMA}.{QUERIES_TABLE} values ({_QUERIES_PARAMS})",
            dict(zip(_QUERIES_COLUMNS, [
                result.query_id,
                name,
                json.dumps(result.request.as_dict(), sort_keys=True),
                result.sql,
                result.manifest_hash,
                result.result_hash,
                len(result.rows),
                json.dumps([dict(r) for r in result.rows], default=str),
                result.metricflow_version,
                as_of,
                run_id,
                dt.datetime.now(dt.UTC).replace(tzinfo=None),
            ])),
        )
