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

if TYPE_CHECKING:
    from agents.risk.engine import RiskRun
    from agents.risk.policy import RiskPolicy
    from agents.semantic_layer import SemanticLayer, SemanticQueryResult


def assess_reps(
    run: RiskRun,
    warehouse: str | Path,
    layer: SemanticLayer,
    policy: RiskPolicy,
    as_of: dt.date,
    snoozes: Iterable[Any] = (),
    *,
    previous_verdicts: Mapping[str, str] | None = None,
    scorecards: bool | None = None,
) -> tuple[RiskRun, list[SemanticQueryResult], list[Scorecard]]:
    """``run`` plus the rep-level flags (and scorecards on scorecard day, or when ``scorecards`` is
    True). Returns the run, the semantic query results to store as provenance, and the scorecards.

    The semantic-layer queries run first, then the rows are read on a short-lived read-only
    connection (DuckDB refuses a second in-process connection with another configuration)."""
    import duckdb

    settings = accountability_settings(policy)
    if not settings.enabled:
        return run, [], []
    cov = settings.trigger("low_coverage").params
    win = settings.trigger("win_rate_drop").params
    metrics = fetch_rep_metrics(
        layer, as_of, weeks=max(settings.scorecard_weeks, settings.trigger("activity_below_floor").params.weeks),
        coverage_min_days_left=cov.min_days_left, win_recent_days=win.recent_days, win_norm_days=win.norm_days,
    )
    with duckdb.connect(str(warehouse), read_only=True) as con:
        reps, stages = load_rep_rows(con, as_of, metrics.periods, recent_days=win.recent_days)
    snoozes = list(snoozes)
    flags, suppressed, not_applicable = evaluate_rep_triggers(
        metrics, reps, stages, settings, as_of=as_of, policy_version=policy.version,
        playbooks=policy.active_playbooks(as_of), snoozes=snoozes,
    )
    cards: list[Scorecard] = []
    if scorecards or (scorecards is None and settings.is_scorecard_day(as_of)):
        cards = build_scorecards(metrics, reps, settings, as_of=as_of, previous=dict(previous_verdicts or {}))
        for card in cards:
            flag = card.to_flag(policy.version, metrics.reps[card.rep_id].open_pipeline if card.rep_id in metrics.reps else None)
            snooze = next((s for s in snoozes if s.covers(flag, as_of)), None)
            if snooze is None:
                flags.append(flag)
    merged = run.model_copy(update={
        "flags": [*run.flags, *flags],
        "suppressed": [*run.suppressed, *suppressed],
        "not_applicable": [*run.not_applicable, *not_applicable],
        "semantic_query_ids": [*run.semantic_query_ids, *metrics.query_ids],
    })
    return merged, list(metrics.results.values()), cards


def record_scorecards(ledger: Any, warehouse: str | Path, scorecards: list[Scorecard], policy_version: str, run_id: str) -> None:
    """Keep the week's verdicts: the rep's verdict history in the review ledger (audited, once per
    rep and week) and the scorecards themselves in ``accountability.scorecards`` (append-only)."""
    import datetime as _dt
    import json

    import duckdb

    from agents.risk.models import RiskFlag
    from agents.accountability.policy import SCORECARD_RULE

    with ledger.batch():
        for sc in scorecards:
            ledger.record_verdict(
                rep_id=sc.rep_id, manager_id=sc.manager_id, as_of=sc.as_of, verdict=sc.verdict,
                reason=sc.verdict_reason, policy_version=policy_version,
                flag_id=RiskFlag.make_id(SCORECARD_RULE, sc.rep_id, sc.as_of), scorecard=sc.model_dump(mode="json"),
            )
    now = _dt.datetime.now(_dt.UTC).replace(tzinfo=None)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema if not exists accountability")
        con.execute("""create table if not exists accountability.scorecards (
            run_id VARCHAR, as_of DATE, rep_id VARCHAR, manager_id VARCHAR, segment VARCHAR, verdict VARCHAR,
            verdict_rule VARCHAR, floors_missed INTEGER, floors_exceeded INTEGER, scorecard_json VARCHAR,
            created_at TIMESTAMP)""")
        con.executemany(
            "insert into accountability.scorecards values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [[run_id, sc.as_of, sc.rep_id, sc.manager_id, sc.segment, sc.verdict, sc.verdict_rule,
              sc.scalars["floors_missed"], sc.scalars["floors_exceeded"], json.dumps(sc.model_dump(mode="json")), now]
             for sc in scorecards],
        )
