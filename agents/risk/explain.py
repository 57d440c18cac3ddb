"""Why a deal is (or is not) flagged: its flags in the latest risk run, their evidence and queries, and any
suppression (snooze, exclusion, per-rep cap). Reads the warehouse read-only (DuckDB or PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any


def explain_opportunity(warehouse: Any, opportunity_id: str, as_of: dt.date | None = None) -> dict[str, Any]:
    """``warehouse``: an agents.warehouse.Warehouse, a DuckDB file's path, or an open WarehouseConnection."""
    from agents.risk.engine import warehouse_connection

    with warehouse_connection(warehouse, read_only=True) as con:
        where, params = ("where as_of = :as_of", {"as_of": as_of}) if as_of else ("", None)
        run = con.execute(
            f"select run_id, as_of from risk.risk_flags {where} order by created_at desc limit 1", params
        ).fetchone()
        if run is None:
            return {"opportunity_id": opportunity_id, "run_id": None, "flags": [], "suppressed": [], "deal": None, "queries": {}}
        run_id, run_as_of = run
        deal = con.execute(
            """select opportunity_id, opportunity_name, stage, amount, close_date, owner_rep_id, segment, is_closed, source_url
               from marts.fct_opportunities where opportunity_id = :opp""",
            {"opp": opportunity_id},
        ).fetchone()
        flags = [json.loads(r[0]) for r in con.execute(
            "select flag_json from risk.risk_flags where run_id = :run_id and opportunity_id = :opp",
            {"run_id": run_id, "opp": opportunity_id},
        ).fetchall()]
        suppressed = [
            dict(zip(("rule_id", "kind", "reason", "by", "until"), r))
            for r in con.execute(
                "select rule_id, kind, reason, suppressed_by, until from risk.suppressed_flags "
                "where run_id = :run_id and subject_id = :opp",
                {"run_id": run_id, "opp": opportunity_id},
            ).fetchall()
        ]
        ids = sorted({q for f in flags for q in f.get("semantic_query_ids", [])})
        queries = {
            qid: {"saved_query": sq, "sql": sql, "rows": json.loads(rows or "[]")}
            for qid, sq, sql, rows in con.execute(
                "select query_id, saved_query, sql, rows_json from semantic.semantic_queries "
                "where query_id = any(:ids) and run_id = :run_id",
                {"ids": ids, "run_id": run_id},
            ).fetchall()
        } if ids else {}
    cols = ("opportunity_id", "opportunity_name", "stage", "amount", "close_date", "owner_rep_id", "segment", "is_closed", "source_url")
    return {
        "opportunity_id": opportunity_id, "run_id": run_id, "as_of": run_as_of,
        "deal": dict(zip(cols, deal)) if deal else None, "flags": flags, "suppressed": suppressed, "queries": queries,
    }
