"""Specificity: the properties that separate an action a manager acts on from boilerplate (issue 12.5).

Separate from the grounding validator (which decides whether a draft may exist at all): these
checks score how specific a grounded draft is, per draft and across one digest.

Per draft (codes):
  named_person       names a person from the packet's contacts (by name), or when the packet has
                     no named contact, the rep by name or a buyer role;
  deal_named         names the deal by its name when the packet has one (not only its id);
  comparable_outcome when the packet carries a remedy claim, the rationale cites one of its figures
                     (or says the history is too thin when it is);
  unit_of_numbers    the observed value is written in the rule's unit (days, meetings a week, percent);
  no_filler_baseline no segment win rate cited for a rule that does not measure win rates.
Across a digest:
  boilerplate_share  the largest share of items sharing one action sentence once names, numbers and
                     dates are removed (at most MAX_BOILERPLATE_SHARE).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

from agents.drafting.models import CoachingDraft, EvidencePacket

MAX_BOILERPLATE_SHARE = 0.20
DAY_RULES = ("stalled_in_stage", "stale_cycle", "no_recent_activity")
WIN_RATE_RULES = ()  # no shipped rule measures a win rate; a win rate is filler unless it is the remedy claim
_WIN_RATE = re.compile(r"\bwin[_ ]rate\b", re.I)
_NUM = r"\d[\d,]*(?:\.\d+)?"


def _fmt_values(values: Iterable[float]) -> set[str]:
    out = set()
    for v in values:
        out.add(f"{v:g}")
        if float(v).is_integer():
            out.add(f"{v:,.0f}")
        if 0 < v < 1:
            out.add(f"{v * 100:.0f}%")
    return out


def _has_number(text: str, values: Iterable[float]) -> bool:
    shown = _fmt_values(values)
    return any(re.search(rf"(?<![\d.]){re.escape(s)}(?![\d])", text) for s in shown)


def specificity_findings(draft: CoachingDraft, packet: EvidencePacket) -> list[str]:
    text = f"{draft.action}\n{draft.rationale}"
    low = text.lower()
    out = []
    named = [c.name for c in packet.contacts if c.name]
    if named:
        if not any(n.lower() in low for n in named):
            out.append("named_person: names none of the packet's contacts (" + ", ".join(named[:3]) + ")")
    elif not (
        (packet.deal.owner_rep_name and packet.deal.owner_rep_name.lower() in low)
        or any(r in low for r in ("decision maker", "economic buyer", "champion", "buyer", "rep"))
    ):
        out.append("named_person: names no person or buyer role")
    if packet.deal_name and packet.deal_name.lower() not in draft.action.lower():
        out.append(f"deal_named: the action does not name the deal ({packet.deal_name!r})")
    if packet.remedy is not None:
        if packet.remedy.thin:
            if not re.search(r"\b(thin|too few)\b", low):
                out.append("comparable_outcome: the history is thin and the draft does not say so")
        elif not _has_number(draft.rationale, packet.remedy.values):
            out.append("comparable_outcome: cites no figure from the remedy curve (what worked)")
    obs = packet.observed if isinstance(packet.observed, (int, float)) and not isinstance(packet.observed, bool) else None
    if obs is not None:
        shown = "|".join(re.escape(s) for s in _fmt_values([float(obs)]))
        if packet.rule_id in DAY_RULES and not re.search(rf"(?<![\d.])(?:{shown})\s+days?\b", low):
            out.append(f"unit_of_numbers: the observed {obs:g} is not written in days")
        if packet.rule_id == "meeting_cadence_drop" and re.search(rf"(?<![\d.])(?:{shown})\s+days?\b", low):
            out.append("unit_of_numbers: a meeting rate written in days")
        if packet.rule_id == "amount_swing" and not re.search(rf"(?<![\d.]){obs * 100:.0f}\s*%", text):
            out.append("unit_of_numbers: the amount swing is not written as a percent")
    if packet.rule_id not in WIN_RATE_RULES and _WIN_RATE.search(text):
        out.append("no_filler_baseline: cites a win rate the rule does not measure")
    return out


def action_template(action: str, packet: EvidencePacket | None = None) -> str:
    """The action with names, ids, numbers and dates removed: what stays is the boilerplate."""
    text = action
    if packet is not None:
        names = [packet.deal_name, packet.deal.opportunity_id, packet.deal.owner_rep_name, *(c.name for c in packet.contacts),
                 *(c.title for c in packet.contacts), *(c.name for c in packet.weakest_deals)]
        for n in sorted((n for n in names if n), key=len, reverse=True):
            text = text.replace(n, "<x>")
    text = re.sub(r"\b(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)\b", "<d>", text)
    text = re.sub(r"\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\w*\b", "<m>", text)
    text = re.sub(r"[\w-]*\d[\w-]*", "<n>", text)
    text = re.sub(r"\([^)]*\)", "", text)
    return " ".join(text.lower().split())


def boilerplate_share(drafts: Sequence[CoachingDraft], packets: Sequence[EvidencePacket | None]) -> tuple[float, str | None]:
    """The largest share of drafts sharing one action sentence (names, numbers, dates removed), and that sentence."""
    if not drafts:
        return 0.0, None
    counts = Counter(action_template(d.action, p) for d, p in zip(drafts, packets))
    sentence, n = counts.most_common(1)[0]
    return n / len(drafts), sentence
