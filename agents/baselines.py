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

import duckdb

from agents.semantic_layer import SemanticLayer, SemanticQueryResult

SEMANTIC_SCHEMA = "semantic"
QUERIES_TABLE = "semantic_queries"

_QUERIES_DDL = f"""
create table if not exists {SEMANTIC_SCHEMA}.{QUERIES_TABLE} (
    query_id VARCHAR, saved_query VARCHAR, request_json VARCHAR, sql VARCHAR, manifest_hash VARCHAR,
    result_hash VARCHAR, row_count BIGINT, rows_json VARCHAR, metricflow_version VARCHAR,
    as_of DATE, run_id VARCHAR, executed_at TIMESTAMP
)"""


def run_saved_query(layer: SemanticLayer, name: str) -> SemanticQueryResult:
    return layer.saved_query(name)


def store_result(warehouse: Path, result: SemanticQueryResult, *, as_of: dt.date, run_id: str) -> None:
    """Replace semantic.<saved_query> with the result and append its provenance."""
    name = result.request.saved_query
    if not name:
        raise ValueError("store_result stores saved-query results (request.saved_query is empty)")
    frame = result.to_dataframe()
    with duckdb.connect(str(warehouse)) as con:
        con.execute(f"create schema if not exists {SEMANTIC_SCHEMA}")
        con.register("result_frame", frame)
        con.execute(f'create or replace table {SEMANTIC_SCHEMA}."{name}" as select * from result_frame')
        con.unregister("result_frame")
        con.execute(_QUERIES_DDL)
        con.execute(
            f"insert into {SEMANTIC_SCHEMA}.{QUERIES_TABLE} values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
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
            ],
        )
