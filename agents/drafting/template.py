"""The offline drafter: deterministic, rule-specific templates filled only from the packet.

It is the default when no API key is configured and the fallback whenever an LLM
draft fails validation twice or the run's budget is spent. It never reads
untrusted free text, so nothing typed into the CRM can reach its output.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping, Sequence

from agents.drafting.models import Actor, CoachingDraft, DraftOutcome, EvidencePacket

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")

# Days from as-of to the due date, by severity; moved off weekends.
DUE_DAYS = {"critical": 2, "high": 3, "medium": 5, "low": 7}


def fmt_num(v: float | int | str | None) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    f = float(v)
    if f.is_integer():
        return f"{int(f):,}" if abs(f) >= 10_000 else str(int(f))
    # Two decimals at most, trailing zeros dropped: 0.45 stays 0.45, 2.50 becomes 2.5.
    return f"{f:,.2f}".rstrip("0").rstrip(".")


def fmt_money(amount: float | None, currency: str) -> str | None:
    if amount is None:
        return None
    return f"{currency} {amount:,.0f}"


def due_date_for(packet: EvidencePacket) -> dt.date:
    due = packet.as_of + dt.timedelta(days=DUE_DAYS.get(packet.severity, 5))
    while due.weekday() >= 5:
        due += dt.timedelta(days=1)
    return due


def _cite(packet: EvidencePacket) -> list[str]:
    ids = packet.crm_record_ids[:3] + packet.semantic_query_ids[:2]
    return list(dict.fromkeys(ids))


def _baseline_clause(packet: EvidencePacket, unit: str = "") -> str:
    b = packet.baseline
    thr = packet.threshold
    if b is None or b.value is None:
        return f"against a threshold of {fmt_num(thr)}{unit}" if thr is not None else ""
    where = "/".join(str(v) for _, v in sorted(b.slice.items()))
    notes = []
    if b.sample_size is not None:
        notes.append(f"n={b.sample_size}")
    if b.fallback:
        notes.append("broader-slice baseline")
    if thr is not None and _as_num(thr) != b.value:
        notes.append(f"threshold {fmt_num(thr)}{unit}")
    extra = f" ({', '.join(notes)})" if notes else ""
    return f"against the {where + ' ' if where else ''}{b.metric} of {fmt_num(b.value)}{unit}{extra}"


def _as_num(v: object) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _deal(packet: EvidencePacket) -> str:
    return packet.deal.opportunity_id or "this deal"


def _evidence_row(packet: EvidencePacket) -> str:
    r = packet.rows[0]
    when = f" ({r.occurred_on.isoformat()})" if r.occurred_on else ""
    return f"{r.object} {r.record_id}{when}"


def _money_clause(packet: EvidencePacket) -> str:
    m = fmt_money(packet.deal.amount, packet.deal.currency)
    return f" worth {m}" if m else ""


def _supporting(packet: EvidencePacket) -> str:
    if not packet.supporting:
        return ""
    return " Also flagged: " + ", ".join(s.rule_id for s in packet.supporting) + "."


# Each template returns (actor, action without the trailing due clause, first rationale sentence).
Template = Callable[[EvidencePacket], tuple[Actor, str, str]]


def _stalled(p: EvidencePacket) -> tuple[Actor, str, str]:
    stage = p.deal.stage or "its current stage"
    return (
        "rep",
        f"Book a meeting with the decision maker on {_deal(p)} to agree a dated next step out of {stage}",
        f"{_deal(p)}{_money_clause(p)} has been in {stage} for {fmt_num(p.observed)} days "
        f"{_baseline_clause(p, ' days')}.",
    )


def _stale_cycle(p: EvidencePacket) -> tuple[Actor, str, str]:
    return (
        "rep",
        f"Hold a re-qualification call with the economic buyer on {_deal(p)} and either set a dated close plan "
        f"or close it out",
        f"{_deal(p)}{_money_clause(p)} has been open {fmt_num(p.observed)} days {_baseline_clause(p, ' days')}.",
    )


def _no_activity(p: EvidencePacket) -> tuple[Actor, str, str]:
    return (
        "rep",
        f"Schedule a call with the champion on {_deal(p)} to confirm the next buying step and log it in the CRM",
        f"No activity has been logged on {_deal(p)}{_money_clause(p)} for {fmt_num(p.observed)} days "
        f"{_baseline_clause(p, ' days')}.",
    )


def _cadence(p: EvidencePacket) -> tuple[Actor, str, str]:
    return (
        "rep",
        f"Book the next meeting with the buying group on {_deal(p)} and agree a recurring slot with the champion",
        f"Meeting cadence on {_deal(p)} dropped to {fmt_num(p.observed)} {_baseline_clause(p)}.",
    )


def _no_dm(p: EvidencePacket) -> tuple[Actor, str, str]:
    stage = f" in {p.deal.stage}" if p.deal.stage else ""
    return (
        "rep",
        f"Ask the champion on {_deal(p)} to introduce the decision maker and get a meeting with them in the calendar",
        f"No decision maker is engaged on {_deal(p)}{_money_clause(p)}{stage} as of {p.as_of.isoformat()} "
        f"{_baseline_clause(p)}.",
    )


def _slipped(p: EvidencePacket) -> tuple[Actor, str, str]:
    close = f", now due to close {p.deal.close_date.isoformat()}," if p.deal.close_date else ""
    return (
        "rep",
        f"Confirm the close date for {_deal(p)} with the economic buyer and record the agreed mutual plan in the CRM",
        f"The close date of {_deal(p)}{close} has slipped: observed {fmt_num(p.observed)} {_baseline_clause(p)}.",
    )


def _amount_swing(p: EvidencePacket) -> tuple[Actor, str, str]:
    return (
        "manager",
        f"Review the amount change on {_deal(p)} with {p.rep_label} in your next 1:1 and confirm the buyer has "
        f"agreed the new figure",
        f"The amount of {_deal(p)} changed by {fmt_num(p.observed)} {_baseline_clause(p)}; it now stands at "
        f"{fmt_money(p.deal.amount, p.deal.currency) or 'an unrecorded amount'}.",
    )


def _missing_fields(p: EvidencePacket) -> tuple[Actor, str, str]:
    fields = fmt_num(p.observed) if isinstance(p.observed, str) else "the required fields"
    return (
        "rep",
        f"Update {_deal(p)} in the CRM with the missing fields ({fields}) after confirming the values with the buyer",
        f"As of {p.as_of.isoformat()} {_deal(p)} is missing {fields}, which the pipeline metrics need "
        f"{_baseline_clause(p)}.",
    )


def _overload(p: EvidencePacket) -> tuple[Actor, str, str]:
    seg = f" in the {p.deal.segment} team" if p.deal.segment else ""
    return (
        "manager",
        f"Reassign the lowest-priority open deals of {p.rep_label} to another rep{seg} so the count is back under "
        f"{fmt_num(p.threshold)}",
        f"{p.rep_label} owns {fmt_num(p.observed)} open deals {_baseline_clause(p)}.",
    )


def _first_sentence(text: str) -> str:
    return _SENTENCE_END.split(text.strip(), maxsplit=1)[0].rstrip(".")


def _custom(p: EvidencePacket) -> tuple[Actor, str, str]:
    name = p.rule_id.split(":", 1)[-1]
    if p.action_hint == "alert_manager" or p.subject == "rep":
        return (
            "manager",
            f"Review {_deal(p)} with {p.rep_label} in your next 1:1 against the {name} rule and agree a dated next step",
            f"{_first_sentence(p.flag_message)}.",
        )
    return (
        "rep",
        f"Review {_deal(p)} with your manager against the {name} rule and agree a dated next step with the buyer",
        f"{p.flag_message.rstrip('.')}.",
    )


TEMPLATES: Mapping[str, Template] = {
    "stalled_in_stage": _stalled,
    "stale_cycle": _stale_cycle,
    "no_recent_activity": _no_activity,
    "meeting_cadence_drop": _cadence,
    "no_decision_maker": _no_dm,
    "close_date_slipped": _slipped,
    "amount_swing": _amount_swing,
    "missing_required_fields": _missing_fields,
    "rep_overload": _overload,
}


def _tidy(s: str) -> str:
    return " ".join(s.replace(" .", ".").replace(" ;", ";").replace(" ,", ",").split())


def template_draft(packet: EvidencePacket, *, fallback_reason: str | None = None) -> CoachingDraft:
    tmpl = TEMPLATES.get(packet.rule_id, _custom)
    actor, action, first = tmpl(packet)
    if packet.subject == "rep" or packet.action_hint == "alert_manager":
        actor = "manager"
    due = due_date_for(packet)
    rationale = _tidy(f"{first} Evidence: {_evidence_row(packet)}.{_supporting(packet)}")
    gaps = packet.data_gaps()
    confidence = packet.flag_confidence * (0.8 if gaps else 1.0)
    return CoachingDraft(
        action=_tidy(f"{action}, by {due.isoformat()}."),
        due_date=due,
        actor=actor,
        rationale=rationale,
        cited_ids=_cite(packet),
        confidence=math.floor(confidence * 100) / 100,
        drafter="template",
        fallback_reason=fallback_reason,
    )


class TemplateDrafter:
    """Deterministic, offline; ids and numbers come only from the packet's trusted fields."""

    name = "template"

    def draft(
        self,
        packets: Sequence[EvidencePacket],
        *,
        feedback: Mapping[str, Sequence[str]] | None = None,
        budget: object | None = None,
    ) -> list[DraftOutcome]:
        return [DraftOutcome(packet_id=p.packet_id, draft=template_draft(p)) for p in packets]
