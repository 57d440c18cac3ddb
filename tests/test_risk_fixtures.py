"""Hand-made inputs for the risk-engine tests (no warehouse, no MetricFlow): deal features and baselines."""

from __future__ import annotations

import datetime as dt
from typing import Any

from agents.risk.baselines import OUTCOME_METRICS, SEGMENT_DIM, STAGE_DIM, STAGE_METRICS, BaselineSet
from agents.risk.features import ActivityFact, DealFeatures, FieldChange, RepFeatures
from agents.semantic_layer import SemanticQueryRequest, SemanticQueryResult

AS_OF = dt.date(2026, 10, 1)
STAGES = ("Prospecting", "Qualification", "Discovery", "Proposal", "Negotiation")
STAGE_ORDERS = {s: i + 1 for i, s in enumerate(STAGES)}


def result(name: str, metrics: tuple[str, ...], group_by: tuple[str, ...], rows: list[dict[str, Any]]) -> SemanticQueryResult:
    request = SemanticQueryRequest(metrics=metrics, group_by=group_by)
    columns = tuple(group_by) + tuple(metrics)
    return SemanticQueryResult(
        query_id=f"mfq_test_{name}", request=request, sql="-- test", manifest_hash="test",
        columns=columns, rows=tuple(rows), result_hash="test",
    )


def stage_row(p50=10.0, p75=15.0, n=100, mpw=1.0, apw=3.0, **dims) -> dict[str, Any]:
    return {
        **dims, "stage_duration_p50": p50, "stage_duration_p75": p75, "completed_stints": n,
        "meetings_per_week": mpw, "activities_per_week": apw,
    }


def outcome_row(win=0.25, closed=200, won=50, c50=60.0, c75=90.0, **dims) -> dict[str, Any]:
    return {**dims, "win_rate": win, "closed_deals": closed, "won_deals": won, "cycle_length_p50": c50, "cycle_length_p75": c75}


def make_baselines(
    *,
    segment_stage_n: int = 100,
    stage_n: int = 300,
    segment_closed: int = 200,
    min_sample: int = 20,
    segments: tuple[str, ...] = ("smb", "enterprise"),
    p75: float = 15.0,
    mpw: float = 1.0,
    cycle_p75: float = 90.0,
) -> BaselineSet:
    by_seg = [
        stage_row(p75=p75, n=segment_stage_n, mpw=mpw, **{SEGMENT_DIM: seg, STAGE_DIM: st})
        for seg in segments for st in STAGES
    ]
    by_stage = [stage_row(p75=p75 * 2, n=stage_n, mpw=mpw, **{STAGE_DIM: st}) for st in STAGES]
    return BaselineSet(
        stage_by_segment=result("stage_seg", STAGE_METRICS, (SEGMENT_DIM, STAGE_DIM), by_seg),
        stage_all_segments=result("stage_all", STAGE_METRICS, (STAGE_DIM,), by_stage),
        stints_all=result("stints_all", STAGE_METRICS, (), [stage_row(n=1000, mpw=mpw)]),
        outcomes_by_segment=result(
            "outcomes_seg", OUTCOME_METRICS, (SEGMENT_DIM,),
            [outcome_row(closed=segment_closed, won=segment_closed // 4, c75=cycle_p75, **{SEGMENT_DIM: s}) for s in segments],
        ),
        outcomes_all=result("outcomes_all", OUTCOME_METRICS, (), [outcome_row(closed=1000, won=250, c75=cycle_p75 * 1.5)]),
        as_of=AS_OF,
        min_sample=min_sample,
    )


def ts(days_ago: int, hour: int = 10) -> dt.datetime:
    return dt.datetime.combine(AS_OF - dt.timedelta(days=days_ago), dt.time(hour))


def act(i: int | str, days_ago: int, kind: str = "email", dm: bool = False) -> ActivityFact:
    return ActivityFact(
        activity_id=f"act-{i}", activity_type=kind, occurred_at=ts(days_ago),
        decision_maker_contact_ids=("con-dm",) if dm else (),
    )


def change(i: int | str, field: str, old: Any, new: Any, days_ago: int) -> FieldChange:
    return FieldChange(field_history_id=f"fh-{i}", field_name=field, old_value=str(old), new_value=str(new), changed_at=ts(days_ago))


def deal(
    opp: str = "opp-1",
    *,
    stage: str = "Discovery",
    days_in_stage: int = 3,
    age: int = 60,
    amount: float = 20_000.0,
    segment: str = "smb",
    rep: str = "rep-1",
    activities: tuple[ActivityFact, ...] | None = None,
    close_in: int | None = 30,
    **kw: Any,
) -> DealFeatures:
    """A healthy deal by default: recent activity, a decision maker met, close date ahead."""
    if activities is None:
        activities = (act(f"{opp}-a", 20, "meeting", dm=True), act(f"{opp}-b", 13, "meeting"),
                      act(f"{opp}-c", 6, "meeting"), act(f"{opp}-d", 1, "call"))
    fields: dict[str, Any] = dict(
        as_of=AS_OF, opportunity_id=opp, account_id="acc-1", owner_rep_id=rep, manager_id="mgr-1",
        opportunity_name=f"Deal {opp}", segment=segment, stage=stage, stage_order=STAGE_ORDERS.get(stage),
        amount=amount, created_at=ts(age), close_date=(AS_OF + dt.timedelta(days=close_in)) if close_in is not None else None,
        next_step="Send proposal", source_url=f"https://crm.example.invalid/{opp}",
        stage_history_id=f"sh-{opp}", stage_entered_at=ts(days_in_stage), activities=tuple(sorted(activities, key=lambda a: a.occurred_at)),
        rep_hired_on=dt.date(2024, 1, 1),
    )
    fields.update(kw)
    return DealFeatures(**fields)


def rep(rep_id: str = "rep-1", n_open: int = 10, segment: str = "smb", **kw: Any) -> RepFeatures:
    fields: dict[str, Any] = dict(
        as_of=AS_OF, rep_id=rep_id, rep_name=f"Rep {rep_id}", manager_id="mgr-1", segment=segment,
        hired_on=dt.date(2024, 1, 1), is_active=True,
        open_deal_ids=tuple(f"{rep_id}-opp-{i}" for i in range(n_open)), open_amount=n_open * 10_000.0,
    )
    fields.update(kw)
    return RepFeatures(**fields)
