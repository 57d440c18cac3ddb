"""Remedy curves: proof of what worked, from the team's own history, through the semantic layer.

Per rule, the coaching action's claim is a governed number with a query id, cited like every other
number (issue 12.3):

* no_decision_maker: of the won deals in the segment over the last four quarters, how many met a
  decision maker before closing, and the median days from that first meeting to the close
  (metrics won_with_dm_meeting, remedy_won_deals, dm_meeting_to_close_p50);
* close_date_slipped / amount_swing: how often closed deals with two or more pushes / a 20%+ swing
  were won (slipped_win_rate, swing_win_rate);
* stalled_in_stage: how many won deals of the segment left the deal's stage late (past its p75) and
  still won, and how many of them had a meeting in the 14 days before leaving it (late_won_exits,
  late_won_exits_after_meeting; marts.fct_stage_exits);
* the other stage rules (no_recent_activity, meeting_cadence_drop, stale_cycle,
  missing_required_fields): how soon won deals of the segment closed after entering the deal's
  stage, and the stage's win rate (days_to_close_p50, stage_deals_won, stage_win_rate);
* rep_overload: the team's median open deals per rep (open_deals by rep).

Every query runs with the run's as-of filter (no future outcomes in a replay). A slice with fewer
than ``MIN_SAMPLE`` deals yields a claim that says the history is too thin instead of a figure.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any


from agents.drafting.models import RemedyEvidence

LOOKBACK_DAYS = 365
MIN_SAMPLE = 10
DEAL_METRICS = (
    "remedy_won_deals", "won_with_dm_meeting", "dm_meeting_to_close_p50", "slipped_deals", "slipped_win_rate",
    "swing_deals", "swing_win_rate",
)
STAGE_METRICS = ("stage_win_rate", "stage_deals_won", "days_to_close_p50")
STAGE_RULES = ("stalled_in_stage", "no_recent_activity", "meeting_cadence_drop", "stale_cycle", "missing_required_fields")
EXIT_METRICS = ("late_won_exits", "late_won_exits_after_meeting")
EXIT_SEGMENT = "stage_exit__segment"
EXIT_STAGE = "stage_exit__stage"
SEGMENT = "opportunity__segment"
STAGE = "stage_stint__stage"


def _where(as_of: dt.date, lookback_days: int | None) -> list[str]:
    out = [f"{{{{ TimeDimension('metric_time', 'day') }}}} <= '{as_of.isoformat()}'"]
    if lookback_days:
        out.append(f"{{{{ TimeDimension('metric_time', 'day') }}}} > '{(as_of - dt.timedelta(days=lookback_days)).isoformat()}'")
    return out


@dataclasses.dataclass
class RemedyCurves:
    as_of: dt.date
    deal: Any  # SemanticQueryResult: DEAL_METRICS by segment, last LOOKBACK_DAYS
    stage: Any  # SemanticQueryResult: STAGE_METRICS by segment x stage
    reps: Any  # SemanticQueryResult: open_deals by rep
    exits: Any = None  # SemanticQueryResult: EXIT_METRICS by segment x stage

    @property
    def results(self) -> list[Any]:
        return [q for q in (self.deal, self.stage, self.reps, self.exits) if q is not None]

    def evidence(self, rule_id: str, segment: str | None, stage: str | None) -> RemedyEvidence | None:
        if rule_id == "stalled_in_stage" and self.exits is not None:
            found = late_exit_evidence(segment, stage, self.exits)
            if found is not None and not found.thin:
                return found
        return remedy_evidence(rule_id, segment, stage, self.deal, self.stage, self.reps)


def fetch_remedy_curves(layer: Any, as_of: dt.date) -> RemedyCurves:
    return RemedyCurves(
        as_of=as_of,
        deal=layer.query(list(DEAL_METRICS), [SEGMENT], where=_where(as_of, LOOKBACK_DAYS)),
        stage=layer.query(list(STAGE_METRICS), [SEGMENT, STAGE], where=_where(as_of, None)),
        reps=layer.query(["open_deals"], ["rep"], where=[]),
        exits=layer.query(list(EXIT_METRICS), [EXIT_SEGMENT, EXIT_STAGE], where=_where(as_of, None)),
    )


def late_exit_evidence(segment: str | None, stage: str | None, exits: Any) -> RemedyEvidence | None:
    """stalled_in_stage: won deals that left this stage late, and how many had a meeting just before leaving it."""
    if not stage:
        return None
    row = _row(exits, **{EXIT_SEGMENT: segment, EXIT_STAGE: stage}) or {}
    late, met = _num(row.get("late_won_exits")), _num(row.get("late_won_exits_after_meeting"))
    seg = _seg(segment)
    if not late or late < MIN_SAMPLE or met is None:
        return _thin(exits, f"too few won {seg} deals left {stage} late ({int(late or 0)}) to say what got them moving", late)
    claim = (f"{int(late)} won {seg} deals left {stage} late (past its p75) and still won; {int(met)} of them had a "
             f"meeting in the 14 days before leaving it")
    return RemedyEvidence(semantic_query_id=exits.query_id, claim=claim, values=[late, met, 14.0], sample_size=int(late), thin=False)


def _seg(segment: str | None) -> str:
    return (segment or "").replace("_", "-") or "team"


def _num(v: Any) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


def _row(result: Any, **match: Any) -> dict[str, Any] | None:
    return None if result is None else result.find(**match)


def remedy_evidence(rule_id: str, segment: str | None, stage: str | None, deal: Any, stage_curve: Any,
                    reps: Any) -> RemedyEvidence | None:
    """The rule's remedy claim for one deal's segment (and stage), or a 'too thin' claim, or None (no query)."""
    seg = _seg(segment)
    if rule_id == "no_decision_maker" and deal is not None:
        row = _row(deal, **{SEGMENT: segment}) or {}
        won, met, days = _num(row.get("remedy_won_deals")), _num(row.get("won_with_dm_meeting")), _num(row.get("dm_meeting_to_close_p50"))
        if not won or won < MIN_SAMPLE or met is None:
            return _thin(deal, f"too few won {seg} deals in the last four quarters ({int(won or 0)}) to say what worked", won)
        claim = f"in the last 4 quarters {int(met)} of {int(won)} won {seg} deals met a decision maker before closing"
        if days is not None:
            claim += f"; they closed a median {days:g} days after the first meeting"
        return RemedyEvidence(semantic_query_id=deal.query_id, claim=claim, values=[met, won, 4.0, *([days] if days is not None else [])],
                              sample_size=int(won), thin=False, days_to_outcome=days)
    if rule_id in ("close_date_slipped", "amount_swing") and deal is not None:
        row = _row(deal, **{SEGMENT: segment}) or {}
        n_key, r_key, what = (
            ("slipped_deals", "slipped_win_rate", "whose close date was pushed twice or more")
            if rule_id == "close_date_slipped" else ("swing_deals", "swing_win_rate", "whose amount swung by 20% or more")
        )
        n, rate = _num(row.get(n_key)), _num(row.get(r_key))
        if not n or n < MIN_SAMPLE or rate is None:
            return _thin(deal, f"too few closed {seg} deals {what} in the last four quarters ({int(n or 0)}) to give a win rate", n)
        won = round(rate * n)
        claim = f"in the last 4 quarters {won} of {int(n)} closed {seg} deals {what} were won ({rate:.0%})"
        return RemedyEvidence(semantic_query_id=deal.query_id, claim=claim, values=[float(won), n, round(rate * 100), 4.0, 2.0, 0.2],
                              sample_size=int(n), thin=False)
    if rule_id in STAGE_RULES and stage_curve is not None:
        row = _row(stage_curve, **{SEGMENT: segment, STAGE: stage}) if stage else None
        won, days, rate = (_num((row or {}).get(k)) for k in ("stage_deals_won", "days_to_close_p50", "stage_win_rate"))
        if not won or won < MIN_SAMPLE or days is None:
            return _thin(stage_curve, f"too few won {seg} deals through {stage or 'this stage'} ({int(won or 0)}) to say how they closed", won)
        claim = f"won {seg} deals that reached {stage} closed a median {days:g} days after entering it ({int(won)} won deals"
        claim += f"; {rate:.0%} of the deals that reached it were won)" if rate is not None else ")"
        return RemedyEvidence(semantic_query_id=stage_curve.query_id, claim=claim,
                              values=[won, days, *([round(rate * 100)] if rate is not None else [])],
                              sample_size=int(won), thin=False, days_to_outcome=days)
    if rule_id == "rep_overload" and reps is not None:
        counts = [_num(r.get("open_deals")) for r in reps.rows if _num(r.get("open_deals")) is not None]
        if len(counts) < 3:
            return _thin(reps, "too few reps to give a team median of open deals", len(counts))
        median = statistics.median(counts)
        return RemedyEvidence(semantic_query_id=reps.query_id, claim=f"the team's median is {median:g} open deals per rep ({len(counts)} reps)",
                              values=[median, float(len(counts))], sample_size=len(counts), thin=False)
    return None


def _thin(result: Any, claim: str, n: float | None) -> RemedyEvidence:
    return RemedyEvidence(semantic_query_id=result.query_id, claim=claim, values=[float(n or 0)], sample_size=int(n or 0), thin=True)


def store_remedy_queries(warehouse: Any, curves: RemedyCurves, run_id: str) -> None:
    """Append each remedy query's provenance to semantic.semantic_queries so its id resolves like a baseline's."""
    from agents.baselines import _QUERIES_COLUMNS, _QUERIES_DDL, _QUERIES_PARAMS
    from agents.warehouse import Warehouse

    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with Warehouse.coerce(warehouse).connect() as con:
        con.execute("create schema if not exists semantic")
        con.execute(_QUERIES_DDL)
        con.executemany(
            f"insert into semantic.semantic_queries values ({_QUERIES_PARAMS})",
            [
                dict(zip(_QUERIES_COLUMNS, [
                    q.query_id, None, json.dumps(q.request.as_dict(), sort_keys=True), q.sql, q.manifest_hash, q.result_hash,
                    len(q.rows), json.dumps([dict(r) for r in q.rows], default=str), q.metricflow_version, curves.as_of,
                    run_id, now,
                ]))
                for q in curves.results
            ],
        )


def remedies_for(flags: list[Any], curves: RemedyCurves | None) -> Mapping[str, RemedyEvidence]:
    """flag id -> remedy evidence for the primary flags (nothing without curves)."""
    if curves is None:
        return {}
    out = {}
    for f in flags:
        ev = curves.evidence(f.rule_id, f.segment, f.stage)
        if ev is not None:
            out[f.flag_id] = ev
    return out
