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

# Business days from as-of to the due date, by urgency (severity), tightened per rule where the step is
# quick (a CRM update) or the deal is already past its date; weekends skipped.
URGENCY_BUSINESS_DAYS = {"critical": 1, "high": 2, "medium": 3, "low": 5}
RULE_MAX_BUSINESS_DAYS = {"missing_required_fields": 2, "close_date_slipped": 3, "no_decision_maker": 3}

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


def add_business_days(day: dt.date, n: int) -> dt.date:
    while n > 0:
        day += dt.timedelta(days=1)
        if day.weekday() < 5:
            n -= 1
    return day


def due_date_for(packet: EvidencePacket) -> dt.date:
    n = URGENCY_BUSINESS_DAYS.get(packet.severity, 3)
    n = min(n, RULE_MAX_BUSINESS_DAYS.get(packet.rule_id, n))
    return add_business_days(packet.as_of, n)


def say_date(day: dt.date) -> str:
    """As people write it: 'Friday 2 Oct'."""
    return f"{day:%A} {day.day} {day:%b}"


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
    """The deal as the manager knows it: its name when plainly a name, else its id."""
    return packet.deal_name or packet.deal.opportunity_id or "this deal"


def _evidence_row(packet: EvidencePacket) -> str:
    r = packet.rows[0]
    when = f" ({r.occurred_on.isoformat()})" if r.occurred_on else ""
    return f"{r.object} {r.record_id}{when}"


def _money(p: EvidencePacket) -> str:
    m = fmt_money(p.deal.amount, "$" if p.deal.currency == "USD" else p.deal.currency + " ")
    return m.replace("$ ", "$") if m else ""


def _deal_money(p: EvidencePacket) -> str:
    m = _money(p)
    return f"{_deal(p)} ({m})" if m else _deal(p)


def _seg(p: EvidencePacket) -> str:
    return (p.deal.segment or "").replace("_", "-")


def _supporting(packet: EvidencePacket) -> str:
    if not packet.supporting:
        return ""
    return " Also flagged: " + ", ".join(s.rule_id.replace("_", " ") for s in packet.supporting) + "."


def _who(p: EvidencePacket, *roles: str, met: bool | None = None, fallback: str = "the champion") -> str:
    c = p.contact(*roles, met=met) if roles else None
    return c.label if c else fallback


def _last_met(p: EvidencePacket) -> str:
    c = p.last_met
    return f" The last meeting was with {c.label} on {say_date(c.last_met_on)}." if c and c.last_met_on else ""


def _proof(p: EvidencePacket) -> str:
    """The remedy claim from the team's own history, with a comparable won deal when there is one."""
    if p.remedy is None:
        return ""
    claim = p.remedy.claim[0].upper() + p.remedy.claim[1:]
    if p.remedy.thin:
        return f" History is thin: {p.remedy.claim}."
    comp = next((c for c in p.comparables if c.name and c.days_to_close is not None), None)
    if comp is not None and p.rule_id in ("no_decision_maker", "stale_cycle"):
        claim += f"; e.g. {comp.name} closed {comp.days_to_close} days after its first one"
    elif comp is not None and p.deal.stage and p.rule_id not in ("close_date_slipped", "amount_swing", "rep_overload"):
        claim += f"; e.g. {comp.name} closed {comp.days_to_close} days after entering {p.deal.stage}"
    return f" {claim}."


def _n(v: object) -> str:
    return fmt_num(_as_num(v)) if _as_num(v) is not None else str(v)


# Each template returns (actor, action without the due clause, why: the comparison the rule makes, in its unit).
Template = Callable[[EvidencePacket], tuple[Actor, str, str]]


def _stalled(p: EvidencePacket) -> tuple[Actor, str, str]:
    stage = p.deal.stage or "its current stage"
    b = p.baseline
    norm = f"; the {_seg(p)} {stage} p75 is {fmt_num(b.value)} days" if b is not None and b.value is not None else ""
    return (
        "rep",
        f"Book a meeting with {_who(p, 'decision_maker', 'champion', fallback='the decision maker')} on {_deal(p)} "
        f"to agree a dated next step out of {stage}",
        f"{_deal_money(p)} has been in {stage} for {_n(p.observed)} days{norm} and the policy flags beyond "
        f"{_n(p.threshold)} days.",
    )


def _stale_cycle(p: EvidencePacket) -> tuple[Actor, str, str]:
    b = p.baseline
    norm = f"; won {_seg(p)} deals close within {fmt_num(b.value)} days (p75)" if b is not None and b.value is not None else ""
    return (
        "rep",
        f"Hold a re-qualification call with {_who(p, 'decision_maker', 'economic_buyer', fallback='the economic buyer')} "
        f"on {_deal(p)} and set a dated close plan or close it out",
        f"{_deal_money(p)} has been open {_n(p.observed)} days{norm}, with no decision maker met.",
    )


def _no_activity(p: EvidencePacket) -> tuple[Actor, str, str]:
    last = p.last_met
    who = last.label if last else _who(p, "champion", fallback="the champion")
    return (
        "rep",
        f"Call {who} on {_deal(p)} to confirm the next step {'in ' + p.deal.stage if p.deal.stage else 'of the deal'} "
        f"and log it in the CRM",
        f"Nothing has been logged on {_deal_money(p)} for {_n(p.observed)} days; the policy limit is "
        f"{_n(p.threshold)} days.{_last_met(p)}",
    )


def _cadence(p: EvidencePacket) -> tuple[Actor, str, str]:
    b = p.baseline
    norm = f" (the {_seg(p)} {p.deal.stage or ''} norm is {fmt_num(b.value)} a week)" if b is not None and b.value is not None else ""
    return (
        "rep",
        f"Book a meeting with {_who(p, 'champion', 'decision_maker')} on {_deal(p)} and agree a weekly slot "
        f"{'until ' + p.deal.stage + ' is done' if p.deal.stage else 'to the close'}",
        f"{_deal_money(p)} had {_n(p.observed)} meetings a week over the last 28 days, below the floor of "
        f"{_n(p.threshold)} a week{norm}.",
    )


def _no_dm(p: EvidencePacket) -> tuple[Actor, str, str]:
    dm = p.contact("decision_maker", met=False) or p.contact("economic_buyer", met=False) or p.contact("decision_maker")
    champ = p.contact("champion")
    target = dm.label if dm else "the decision maker"
    action = (
        f"Ask {champ.label} to introduce {target} on {_deal(p)} and book a meeting with them"
        if champ else f"Book a meeting with {target} on {_deal(p)}"
    )
    stage = f" is at {p.deal.stage}" if p.deal.stage else " is open"
    return ("rep", action, f"{_deal_money(p)}{stage} and no decision maker has been met yet.{_last_met(p)}")


def _slipped(p: EvidencePacket) -> tuple[Actor, str, str]:
    close = p.deal.close_date
    if isinstance(p.observed, str) and "past_due" in p.observed and close is not None:
        late = (p.as_of - close).days
        why = f"The close date of {_deal_money(p)}, {say_date(close)}, passed {late} days ago with the deal still open."
    else:
        n = _as_num(p.threshold) or 0
        why = f"The close date of {_deal_money(p)} has been pushed out {'more than once' if n >= 2 else 'again'} (policy: {_n(p.threshold)} or more pushes)."
    who = _who(p, 'economic_buyer', 'decision_maker', fallback='the economic buyer')
    if isinstance(p.observed, str) and "past_due" in p.observed:
        action = f"Agree a new close date for {_deal(p)} with {who} and record the mutual plan in the CRM"
    else:
        action = f"Walk {who} through a dated mutual close plan for {_deal(p)} and lock the signature date in the CRM"
    return ("rep", action, why)


def _amount_swing(p: EvidencePacket) -> tuple[Actor, str, str]:
    share = _as_num(p.observed)
    swing = f"{share * 100:.0f}%" if share is not None else "more than the limit"
    return (
        "manager",
        f"Review the amount change on {_deal(p)} with {p.rep_label} in your next 1:1 and confirm "
        f"{_who(p, 'economic_buyer', 'decision_maker', fallback='the buyer')} agreed the new figure",
        f"The amount of {_deal(p)} moved {swing} (the policy flags swings over {fmt_num((_as_num(p.threshold) or 0) * 100)}%); "
        f"it now stands at {_money(p) or 'an unrecorded amount'}.",
    )


def _missing_fields(p: EvidencePacket) -> tuple[Actor, str, str]:
    fields = fmt_num(p.observed) if isinstance(p.observed, str) else "the required fields"
    return (
        "rep",
        f"Update {_deal(p)} in the CRM with {fields} after confirming them with {_who(p, 'champion', 'decision_maker', fallback='the buyer')}",
        f"At {p.deal.stage or 'its stage'} {_deal_money(p)} is missing {fields}, which the forecast needs.",
    )


def _overload(p: EvidencePacket) -> tuple[Actor, str, str]:
    named = [d.name or d.opportunity_id for d in p.weakest_deals[:2]]
    start = f", starting with {' and '.join(named)}" if named else ""
    return (
        "manager",
        f"Review the {len(p.weakest_deals) or ''} weakest open deals of {p.rep_label} (idle longest) in your next 1:1 "
        f"and reassign or close them out{start}",
        f"{p.rep_label} owns {_n(p.observed)} open deals, over the policy limit of {_n(p.threshold)}.",
    )


def _first_sentence(text: str) -> str:
    return _SENTENCE_END.split(text.strip(), maxsplit=1)[0].rstrip(".")


def _custom(p: EvidencePacket) -> tuple[Actor, str, str]:
    name = p.rule_id.split(":", 1)[-1].replace("_", " ")
    if p.action_hint == "alert_manager" or p.subject == "rep":
        return (
            "manager",
            f"Review {_deal(p)} with {p.rep_label} in your next 1:1 against the {name} rule and agree a dated next step "
            f"with {_who(p, 'decision_maker', 'champion', fallback='the buyer')}",
            f"{_first_sentence(p.flag_message)}.",
        )
    return (
        "rep",
        f"Review {_deal(p)} with your manager against the {name} rule and agree a dated next step with "
        f"{_who(p, 'champion', 'decision_maker', fallback='the buyer')}",
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
# Rep-level triggers and weekly scorecards (issue 14).
from agents.accountability.templates import TEMPLATES as _ACCOUNTABILITY  # noqa: E402

TEMPLATES = {**TEMPLATES, **_ACCOUNTABILITY}


def _tidy(s: str) -> str:
    return " ".join(s.replace(" .", ".").replace(" ;", ";").replace(" ,", ",").split())


def _no_example(proof: str) -> str:
    return re.sub(r"; e\.g\. [^.]*\.$", ".", proof.rstrip()) if proof else proof


def _fit(action: str, due: dt.date, why: str, proof: str, tail: str) -> tuple[str, str]:
    """Action and rationale within the validator's limits: drop the example, then the proof, then the tail."""
    act = _tidy(f"{action} by {say_date(due)}.")
    if len(act) > 240:
        act = _tidy(f"{action.split(' and ')[0]} by {say_date(due)}.")
    for parts in ((why, proof, tail), (why, _no_example(proof), tail), (why, proof, ""),
                  (why, _no_example(proof), ""), (why, "", "")):
        rationale = _tidy(" ".join(x for x in parts if x))
        if len(rationale) <= 420 and len(_SENTENCE_END.split(rationale)) <= 3:
            return act, rationale
    return act, _tidy(why)[:420]


def template_draft(packet: EvidencePacket, *, fallback_reason: str | None = None) -> CoachingDraft:
    tmpl = TEMPLATES.get(packet.rule_id, _custom)
    actor, action, why = tmpl(packet)
    if packet.subject == "rep" or packet.action_hint == "alert_manager":
        actor = "manager"
    due = due_date_for(packet)
    tail = f"Evidence: {_evidence_row(packet)}.{_supporting(packet)}"
    action_text, rationale = _fit(action, due, why, _proof(packet), tail)
    gaps = packet.data_gaps()
    confidence = packet.flag_confidence * (0.8 if gaps else 1.0)
    cited = _cite(packet)
    if packet.remedy is not None and packet.remedy.semantic_query_id not in cited:
        cited.append(packet.remedy.semantic_query_id)
    return CoachingDraft(
        action=action_text,
        due_date=due,
        actor=actor,
        rationale=rationale,
        cited_ids=cited[:8],
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
