"""What the publisher asks before each send: the rule's level, the L5 bar, the recipient's channel and quiet hours.

``AutonomyGovernor.start`` evaluates every L5 rule at start-up; ``approve_l5`` records autonomous
approvals for low-risk items of rules at L5; ``hold`` is asked before every send and says why a send
must not go now (a level that sends nothing, an L5 send that fails its re-check or is high-risk, a
channel the rep did not choose, quiet hours: then the send is deferred, durably, in the ledger).
Exactly once is still the delivery's idempotency key: a deferred send stays owed and goes on the
first publish run after its quiet hours, once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from agents.autonomy.config import REP_CHANNELS, AutonomySettings
from agents.autonomy.levels import L5Check, apply_check, check_l5, evaluate_levels, high_risk_reason
from agents.autonomy.preferences import Resolved, resolve
from agents.ledger import AlreadyDecided, Ledger
from agents.ledger import autonomy as _store

RECIPIENT_CHANNELS = (*REP_CHANNELS, "rep_teams")


@dataclasses.dataclass(frozen=True)
class Hold:
    kind: str  # "held" (not sent by this level or rule) or "deferred" (quiet hours: goes later)
    reason: str
    not_before: dt.datetime | None = None


class AutonomyGovernor:
    def __init__(self, settings: AutonomySettings, *, drafter: str = "template", actor: str = "publisher"):
        self.settings = settings
        self.drafter = drafter
        self.actor = actor
        self.levels: dict[str, tuple[int, L5Check | None]] = {}

    # -- levels

    def start(self, ledger: Ledger) -> dict[str, tuple[int, L5Check | None]]:
        self.levels = evaluate_levels(ledger, self.settings, ledger.uow.now().date(), drafter=self.drafter, actor="startup")
        return self.levels

    def level(self, rule_id: str) -> int:
        found = self.levels.get(rule_id)
        if found is not None:
            return found[0]
        configured = self.settings.configured_level(rule_id)
        return 4 if configured == 5 else configured  # not evaluated yet: never L5 without a check

    def recheck(self, ledger: Ledger, rule_id: str) -> L5Check:
        """The L5 bar, now: records a drop (audited notice) or a regained level."""
        check = check_l5(ledger, self.settings, rule_id, ledger.uow.now().date(), self.drafter)
        self.levels[rule_id] = (apply_check(ledger, check, actor=self.actor), check)
        return check

    # -- L5: approvals without a manager, for low-risk nudges only

    def approve_l5(self, ledger: Ledger, channels: Mapping[str, Any]) -> tuple[list[str], list[tuple[str, str, str]]]:
        """Autonomous approvals for undecided items of rules at L5 created since the rule reached L5.

        Returns (approved item ids, held (item id, channel, reason)). The backlog from before a rule
        reached L5 is never flushed, as a shadow backlog is not flushed by going live.
        """
        approved: list[str] = []
        held: list[tuple[str, str, str]] = []
        recipients = [c for c in channels if c in RECIPIENT_CHANNELS]
        l5_rules = [r for r, (level, _) in self.levels.items() if level == 5]
        if not recipients or not l5_rules:
            return approved, held
        since = {}
        for rule_id in l5_rules:
            state = _store.rule_level_state(ledger.uow, rule_id) or {}
            since[rule_id] = dt.datetime.fromisoformat(state["since"]) if state.get("since") else ledger.uow.now()
        for item in _store.undecided_live_items(ledger.uow, l5_rules):
            if item.created_at < since[item.rule_id] or self.level(item.rule_id) != 5:
                continue
            reasons = {c: high_risk_reason(self.settings, item, c) for c in recipients}
            if all(reasons.values()):
                held.append((item.item_id, "*", "not sent at L5, waits for the manager: " + next(iter(reasons.values()))))
                continue
            check = self.recheck(ledger, item.rule_id)
            if not check.passed:
                continue  # dropped to L4: this and later items wait for the manager
            try:
                _store.record_autonomous_approval(
                    ledger.uow, item.item_id, gate=check.payload(),
                    reason=f"L5 on rule {item.rule_id}: {check.describe()}",
                )
            except AlreadyDecided:
                continue
            approved.append(item.item_id)
        return approved, held

    # -- before every send

    def preference(self, item: Any) -> Resolved:
        rep = (item.evidence or {}).get("rep") or {}
        return resolve(self.settings.preferences, item.rep_id, item.manager_id, rep_timezone=rep.get("timezone"))

    def hold(self, ledger: Ledger, approved: Any, channel: str, available: Mapping[str, Any]) -> Hold | None:
        item, decision = approved.item, approved.decision
        level = self.level(item.rule_id)
        if level <= 2:
            return Hold("held", f"rule {item.rule_id} is at L{level}: nothing is sent for it")
        if decision.approver_channel == _store.AUTONOMY_CHANNEL:
            reason = high_risk_reason(self.settings, item, channel)
            if reason:
                return Hold("held", f"not sent on an L5 approval: {reason}")
            check = self.recheck(ledger, item.rule_id)
            if not check.passed:
                return Hold("held", f"rule {item.rule_id} dropped to L4 before the send: {'; '.join(check.problems)}")
        if channel not in RECIPIENT_CHANNELS:
            return None  # the CRM note has no recipient hours or channel preference
        pref = self.preference(item)
        wanted = pref.delivery_channel
        if wanted and wanted != channel and wanted in available:
            return Hold("held", f"the rep's preferred channel is {pref.channel}")
        now = ledger.uow.now()
        not_before = pref.next_allowed(now)
        if not_before is not None:
            reason = f"quiet hours in {pref.timezone} ({pref.quiet_hours.start}-{pref.quiet_hours.end}" + (
                ", weekends)" if pref.quiet_hours.weekends else ")"
            )
            _store.defer_send(ledger.uow, item.item_id, channel, not_before, reason, actor=self.actor)
            return Hold("deferred", reason, not_before)
        return None

    def sent(self, ledger: Ledger, item_id: str, channel: str) -> None:
        if channel in RECIPIENT_CHANNELS:
            _store.release_deferred(ledger.uow, item_id, channel, actor=self.actor)
