"""One call for the risk step, the quality report and the backtest: the rep-level triggers (any
day) and, on scorecard day, the weekly scorecards, added to a risk run in its own shapes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.accountability.evidence import load_rep_rows
from agents.accountability.metrics import fetch_rep_metrics
from agents.accountability.policy import accountability_settings
from agents.accountability.scorecards import Scorecard, build_scorecards
from agents.accountability.triggers import evaluate_rep_triggers

__all__ = ["assess_reps", "build_week", "load_scorecards", "record_scorecards"]

if TYPE_CHECKING:
    from agents.risk.engine import RiskRun
    from agents.risk.policy import RiskPolicy
    from agents.semantic_layer import SemanticLayer, SemanticQueryResult


def rep_metrics_for(layer, settings, as_of):
    """The governed rep metrics the triggers and scorecards read (also asked ahead by the semantic_layer
    step, agents.baselines.prefetch_risk_queries, so the risk step finds them stored)."""
    cov = settings.trigger("low_coverage").params
    win = settings.trigger("win_rate_drop").params
    return fetch_rep_metrics(
        layer, as_of, weeks=max(settings.scorecard_weeks, settings.trigger("activity_below_floor").params.weeks),
        coverage_min_days_left=cov.min_days_left, win_recent_days=win.recent_days, win_norm_days=win.norm_days,
    )


def _metrics_and_rows(warehouse, layer, settings, as_of):
    from agents.warehouse import Warehouse

    metrics = rep_metrics_for(layer, settings, as_of)
    win = settings.trigger("win_rate_drop").params
    with Warehouse.coerce(warehouse).connect(read_only=True) as con:
        reps, stages = load_rep_rows(con, as_of, metrics.periods, recent_days=win.recent_days)
    return metrics, reps, stages


def build_week(
    warehouse: str | Path, layer: SemanticLayer, policy: RiskPolicy, as_of: dt.date,
    previous_verdicts: Mapping[str, str] | None = None,
) -> tuple[list[Scorecard], list[SemanticQueryResult]]:
    """The weekly scorecards as of ``as_of`` (whatever the weekday; callers decide when) and the
    semantic queries they read (to store as provenance)."""
    settings = accountability_settings(policy)
    metrics, reps, _ = _metrics_and_rows(warehouse, layer, settings, as_of)
    cards = build_scorecards(metrics, reps, settings, as_of=as_of, previous=dict(previous_verdicts or {}))
    return cards, list(metrics.results.values())


def assess_reps(
    run: RiskRun,
    warehouse: str | Path,
    layer: SemanticLayer,
    policy: RiskPolicy,
    as_of: dt.date,
    snoozes: Iterable[Any] = (),
    *,
    scorecards: Iterable[Scorecard] = (),
) -> tuple[RiskRun, list[SemanticQueryResult]]:
    """``run`` plus the rep-level trigger flags and one flag per given scorecard (the review item).
    Returns the run and the semantic query results to store as provenance.

    The semantic-layer queries run first, then the rows are read on a short-lived read-only
    connection (DuckDB refuses a second in-process connection with another configuration)."""
    settings = accountability_settings(policy)
    if not settings.enabled:
        return run, []
    metrics, reps, stages = _metrics_and_rows(warehouse, layer, settings, as_of)
    snoozes = list(snoozes)
    flags, suppressed, not_applicable = evaluate_rep_triggers(
        metrics, reps, stages, settings, as_of=as_of, policy_version=policy.version,
        playbooks=policy.active_playbooks(as_of), snoozes=snoozes,
    )
    for card in scorecards:
        m = metrics.reps.get(card.rep_id)
        flag = card.to_flag(policy.version, m.open_pipeline if m else None)
        if not any(s.covers(flag, as_of) for s in snoozes):
            flags.append(flag)
    merged = run.model_copy(update={
        "flags": [*run.flags, *flags],
        "suppressed": [*run.suppressed, *suppressed],
        "not_applicable": [*run.not_applicable, *not_applicable],
        "semantic_query_ids": [*run.semantic_query_ids, *metrics.query_ids],
    })
    return merged, list(metrics.results.values())


def load_scorecards(warehouse: str | Path, as_of: dt.date) -> list[Scorecard]:
    """The scorecards the latest scorecards run built for ``as_of`` (none when it was not a scorecard day)."""
    from agents.warehouse import Warehouse

    with Warehouse.coerce(warehouse).connect(read_only=True) as con:
        if not con.has_table("accountability", "scorecards"):
            return []
        rows = con.execute(
            """select scorecard_json from accountability.scorecards where run_id = (
                   select run_id from accountability.scorecards where as_of = :as_of order by created_at desc limit 1)""",
            {"as_of": as_of}).fetchall()
    return [Scorecard.model_validate_json(r[0]) for r in rows]


def record_scorecards(
    ledger: Any, warehouse: str | Path, scorecards: list[Scorecard], policy_version: str, run_id: str,
    queries: Iterable[SemanticQueryResult] = (),
) -> None:
    """Keep the week's verdicts: the rep's verdict history in the review ledger (audited, once per
    rep and week), the scorecards in ``accountability.scorecards`` (append-only) and the provenance of
    the semantic queries they read (``semantic.semantic_queries``, so their ids resolve)."""
    import datetime as _dt
    import json

    from agents.risk.models import RiskFlag
    from agents.warehouse import Warehouse
    from agents.accountability.policy import SCORECARD_RULE

    if not scorecards:
        return
    with ledger.batch():
        for sc in scorecards:
            ledger.record_verdict(
                rep_id=sc.rep_id, manager_id=sc.manager_id, as_of=sc.as_of, verdict=sc.verdict,
                reason=sc.verdict_reason, policy_version=policy_version,
                flag_id=RiskFlag.make_id(SCORECARD_RULE, sc.rep_id, sc.as_of), scorecard=sc.model_dump(mode="json"),
            )
    now = _dt.datetime.now(_dt.UTC).replace(tzinfo=None)
    as_of = scorecards[0].as_of
    with Warehouse.coerce(warehouse).connect() as con, con.transaction():
        from agents.baselines import _QUERIES_DDL

        con.execute("create schema if not exists semantic")
        con.execute(_QUERIES_DDL)
        con.executemany(
            "insert into semantic.semantic_queries values (:query_id, :saved_query, :request_json, :sql, :manifest_hash, "
            ":result_hash, :row_count, :rows_json, :metricflow_version, :as_of, :run_id, :executed_at)",
            [{"query_id": q.query_id, "saved_query": q.request.saved_query,
              "request_json": json.dumps(q.request.as_dict(), sort_keys=True), "sql": q.sql, "manifest_hash": q.manifest_hash,
              "result_hash": q.result_hash, "row_count": len(q.rows), "rows_json": json.dumps([dict(r) for r in q.rows], default=str),
              "metricflow_version": q.metricflow_version, "as_of": as_of, "run_id": run_id, "executed_at": now} for q in queries],
        )
        con.execute("create schema if not exists accountability")
        con.execute("""create table if not exists accountability.scorecards (
            run_id VARCHAR, as_of DATE, rep_id VARCHAR, manager_id VARCHAR, segment VARCHAR, verdict VARCHAR,
            verdict_rule VARCHAR, floors_missed INTEGER, floors_exceeded INTEGER, scorecard_json VARCHAR,
            created_at TIMESTAMP)""")
        con.executemany(
            "insert into accountability.scorecards values (:run_id, :as_of, :rep_id, :manager_id, :segment, :verdict, "
            ":verdict_rule, :floors_missed, :floors_exceeded, :scorecard_json, :created_at)",
            [{"run_id": run_id, "as_of": sc.as_of, "rep_id": sc.rep_id, "manager_id": sc.manager_id, "segment": sc.segment,
              "verdict": sc.verdict, "verdict_rule": sc.verdict_rule, "floors_missed": sc.scalars["floors_missed"],
              "floors_exceeded": sc.scalars["floors_exceeded"], "scorecard_json": json.dumps(sc.model_dump(mode="json")),
              "created_at": now} for sc in scorecards],
        )
