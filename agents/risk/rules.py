"""The risk rules: each one looks at one deal (or rep) and says fired, not fired, or not applicable.

A rule is a plain function ``(features, ctx) -> RuleHit | NotApplicable | None``.
A hit carries what was observed, the threshold, how far past it the deal is
(``ratio``, which drives severity escalation), a one-sentence message, the CRM
rows behind it and the governed baseline(s) it was compared with. The engine
turns hits into :class:`agents.risk.models.RiskFlag` objects.

Rules never guess: missing data (no activity log, no stage history, no
baseline) gives ``NotApplicable`` with a reason, never a flag.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Union

from agents.risk.baselines import BaselineSet
from agents.risk.features import ActivityFact, DealFeatures, FieldChange, RepFeatures
from agents.risk.models import Baseline, CrmRecordRef
from agents.risk.policy import ResolvedRule

__all__ = ["DEAL_RULES", "REP_RULES", "NotApplicable", "RuleContext", "RuleHit", "evaluate_custom_rule"]


@dataclass(frozen=True)
class RuleContext:
    as_of: dt.date
    rule: ResolvedRule
    baselines: BaselineSet
    stage_orders: Mapping[str, int] = field(default_factory=dict)

    @property
    def params(self):  # noqa: ANN201 - the rule's typed params model
        return self.rule.params


@dataclass(frozen=True)
class RuleHit:
    rule_id: str
    observed: float | str | None
    threshold: float | str | None
    message: str
    records: tuple[CrmRecordRef, ...]
    baseline: Baseline
    ratio: float | None = None
    extra_baselines: tuple[Baseline, ...] = ()
    confidence_factor: float = 1.0
    action_hint: str | None = None
    signal: str | None = None

    @property
    def query_ids(self) -> list[str]:
        ids = [self.baseline.semantic_query_id] + [b.semantic_query_id for b in self.extra_baselines]
        return list(dict.fromkeys(ids))


@dataclass(frozen=True)
class NotApplicable:
    rule_id: str
    reason: str


Outcome = Union[RuleHit, NotApplicable, None]


# ---------------------------------------------------------------------------- evidence helpers


def _opp_ref(d: DealFeatures, note: str | None = None) -> CrmRecordRef:
    return CrmRecordRef(object="opportunity", record_id=d.opportunity_id, source_url=d.source_url, note=note)


def _activity_ref(a: ActivityFact, note: str | None = None) -> CrmRecordRef:
    return CrmRecordRef(
        object="activity", record_id=a.activity_id,
        note=note or f"{a.activity_type} on {a.occurred_at.date().isoformat()}",
    )


def _change_ref(c: FieldChange, note: str | None = None) -> CrmRecordRef:
    return CrmRecordRef(
        object="field_history", record_id=c.field_history_id,
        note=note or f"{c.field_name} {c.old_value} -> {c.new_value} on {c.changed_at.date().isoformat()}",
    )


def _stage_ref(d: DealFeatures) -> CrmRecordRef | None:
    if not d.stage_history_id:
        return None
    entered = d.stage_entered_at.date().isoformat() if d.stage_entered_at else "?"
    return CrmRecordRef(object="stage_history", record_id=d.stage_history_id, note=f"entered {d.stage} {entered}")


def _refs(*items: CrmRecordRef | None) -> tuple[CrmRecordRef, ...]:
    seen, out = set(), []
    for r in items:
        if r is not None and (r.object, r.record_id) not in seen:
            seen.add((r.object, r.record_id))
            out.append(r)
    return tuple(out)


def _baseline_or_na(b: Baseline, rule_id: str) -> NotApplicable | None:
    if b.value is None:
        return NotApplicable(rule_id, f"no {b.metric} baseline in the semantic layer for {b.slice or 'any slice'}")
    return None


def _fmt(x: float) -> str:
    return f"{x:.0f}" if abs(x - round(x)) < 0.05 else f"{x:.1f}"


def _seg_stage(d: DealFeatures) -> str:
    return f"{d.segment or 'all segments'} {d.stage}"


# ---------------------------------------------------------------------------- deal rules


def stalled_in_stage(d: DealFeatures, ctx: RuleContext) -> Outcome:
    rid = ctx.rule.rule_id
    if not d.coverage.has_stage_history:
        return NotApplicable(rid, "the source has no stage history")
    if d.days_in_stage is None or d.stage is None:
        return NotApplicable(rid, "no stage history row for the deal's current stage")
    p = ctx.params
    b = ctx.baselines.stage_duration(d.segment, d.stage, p.percentile)
    if (na := _baseline_or_na(b, rid)) is not None:
        return na
    threshold = p.multiplier * b.value
    days = d.days_in_stage
    if threshold <= 0 or days <= threshold:
        return None
    return RuleHit(
        rule_id=rid, observed=float(days), threshold=round(threshold, 1), ratio=days / threshold,
        message=(
            f"{days} days in {d.stage}, over {_fmt(p.multiplier)}x the {_seg_stage(d)} {p.percentile} stage duration "
            f"of {_fmt(b.value)} days (threshold {_fmt(threshold)})."
        ),
        records=_refs(_opp_ref(d), _stage_ref(d)),
        baseline=b, confidence_factor=ctx.baselines.confidence(b),
    )


def stale_cycle(d: DealFeatures, ctx: RuleContext) -> Outcome:
    rid = ctx.rule.rule_id
    p = ctx.params
    if p.require_no_decision_maker and not (d.coverage.has_activities and d.coverage.has_buying_roles):
        return NotApplicable(rid, "the source has no activity log with contact buying roles")
    if d.cycle_days is None:
        return NotApplicable(rid, "the deal has no creation date")
    b = ctx.baselines.cycle_length(d.segment, "p75")
    if (na := _baseline_or_na(b, rid)) is not None:
        return na
    threshold = p.multiplier * b.value
    if d.cycle_days <= threshold:
        return None
    if p.require_no_decision_maker and d.decision_maker_activities:
        return None
    tail = " and no decision maker engaged" if p.require_no_decision_maker else ""
    return RuleHit(
        rule_id=rid, observed=float(d.cycle_days), threshold=round(threshold, 1), ratio=d.cycle_days / threshold,
        message=(
            f"Open {d.cycle_days} days, beyond the {d.segment or 'overall'} won-deal cycle p75 of "
            f"{_fmt(b.value)} days{tail}."
        ),
        records=_refs(_opp_ref(d, note=f"created {d.created_at.date().isoformat()}" if d.created_at else None)),
        baseline=b, confidence_factor=ctx.baselines.confidence(b),
    )


def no_recent_activity(d: DealFeatures, ctx: RuleContext) -> Outcome:
    rid = ctx.rule.rule_id
    if not d.coverage.has_activities:
        return NotApplicable(rid, "the source has no activity log")
    p = ctx.params
    b = ctx.baselines.activities_per_week(d.segment, d.stage)
    last = d.last_activity
    if last is None:
        if not p.fire_when_never_active or d.cycle_days is None or d.cycle_days <= p.days:
            return None
        days = d.cycle_days
        msg = f"No activity logged since the deal was created {days} days ago (threshold {p.days} days)."
        records = _refs(_opp_ref(d))
    else:
        days = d.days_since_activity
        if days <= p.days:
            return None
        msg = f"No activity for {days} days (threshold {p.days}); the last was a {last.activity_type} on {last.occurred_at.date().isoformat()}."
        records = _refs(_opp_ref(d), _activity_ref(last, note=f"last activity: {last.activity_type} on {last.occurred_at.date().isoformat()}"))
    if b.value is not None:
        msg = msg[:-1] + f"; {_seg_stage(d)} deals log {b.value:.1f} activities a week."
    return RuleHit(
        rule_id=rid, observed=float(days), threshold=float(p.days), ratio=days / p.days, message=msg,
        records=records, baseline=b, confidence_factor=ctx.baselines.confidence(b) if b.value is not None else 1.0,
    )


def meeting_cadence_drop(d: DealFeatures, ctx: RuleContext) -> Outcome:
    rid = ctx.rule.rule_id
    if not d.coverage.has_activities:
        return NotApplicable(rid, "the source has no activity log")
    p = ctx.params
    if d.cycle_days is None or d.cycle_days < p.recent_days:
        return None  # too young for a recent window
    if p.active_within_days is not None and not d.activities_within(p.active_within_days):
        return None  # gone silent altogether: that is no_recent_activity, not a cadence change
    recent = d.meetings_between(p.recent_days, 0)
    prior_days = 7 * p.prior_weeks
    prior = d.meetings_between(p.recent_days + prior_days, p.recent_days)
    # The prior window is only as long as the deal was alive in it.
    prior_span = min(prior_days, max(d.cycle_days - p.recent_days, 0))
    recent_rate = len(recent) / (p.recent_days / 7)
    prior_rate = len(prior) / (prior_span / 7) if prior_span >= 7 else None
    b = ctx.baselines.meetings_per_week(d.segment, d.stage)

    reasons, threshold, ratio = [], None, None
    if b.value is not None and b.value > 0 and len(prior) >= p.baseline_min_prior_meetings:
        limit = p.baseline_share * b.value
        if recent_rate < limit:
            reasons.append(
                f"{recent_rate:.2f} meetings/week in the last {p.recent_days} days, below {p.baseline_share:.0%} "
                f"of the {_seg_stage(d)} baseline of {b.value:.2f}"
            )
            threshold, ratio = limit, limit / max(recent_rate, limit / 10)
    if prior_rate is not None and len(prior) >= p.min_prior_meetings:
        limit = p.own_share * prior_rate
        if recent_rate < limit:
            reasons.append(
                f"down from {prior_rate:.2f}/week ({len(prior)} meetings) in the {p.prior_weeks} weeks before"
            )
            own_ratio = limit / max(recent_rate, limit / 10)
            if threshold is None:
                threshold = limit
            ratio = max(ratio or 0.0, own_ratio)
    if not reasons:
        return None
    msg = reasons[0] if len(reasons) == 1 else f"{reasons[0]}, and {reasons[1]}"
    if not msg.startswith(f"{recent_rate:.2f}"):
        msg = f"{recent_rate:.2f} meetings/week in the last {p.recent_days} days, {msg}"
    refs = [_opp_ref(d)]
    refs += [_activity_ref(a, note=f"earlier meeting on {a.occurred_at.date().isoformat()}") for a in prior[-3:]]
    refs += [_activity_ref(a, note=f"recent meeting on {a.occurred_at.date().isoformat()}") for a in recent]
    last = d.last_activity
    if last is not None:
        refs.append(_activity_ref(last, note=f"last activity: {last.activity_type} on {last.occurred_at.date().isoformat()}"))
    return RuleHit(
        rule_id=rid, observed=round(recent_rate, 2), threshold=round(threshold, 2), ratio=ratio,
        message=msg[0].upper() + msg[1:] + ".", records=_refs(*refs), baseline=b,
        confidence_factor=ctx.baselines.confidence(b) if b.value is not None else 0.8,
    )


def no_decision_maker(d: DealFeatures, ctx: RuleContext) -> Outcome:
    rid = ctx.rule.rule_id
    if not d.coverage.has_activities or not d.coverage.has_buying_roles:
        return NotApplicable(rid, "the source has no activity log with contact buying roles")
    p = ctx.params
    by_order = ctx.stage_orders.get(p.by_stage)
    if by_order is None:
        return NotApplicable(rid, f"stage {p.by_stage!r} is not in this pipeline")
    if d.stage_order is None or d.stage_order < by_order:
        return None
    if d.decision_maker_activities:
        return None
    b = ctx.baselines.win_rate(d.segment)
    if (na := _baseline_or_na(b, rid)) is not None:
        return na
    return RuleHit(
        rule_id=rid, observed=0.0, threshold=1.0,
        message=(
            f"At {d.stage} with no activity involving a decision maker across {d.activity_count} logged activities "
            f"(expected from {p.by_stage} on; {d.segment or 'overall'} win rate {b.value:.0%})."
        ),
        records=_refs(_opp_ref(d), _stage_ref(d)), baseline=b, confidence_factor=ctx.baselines.confidence(b),
    )


def close_date_slipped(d: DealFeatures, ctx: RuleContext) -> Outcome:
    rid = ctx.rule.rule_id
    p = ctx.params
    pushes = d.close_date_pushes() if d.coverage.has_field_history else ()
    past_due_days = (
        (d.as_of - d.close_date).days if (p.past_due and d.close_date is not None and d.close_date < d.as_of) else 0
    )
    pushed = len(pushes) >= p.min_pushes
    past_due = p.past_due and past_due_days > p.past_due_grace_days
    if not d.coverage.has_field_history and not p.past_due:
        return NotApplicable(rid, "the source has no field history")
    if not pushed and not past_due:
        if not d.coverage.has_field_history and d.close_date is None:
            return NotApplicable(rid, "no field history and no close date")
        return None
    b = ctx.baselines.cycle_length(d.segment, "p50")
    if (na := _baseline_or_na(b, rid)) is not None:
        return na
    parts, refs = [], [_opp_ref(d, note=f"close date {d.close_date.isoformat()}" if d.close_date else None)]
    ratio = 0.0
    if pushed:
        parts.append(f"close date pushed {len(pushes)} times (threshold {p.min_pushes})")
        refs += [_change_ref(c) for c in pushes]
        ratio = len(pushes) / p.min_pushes
    if past_due:
        parts.append(f"close date {d.close_date.isoformat()} passed {past_due_days} days ago with the deal still open")
        ratio = max(ratio, 1.0 + past_due_days / 30.0)
        if d.close_date_source_id:
            refs.append(CrmRecordRef(
                object="field_history", record_id=d.close_date_source_id,
                note=f"close date at {d.as_of.isoformat()} was {d.close_date.isoformat()} (changed later)",
            ))
    signal = "pushed+past_due" if pushed and past_due else ("pushed" if pushed else "past_due")
    msg = "; ".join(parts)
    return RuleHit(
        rule_id=rid, observed=signal,
        threshold=float(p.min_pushes) if pushed else float(p.past_due_grace_days),
        ratio=ratio, message=msg[0].upper() + msg[1:] + f" ({d.segment or 'overall'} median cycle {_fmt(b.value)} days).",
        records=_refs(*refs), baseline=b, confidence_factor=ctx.baselines.confidence(b), signal=signal,
    )


def amount_swing(d: DealFeatures, ctx: RuleContext) -> Outcome:
    rid = ctx.rule.rule_id
    if not d.coverage.has_field_history:
        return NotApplicable(rid, "the source has no field history")
    p = ctx.params
    swings = [(c, s) for c, s in d.amount_swings(p.lookback_days) if s > p.min_relative_change]
    if not swings:
        return None
    change, size = max(swings, key=lambda cs: cs[1])
    b = ctx.baselines.win_rate(d.segment)
    if (na := _baseline_or_na(b, rid)) is not None:
        return na
    old, new = float(change.old_value), float(change.new_value)
    return RuleHit(
        rule_id=rid, observed=round(size, 3), threshold=p.min_relative_change, ratio=size / p.min_relative_change,
        message=(
            f"Amount changed {(new - old) / old:+.0%} ({old:,.0f} -> {new:,.0f}) on "
            f"{change.changed_at.date().isoformat()}, more than {p.min_relative_change:.0%} within {p.lookback_days} days."
        ),
        records=_refs(_opp_ref(d), *[_change_ref(c) for c, _ in swings]), baseline=b,
        confidence_factor=ctx.baselines.confidence(b),
    )


def missing_required_fields(d: DealFeatures, ctx: RuleContext) -> Outcome:
    rid = ctx.rule.rule_id
    p = ctx.params
    if d.stage_order is None:
        return NotApplicable(rid, "the deal's stage order is unknown")
    required: list[str] = []
    for stage, fields in p.required_fields.items():
        order = ctx.stage_orders.get(stage)
        if order is not None and d.stage_order >= order:
            required += [f for f in fields if f not in required]
    missing = [f for f in required if d.field_value(f) in (None, "") or (isinstance(d.field_value(f), str) and not d.field_value(f).strip())]
    if not missing:
        return None
    b = ctx.baselines.win_rate(d.segment)
    if (na := _baseline_or_na(b, rid)) is not None:
        return na
    return RuleHit(
        rule_id=rid, observed=", ".join(missing), threshold=", ".join(required),
        message=f"At {d.stage}, required field(s) empty: {', '.join(missing)}.",
        records=_refs(_opp_ref(d, note="empty: " + ", ".join(missing))), baseline=b,
        confidence_factor=ctx.baselines.confidence(b),
    )


# Features a custom expression may use, by the source data they need.
_NEEDS_ACTIVITIES = {"days_since_activity", "activity_count", "meetings_last_28d", "meetings_prior_8w"}
_NEEDS_ROLES = {"has_decision_maker"}
_NEEDS_STAGES = {"days_in_stage"}
_NEEDS_FIELDS = {"close_date_pushes", "amount_change_30d"}


def evaluate_custom_rule(d: DealFeatures, ctx: RuleContext) -> Outcome:
    rid = ctx.rule.rule_id
    expr = ctx.rule.expression
    assert expr is not None
    cov = d.coverage
    for names, ok, what in (
        (_NEEDS_ACTIVITIES, cov.has_activities, "activity log"),
        (_NEEDS_ROLES, cov.has_activities and cov.has_buying_roles, "contact buying roles"),
        (_NEEDS_STAGES, cov.has_stage_history, "stage history"),
        (_NEEDS_FIELDS, cov.has_field_history, "field history"),
    ):
        if expr.names & names and not ok:
            return NotApplicable(rid, f"the expression uses {', '.join(sorted(expr.names & names))} and the source has no {what}")
    values = d.scalars()
    if not expr.test(values):
        return None
    b = ctx.baselines.win_rate(d.segment)
    if (na := _baseline_or_na(b, rid)) is not None:
        return na
    shown = ", ".join(f"{n}={values[n]}" for n in sorted(expr.names))
    head = ctx.params.message or f"Custom rule {rid}"
    refs = [_opp_ref(d)]
    if "days_since_activity" in expr.names and d.last_activity is not None:
        refs.append(_activity_ref(d.last_activity, note="last activity"))
    if "days_in_stage" in expr.names:
        refs.append(_stage_ref(d))
    return RuleHit(
        rule_id=rid, observed=shown, threshold=expr.source,
        message=f"{head}: {expr.source} ({shown}).", records=_refs(*refs), baseline=b,
        confidence_factor=ctx.baselines.confidence(b), action_hint=ctx.params.action,
    )


# ---------------------------------------------------------------------------- rep rules


def rep_overload(r: RepFeatures, ctx: RuleContext) -> Outcome:
    rid = ctx.rule.rule_id
    p = ctx.params
    if r.open_deals <= p.max_open_deals:
        return None
    b = ctx.baselines.win_rate(r.segment)
    if (na := _baseline_or_na(b, rid)) is not None:
        return na
    refs = [CrmRecordRef(object="rep", record_id=r.rep_id, source_url=r.source_url, note=f"{r.open_deals} open deals")]
    refs += [CrmRecordRef(object="opportunity", record_id=o) for o in r.open_deal_ids]
    return RuleHit(
        rule_id=rid, observed=float(r.open_deals), threshold=float(p.max_open_deals), ratio=r.open_deals / p.max_open_deals,
        message=(
            f"{r.rep_name or r.rep_id} holds {r.open_deals} open deals worth {r.open_amount:,.0f}, "
            f"over the limit of {p.max_open_deals}."
        ),
        records=_refs(*refs), baseline=b, confidence_factor=ctx.baselines.confidence(b),
    )


DEAL_RULES: dict[str, Callable[[DealFeatures, RuleContext], Outcome]] = {
    "stalled_in_stage": stalled_in_stage,
    "stale_cycle": stale_cycle,
    "no_recent_activity": no_recent_activity,
    "meeting_cadence_drop": meeting_cadence_drop,
    "no_decision_maker": no_decision_maker,
    "close_date_slipped": close_date_slipped,
    "amount_swing": amount_swing,
    "missing_required_fields": missing_required_fields,
}
REP_RULES: dict[str, Callable[[RepFeatures, RuleContext], Outcome]] = {"rep_overload": rep_overload}
