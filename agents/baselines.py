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

from agents.semantic_layer import SemanticLayer, SemanticQueryRequest, SemanticQueryResult
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


# ---------------------------------------------------------------------------- answers asked earlier in the run


def store_provenance(warehouse: Warehouse | Path, results: list[SemanticQueryResult], *, as_of: dt.date, run_id: str) -> None:
    """Append the provenance (request, SQL, manifest hash, rows) of ad-hoc query results to
    ``semantic.semantic_queries``, so their ids resolve and :class:`StoredAnswers` can serve them."""
    if not results:
        return
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with Warehouse.coerce(warehouse).connect() as con:
        con.execute(f"create schema if not exists {SEMANTIC_SCHEMA}")
        con.execute(_QUERIES_DDL)
        con.executemany(
            f"insert into {SEMANTIC_SCHEMA}.{QUERIES_TABLE} values ({_QUERIES_PARAMS})",
            [dict(zip(_QUERIES_COLUMNS, [
                r.query_id, r.request.saved_query, json.dumps(r.request.as_dict(), sort_keys=True), r.sql,
                r.manifest_hash, r.result_hash, len(r.rows), json.dumps([dict(x) for x in r.rows], default=str),
                r.metricflow_version, as_of, run_id, now,
            ])) for r in results],
        )


def prefetch_risk_queries(
    layer: SemanticLayer, warehouse: Warehouse | Path, *, as_of: dt.date, run_id: str, policy=None,
) -> list[str]:
    """Ask the risk step's governed queries now, on the run's warm MetricFlow engine: the policy's
    baselines (agents.risk.baselines) and, when the policy's accountability section is on, the rep
    metrics (agents.accountability); keep their answers with provenance under ``run_id``. The risk step
    of the same run reads them back by query id (:class:`StoredAnswers`) instead of asking MetricFlow
    again. Returns the ids."""
    from agents.risk.baselines import fetch_baselines

    results = list(fetch_baselines(layer, as_of).results)
    if policy is not None:
        from agents.accountability.policy import accountability_settings
        from agents.accountability.run import rep_metrics_for

        settings = accountability_settings(policy)
        if settings.enabled:
            results += list(rep_metrics_for(layer, settings, as_of).results.values())
    store_provenance(warehouse, results, as_of=as_of, run_id=run_id)
    return [r.query_id for r in results]


def _request_from_json(text: str) -> SemanticQueryRequest:
    d = json.loads(text)
    return SemanticQueryRequest(
        metrics=tuple(d.get("metrics") or ()), group_by=tuple(d.get("group_by") or ()), where=tuple(d.get("where") or ()),
        order_by=tuple(d.get("order_by") or ()), limit=d.get("limit"), saved_query=d.get("saved_query"),
    )


class StoredAnswers:
    """The run's semantic layer, answering a request that this run already asked (same query id: same
    request, same metric definitions) from its stored answer in ``semantic.semantic_queries`` instead of
    running MetricFlow again; anything else goes to MetricFlow (``layer``). Governed all the same: the
    stored answer is MetricFlow's, with its SQL, manifest hash and result hash, and the flags cite the
    same query ids. ``served`` holds the ids answered from the store (their provenance is stored already)."""

    def __init__(self, layer: SemanticLayer, warehouse: Warehouse | Path, run_id: str) -> None:
        self.layer = layer
        self.served: set[str] = set()
        self._answers: dict[str, SemanticQueryResult] = {}
        manifest = layer.manifest_hash
        with Warehouse.coerce(warehouse).connect(read_only=True) as con:
            if not con.has_table(SEMANTIC_SCHEMA, QUERIES_TABLE):
                return
            rows = con.execute(
                f"select query_id, request_json, {con.warehouse.quote('sql')}, result_hash, rows_json, metricflow_version, "
                f"executed_at from {SEMANTIC_SCHEMA}.{QUERIES_TABLE} where run_id = :run_id and manifest_hash = :manifest",
                {"run_id": run_id, "manifest": manifest},
            ).fetchall()
        for query_id, request_json, sql, result_hash, rows_json, mf_version, executed_at in rows:
            request = _request_from_json(request_json)
            if request.saved_query or request.query_id(manifest) != query_id:
                continue  # saved queries are asked by name; an id that does not match its request is not served
            result_rows = tuple(json.loads(rows_json))
            columns = tuple(result_rows[0]) if result_rows else (*request.group_by, *request.metrics)
            self._answers[query_id] = SemanticQueryResult(
                query_id=query_id, request=request, sql=sql, manifest_hash=manifest, columns=columns, rows=result_rows,
                result_hash=result_hash, metricflow_version=mf_version or "",
                executed_at=str(executed_at or ""),
            )

    def query(self, metrics, group_by=(), where=None, order_by=None, limit=None) -> SemanticQueryResult:
        if isinstance(where, str):
            where = [where]
        request = SemanticQueryRequest(metrics=tuple(metrics), group_by=tuple(group_by), where=tuple(where or ()),
                                       order_by=tuple(order_by or ()), limit=limit)
        hit = self._answers.get(request.query_id(self.layer.manifest_hash))
        if hit is None:
            return self.layer.query(metrics, group_by, where=where, order_by=order_by, limit=limit)
        self.served.add(hit.query_id)
        return hit

    def __getattr__(self, name: str):
        return getattr(self.layer, name)
