"""The planted-risk definitions as code, shared by the generator (labelling) and the verifier.

Times are integer minutes since day 1 of the proleptic calendar
(``date.toordinal() * 1440 + minute of day``); ``as_of`` is its midnight.
These are the ground-truth definitions of the demo world, not the production
risk policy (that lives in agents/ and reads the semantic layer).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from connectors.demo.params import RISK_DEFINITIONS

DAY = 1440

_NRA = RISK_DEFINITIONS["no_recent_activity"]
_MCD = RISK_DEFINITIONS["meeting_cadence_drop"]
_CDS = RISK_DEFINITIONS["close_date_slipped"]
_AMS = RISK_DEFINITIONS["amount_swing"]
_STALL = RISK_DEFINITIONS["stalled_in_stage"]
_NDM = RISK_DEFINITIONS["no_decision_maker"]
_PD = RISK_DEFINITIONS["past_due"]


@dataclass
class DealFacts:
    opportunity_id: str
    segment: str
    stage: str
    created: int  # minute key
    stage_entered: int  # minute key of the current stage's entry
    close_date: int | None  # date ordinal
    close_date_changes: list[tuple[int, int, int]] = field(default_factory=list)  # (old ord, new ord, changed key)
    amount_changes: list[tuple[float, float, int]] = field(default_factory=list)  # (old, new, changed key)
    activities: list[tuple[int, str, bool]] = field(default_factory=list)  # (key, type, linked to a decision maker)


def _meeting_counts(f: DealFacts, as_of_day: int, slack: int) -> tuple[int, int]:
    """(meetings in the 8 weeks before the last 28 days, meetings in the last 28 days).

    ``slack`` widens the baseline window and narrows the recent one by that many
    days, for the conservative "clearly healthy" check.
    """
    recent_from = as_of_day - _MCD["recent_days"] + slack
    base_from = as_of_day - _MCD["recent_days"] - 7 * _MCD["baseline_weeks"] - slack
    earlier = recent = 0
    for key, typ, _ in f.activities:
        if typ != "meeting":
            continue
        d = key // DAY
        if d >= recent_from:
            recent += 1
        elif d >= base_from:
            earlier += 1
    return earlier, recent


def evaluate(f: DealFacts, as_of_day: int, baselines: dict) -> dict[str, str]:
    """Risks the open deal meets, each with a short detail string."""
    as_of = as_of_day * DAY
    met: dict[str, str] = {}

    b = baselines[f.segment][f.stage]
    days_in_stage = (as_of - f.stage_entered) / DAY
    threshold = _STALL["multiplier_of_p75"] * b["p75"]
    if days_in_stage >= threshold:
        met["stalled_in_stage"] = f"{days_in_stage:.1f} days in {f.stage} >= 3 x p75 {b['p75']:.1f} = {threshold:.1f}"

    if f.activities:
        gap = (as_of - max(a[0] for a in f.activities)) / DAY
        if gap >= _NRA["min_days"]:
            met["no_recent_activity"] = f"last activity {gap:.1f} days before as_of"
    else:
        met["no_recent_activity"] = "no activity at all"

    if f.stage in _NDM["stages"] and not any(a[2] for a in f.activities):
        met["no_decision_maker"] = f"at {f.stage}, no activity with a decision maker"

    earlier, recent = _meeting_counts(f, as_of_day, 0)
    recent_touch = any(
        typ in ("call", "email") and key // DAY >= as_of_day - _MCD["calls_emails_within_days"]
        for key, typ, _ in f.activities
    )
    if earlier >= _MCD["min_meetings_per_week"] * _MCD["baseline_weeks"] and recent == 0 and recent_touch:
        met["meeting_cadence_drop"] = f"{earlier} meetings in the 8 weeks before the last 28 days, 0 since"

    pushes = sum(1 for old, new, _ in f.close_date_changes if new > old)
    if (
        pushes >= _CDS["min_pushes"]
        and f.close_date is not None
        and f.close_date >= as_of_day + _CDS["min_days_ahead"]
    ):
        met["close_date_slipped"] = f"close date pushed {pushes} times"

    if f.close_date is not None and f.close_date < as_of_day:
        met["past_due"] = f"close date {as_of_day - f.close_date} days past"

    since = as_of - _AMS["within_days"] * DAY
    for old, new, key in f.amount_changes:
        if key >= since and old > 0 and abs(new - old) / old >= _AMS["min_relative_change"]:
            met["amount_swing"] = f"amount {old:.2f} -> {new:.2f} ({(new - old) / old:+.0%})"
            break
    return met


def health_violations(f: DealFacts, as_of_day: int, baselines: dict) -> list[str]:
    """How an open deal falls short of "clearly healthy" on each dimension (empty = healthy with margin)."""
    as_of = as_of_day * DAY
    out = []
    b = baselines[f.segment][f.stage]
    days_in_stage = (as_of - f.stage_entered) / DAY
    if days_in_stage > b["p50"]:
        out.append(f"stalled_in_stage: {days_in_stage:.1f} days in stage > p50 {b['p50']:.1f}")
    if not f.activities:
        out.append("no_recent_activity: no activity")
    else:
        gap = (as_of - max(a[0] for a in f.activities)) / DAY
        if gap > _NRA["healthy_max_days"]:
            out.append(f"no_recent_activity: last activity {gap:.1f} days ago")
    if f.stage in _NDM["stages"] and not any(a[2] for a in f.activities):
        out.append("no_decision_maker: no decision-maker activity")
    if (as_of - f.created) / DAY >= 7 * _MCD["min_deal_age_weeks"]:
        earlier, recent = _meeting_counts(f, as_of_day, 1)
        need = _MCD["healthy_ratio"] * (earlier / _MCD["baseline_weeks"]) * 4
        if recent < need:
            out.append(f"meeting_cadence_drop: {recent} recent meetings < {need:.2f}")
    if f.close_date_changes:
        out.append(f"close_date_slipped: {len(f.close_date_changes)} close date changes")
    if f.close_date is None or f.close_date < as_of_day + _PD["healthy_min_days_ahead"]:
        out.append("past_due: close date within a week or past")
    quiet_from = as_of - (_AMS["healthy_quiet_days"] + 1) * DAY
    if any(key >= quiet_from for _, _, key in f.amount_changes):
        out.append("amount_swing: amount changed in the last 90 days")
    return out
