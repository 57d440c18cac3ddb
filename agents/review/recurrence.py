"""Decisions stick: a manager's earlier decision on a deal x rule decides whether today's flag is shown again.

* dismissed: not proposed again until the evidence changed materially (the
  rule's ``reopen_when`` in the policy: a new stage, a higher severity, the
  observed value grown by N in the rule's own unit, the amount changed by a
  share) or the policy's cool-off (``decisions.cool_off_days``) has passed;
  a flag that returns says what changed since the dismissal, when, and why it
  was dismissed.
* approved (or edited and approved): not proposed again while the action is
  due (as-of on or before its due date).

Only decisions on earlier as-of dates count: a re-run of the same as-of date
maps onto the same digest and items (``flag_id`` is stable per as-of), so the
decisions taken on it stay attached to them instead of filtering them out.

Reads the review ledger through its engine (plain SQLAlchemy selects); writes nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from agents.ledger.models import Decision, Digest, Item
from agents.risk.models import SEVERITY_RANK, RiskFlag
from agents.risk.policy import ReopenWhen, RiskPolicy


def subject_key(opportunity_id: str | None, rep_id: str | None, rule_id: str) -> tuple[str, str]:
    return (f"opp:{opportunity_id}" if opportunity_id else f"rep:{rep_id}", rule_id)


@dataclasses.dataclass(frozen=True)
class PriorDecision:
    """The latest decision on one deal x rule from an earlier as-of date."""

    item_id: str
    action: str  # approve | edit | dismiss
    approver_id: str
    decided_at: dt.datetime
    reason: str | None
    as_of: dt.date  # the as-of date of the digest it was decided in
    flag: dict[str, Any]  # the flag as shown then (item evidence)
    due_date: dt.date | None  # the draft's due date

    def decided_on(self, as_of: dt.date) -> dt.date:
        """The day the decision counts from: its date, or the digest's as-of date when the run replays
        an earlier day (a decision taken after the as-of date being computed)."""
        day = self.decided_at.date()
        return day if day <= as_of else self.as_of

    @property
    def approved(self) -> bool:
        return self.action in ("approve", "edit")


@dataclasses.dataclass(frozen=True)
class HeldBack:
    """A flagged deal (or rep) not shown as an item, and why; counted and listed, never silently dropped."""

    flag_id: str
    rule_id: str
    opportunity_id: str | None
    rep_id: str | None
    severity: str | None
    amount: float | None
    kind: str  # "cap" (per-rep limit), "dismissed", "approved"
    why: str
    deal_name: str | None = None


def prior_decisions(ledger: Any, as_of: dt.date, *, manager_id: str | None = None) -> dict[tuple[str, str], PriorDecision]:
    """The latest decision per (deal or rep) x rule on digests dated before ``as_of``."""
    query = (
        select(Item, Decision, Digest.as_of)
        .join(Decision, Decision.item_id == Item.item_id)
        .join(Digest, Digest.digest_id == Item.digest_id)
        .where(Digest.as_of < as_of)
        .order_by(Decision.decided_at, Decision.decision_id)
    )
    if manager_id is not None:
        query = query.where(Item.manager_id == manager_id)
    out: dict[tuple[str, str], PriorDecision] = {}
    with Session(ledger.engine) as s:
        for item, decision, digest_as_of in s.execute(query):
            evidence = item.evidence or {}
            due = (item.draft or {}).get("due_date")
            try:
                due_date = dt.date.fromisoformat(str(due)) if due else None
            except ValueError:
                due_date = None
            out[subject_key(item.opportunity_id, item.rep_id, item.rule_id)] = PriorDecision(
                item_id=item.item_id,
                action=decision.action,
                approver_id=decision.approver_id,
                decided_at=decision.decided_at,
                reason=decision.reason,
                as_of=digest_as_of,
                flag=dict(evidence.get("flag") or {}),
                due_date=due_date,
            )
    return out


def _num(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _fmt(v: float) -> str:
    return f"{v:g}" if abs(v) >= 1 or v == 0 else f"{v:.2f}"


OBSERVED_LABELS = {
    "stalled_in_stage": "days in the stage",
    "stale_cycle": "days open",
    "no_recent_activity": "days without activity",
    "close_date_slipped": "close-date pushes",
    "amount_swing": "the amount swing",
    "rep_overload": "open deals",
    "meeting_cadence_drop": "meetings a week",
}


def material_changes(before: Mapping[str, Any], now: RiskFlag, reopen: ReopenWhen) -> list[str]:
    """What changed materially between the flag as decided and today's flag (empty: nothing material)."""
    changes = []
    if reopen.stage_change and before.get("stage") and now.stage and before["stage"] != now.stage:
        changes.append(f"the deal moved from {before['stage']} to {now.stage}")
    old_sev = before.get("severity")
    if reopen.severity_increase and old_sev in SEVERITY_RANK and SEVERITY_RANK[now.severity] > SEVERITY_RANK[old_sev]:
        changes.append(f"severity rose from {old_sev} to {now.severity}")
    old_obs, new_obs = _num(before.get("observed")), _num(now.observed)
    if reopen.observed_increase is not None and old_obs is not None and new_obs is not None:
        if new_obs - old_obs >= reopen.observed_increase:
            label = OBSERVED_LABELS.get(now.rule_id, now.rule_id.replace("_", " "))
            changes.append(f"{label} went from {_fmt(old_obs)} to {_fmt(new_obs)}")
    old_amt, new_amt = _num(before.get("amount")), now.amount
    if reopen.amount_change is not None and old_amt and new_amt is not None:
        if abs(new_amt - old_amt) / abs(old_amt) >= reopen.amount_change:
            changes.append(f"the amount went from ${old_amt:,.0f} to ${new_amt:,.0f}")
    return changes


@dataclasses.dataclass
class RecurrenceResult:
    shown: list[tuple[RiskFlag, Any]]
    notes: dict[str, str]  # flag_id -> "proposed again: ..." line for the digest
    held_back: list[HeldBack]


def apply_decisions(
    pairs: Iterable[tuple[RiskFlag, Any]],
    priors: Mapping[tuple[str, str], PriorDecision],
    policy: RiskPolicy,
    as_of: dt.date,
) -> RecurrenceResult:
    """Split today's (flag, draft) pairs into those shown and those a standing decision holds back."""
    cool_off = policy.decisions.cool_off_days
    shown: list[tuple[RiskFlag, Any]] = []
    notes: dict[str, str] = {}
    held: list[HeldBack] = []
    for flag, draft in pairs:
        prior = priors.get(subject_key(flag.opportunity_id, flag.rep_id, flag.rule_id))
        if flag.rule_id == "weekly_scorecard":  # a new report each week: last week's decision does not hold it back
            prior = None
        if prior is None:
            shown.append((flag, draft))
            continue
        decided_on = prior.decided_on(as_of)
        when = decided_on.strftime("%a %-d %b %Y")
        if prior.approved:
            if prior.due_date is not None and as_of <= prior.due_date:
                held.append(_held(flag, "approved", f"approved on {when}; the action is due {prior.due_date:%a %-d %b}"))
                continue
            due = f" (due {prior.due_date:%a %-d %b})" if prior.due_date else ""
            notes[flag.flag_id] = f"proposed again: the action approved on {when}{due} is past due and the deal is still flagged"
            shown.append((flag, draft))
            continue
        reason = f" ('{prior.reason}')" if prior.reason else ""
        changes = material_changes(prior.flag, flag, policy.reopen_when(flag.rule_id))
        days = (as_of - decided_on).days
        if changes:
            notes[flag.flag_id] = f"proposed again: {'; '.join(changes)} since you dismissed it on {when}{reason}"
        elif days >= cool_off:
            notes[flag.flag_id] = (
                f"proposed again: the {cool_off}-day cool-off has passed since you dismissed it on {when}{reason}"
            )
        else:
            held.append(_held(flag, "dismissed", f"dismissed on {when}{reason}; evidence unchanged, cool-off until "
                              f"{(decided_on + dt.timedelta(days=cool_off)):%a %-d %b}"))
            continue
        shown.append((flag, draft))
    return RecurrenceResult(shown=shown, notes=notes, held_back=held)


def _held(flag: RiskFlag, kind: str, why: str) -> HeldBack:
    return HeldBack(
        flag_id=flag.flag_id, rule_id=flag.rule_id, opportunity_id=flag.opportunity_id, rep_id=flag.rep_id,
        severity=flag.severity, amount=flag.amount, kind=kind, why=why,
    )


@dataclasses.dataclass(frozen=True)
class HistoryRow:
    as_of: dt.date
    item_id: str
    action: str | None  # None: undecided
    approver_id: str | None
    decided_at: dt.datetime | None
    reason: str | None
    edited_text: str | None


def decision_history(ledger: Any, opportunity_id: str | None, rep_id: str | None, rule_id: str) -> list[HistoryRow]:
    """Every item raised for one deal (or rep) x rule, oldest first, with its decision if any."""
    query = (
        select(Item, Digest.as_of, Decision)
        .join(Digest, Digest.digest_id == Item.digest_id)
        .outerjoin(Decision, Decision.item_id == Item.item_id)
        .where(Item.rule_id == rule_id)
        .order_by(Digest.as_of, Item.created_at)
    )
    query = query.where(Item.opportunity_id == opportunity_id) if opportunity_id else query.where(Item.rep_id == rep_id)
    with Session(ledger.engine) as s:
        return [
            HistoryRow(
                as_of=as_of, item_id=item.item_id, action=d.action if d else None, approver_id=d.approver_id if d else None,
                decided_at=d.decided_at if d else None, reason=d.reason if d else None, edited_text=d.edited_text if d else None,
            )
            for item, as_of, d in s.execute(query)
        ]
