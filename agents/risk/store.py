"""Risk runs in the warehouse: flags, the CRM rows and semantic queries each one cites, and
the baseline queries' provenance. Every table is keyed by run and as-of date (append-only)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from agents.risk.engine import RiskRun, warehouse_connection
from agents.semantic_layer import SemanticQueryResult

RISK_SCHEMA = "risk"

_DDL = [
    f"create schema if not exists {RISK_SCHEMA}",
    "create schema if not exists semantic",
    f"""create table if not exists {RISK_SCHEMA}.risk_flags (
        run_id VARCHAR, as_of DATE, flag_id VARCHAR, rule_id VARCHAR, subject VARCHAR, opportunity_id VARCHAR,
        rep_id VARCHAR, manager_id VARCHAR, segment VARCHAR, stage VARCHAR, amount DOUBLE PRECISION, observed VARCHAR,
        threshold VARCHAR, baseline_metric VARCHAR, baseline_value DOUBLE PRECISION, baseline_query_id VARCHAR,
        baseline_fallback VARCHAR, severity VARCHAR, confidence DOUBLE PRECISION, priority DOUBLE PRECISION,
        message VARCHAR,
        policy_version VARCHAR, action_hint VARCHAR, playbooks VARCHAR, supporting_json VARCHAR, flag_json VARCHAR,
        created_at TIMESTAMP)""",
    f"""create table if not exists {RISK_SCHEMA}.flag_evidence (
        run_id VARCHAR, flag_id VARCHAR, object VARCHAR, record_id VARCHAR, source_url VARCHAR, note VARCHAR)""",
    f"""create table if not exists {RISK_SCHEMA}.flag_queries (run_id VARCHAR, flag_id VARCHAR, query_id VARCHAR)""",
    f"""create table if not exists {RISK_SCHEMA}.suppressed_flags (
        run_id VARCHAR, as_of DATE, flag_id VARCHAR, rule_id VARCHAR, subject_id VARCHAR, kind VARCHAR,
        reason VARCHAR, suppressed_by VARCHAR, until DATE)""",
    f"""create table if not exists {RISK_SCHEMA}.not_applicable (
        run_id VARCHAR, as_of DATE, rule_id VARCHAR, reason VARCHAR, subjects BIGINT)""",
    """create table if not exists semantic.semantic_queries (
        query_id VARCHAR, saved_query VARCHAR, request_json VARCHAR, sql VARCHAR, manifest_hash VARCHAR,
        result_hash VARCHAR, row_count BIGINT, rows_json VARCHAR, metricflow_version VARCHAR,
        as_of DATE, run_id VARCHAR, executed_at TIMESTAMP)""",
]


def _text(v) -> str | None:
    return None if v is None else str(v)


_COLUMNS = {
    "semantic.semantic_queries": [
        "query_id", "saved_query", "request_json", "sql", "manifest_hash", "result_hash", "row_count", "rows_json",
        "metricflow_version", "as_of", "run_id", "executed_at"],
    f"{RISK_SCHEMA}.risk_flags": [
        "run_id", "as_of", "flag_id", "rule_id", "subject", "opportunity_id", "rep_id", "manager_id", "segment", "stage",
        "amount", "observed", "threshold", "baseline_metric", "baseline_value", "baseline_query_id", "baseline_fallback",
        "severity", "confidence", "priority", "message", "policy_version", "action_hint", "playbooks", "supporting_json",
        "flag_json", "created_at"],
    f"{RISK_SCHEMA}.flag_evidence": ["run_id", "flag_id", "object", "record_id", "source_url", "note"],
    f"{RISK_SCHEMA}.flag_queries": ["run_id", "flag_id", "query_id"],
    f"{RISK_SCHEMA}.suppressed_flags": [
        "run_id", "as_of", "flag_id", "rule_id", "subject_id", "kind", "reason", "suppressed_by", "until"],
    f"{RISK_SCHEMA}.not_applicable": ["run_id", "as_of", "rule_id", "reason", "subjects"],
}


def bulk_insert(con: Any, table: str, rows: list[list], columns: list[str] | None = None) -> None:
    """Append rows to a table in bulk, never one statement per row: on DuckDB through an Arrow
    table it scans (instead of binding parameters row by row as executemany does), on PostgreSQL
    through COPY. ``con``: a DuckDB connection or an :class:`agents.warehouse.WarehouseConnection`.
    ``columns`` name the rows' values in order (default: the table's columns in ``_COLUMNS``)."""
    if not rows:
        return
    names = columns or _COLUMNS[table]
    if getattr(con, "dialect", "duckdb") == "postgres":
        # COPY parses each value into the column's type (dates, numbers, NULLs) on the server.
        with con.raw.cursor() as cur, cur.copy(f"copy {table} ({', '.join(names)}) from stdin") as copy:
            for row in rows:
                copy.write_row(row)
        return
    import pyarrow as pa

    con = getattr(con, "raw", con)
    types = dict(con.execute(f"select column_name, data_type from duckdb_columns() where "
                             f"schema_name || '.' || table_name = ?", [table]).fetchall())
    # Each column cast to the table's type in SQL; Arrow only carries the values (None-only columns too).
    arrow = pa.table({n: pa.array([r[i] for r in rows]) for i, n in enumerate(names)})
    con.register("_bulk_rows", arrow)
    try:
        select = ", ".join(f'cast("{n}" as {types[n]})' for n in names)
        con.execute(f"insert into {table} ({', '.join(names)}) select {select} from _bulk_rows")
    finally:
        con.unregister("_bulk_rows")


def store_risk_run(warehouse: Any, run: RiskRun, queries: list[SemanticQueryResult], run_id: str) -> None:
    """Append a risk run: flags with their evidence, suppressed flags, not-applicable rules, and the
    provenance of every semantic query the run used (so each cited query id resolves).
    One transaction; each table is written in one bulk insert (COPY on PostgreSQL).

    ``warehouse``: a :class:`agents.warehouse.Warehouse`, a DuckDB file's path, or the run's open
    :class:`agents.warehouse.WarehouseConnection`."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with warehouse_connection(warehouse) as con:
        for ddl in _DDL:
            con.execute(ddl)
        with con.transaction():
            _insert_run(con, run, queries, run_id, now)


def _insert_run(con: Any, run: RiskRun, queries: list[SemanticQueryResult], run_id: str, now: dt.datetime) -> None:
    bulk_insert(con, "semantic.semantic_queries", [
        [q.query_id, q.request.saved_query, json.dumps(q.request.as_dict(), sort_keys=True), q.sql,
         q.manifest_hash, q.result_hash, len(q.rows), json.dumps([dict(r) for r in q.rows], default=str),
         q.metricflow_version, run.as_of, run_id, now]
        for q in queries
    ])
    flags, evidence, cited = [], [], []
    for f in run.flags:
        b = f.baseline
        flags.append([
            run_id, f.as_of, f.flag_id, f.rule_id, f.subject, f.opportunity_id, f.rep_id, f.manager_id, f.segment,
            f.stage, f.amount, _text(f.observed), _text(f.threshold), b.metric if b else None,
            b.value if b else None, b.semantic_query_id if b else None, b.fallback if b else None, f.severity,
            f.confidence, f.priority, f.message, f.policy_version, f.action_hint, ";".join(f.playbooks),
            json.dumps([s.model_dump(mode="json") for s in f.supporting]), f.model_dump_json(), now,
        ])
        evidence += [[run_id, f.flag_id, r.object, r.record_id, r.source_url, r.note] for r in f.crm_records]
        cited += [[run_id, f.flag_id, q] for q in f.semantic_query_ids]
    bulk_insert(con, f"{RISK_SCHEMA}.risk_flags", flags)
    bulk_insert(con, f"{RISK_SCHEMA}.flag_evidence", evidence)
    bulk_insert(con, f"{RISK_SCHEMA}.flag_queries", cited)
    bulk_insert(con, f"{RISK_SCHEMA}.suppressed_flags", [
        [run_id, run.as_of, s.flag.flag_id, s.flag.rule_id, s.flag.opportunity_id or s.flag.rep_id, s.kind,
         s.reason, s.by, s.until]
        for s in run.suppressed
    ])
    bulk_insert(con, f"{RISK_SCHEMA}.not_applicable",
                [[run_id, run.as_of, n.rule_id, n.reason, n.count] for n in run.not_applicable])


# The CRM object a flag cites -> the mart row that must exist for the citation to resolve.
_RESOLVE = {
    "opportunity": ("marts.fct_opportunities", "opportunity_id"),
    "stage_history": ("marts.fct_stage_history", "stage_history_id"),
    "field_history": ("marts.fct_field_history", "field_history_id"),
    "activity": ("marts.fct_activities", "activity_id"),
    "contact": ("marts.dim_contacts", "contact_id"),
    "account": ("marts.dim_accounts", "account_id"),
    "rep": ("marts.dim_reps", "rep_id"),
}


def evidence_report(con, run_id: str) -> dict:
    """How many of a run's flags resolve to CRM rows in the marts and to a stored semantic query.
    ``con``: a WarehouseConnection (DuckDB or PostgreSQL) or a driver connection."""
    from agents.warehouse import WarehouseConnection

    con = WarehouseConnection.adopt(con)
    total = con.execute(f"select count(*) from {RISK_SCHEMA}.risk_flags where run_id = :run_id", {"run_id": run_id}).fetchone()[0]
    unresolved_rows = []
    for obj, (table, key) in _RESOLVE.items():
        unresolved_rows += con.execute(
            f"""select e.flag_id, e.object, e.record_id from {RISK_SCHEMA}.flag_evidence e
                where e.run_id = :run_id and e.object = :object and not exists (select 1 from {table} t where t.{key} = e.record_id)""",
            {"run_id": run_id, "object": obj},
        ).fetchall()
    without_rows = con.execute(
        f"""select f.flag_id from {RISK_SCHEMA}.risk_flags f where f.run_id = :run_id
            and not exists (select 1 from {RISK_SCHEMA}.flag_evidence e where e.run_id = f.run_id and e.flag_id = f.flag_id)""",
        {"run_id": run_id},
    ).fetchall()
    unresolved_queries = con.execute(
        f"""select q.flag_id, q.query_id from {RISK_SCHEMA}.flag_queries q where q.run_id = :run_id
            and not exists (select 1 from semantic.semantic_queries s where s.query_id = q.query_id)""",
        {"run_id": run_id},
    ).fetchall()
    without_queries = con.execute(
        f"""select f.flag_id from {RISK_SCHEMA}.risk_flags f where f.run_id = :run_id
            and not exists (select 1 from {RISK_SCHEMA}.flag_queries q where q.run_id = f.run_id and q.flag_id = f.flag_id)""",
        {"run_id": run_id},
    ).fetchall()
    bad = {r[0] for r in unresolved_rows} | {r[0] for r in without_rows} | {r[0] for r in unresolved_queries} | {
        r[0] for r in without_queries
    }
    return {
        "flags": total,
        "with_full_evidence": total - len(bad),
        "evidence_rate": 1.0 if total == 0 else (total - len(bad)) / total,
        "unresolved_crm_records": unresolved_rows[:10],
        "unresolved_query_ids": unresolved_queries[:10],
    }
