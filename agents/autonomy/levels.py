"""Autonomy levels per rule, the L5 bar a rule earns them by, and what can never be sent at L5.

The ladder: L1 answer when asked, L2 recommend (in the digest, nothing sent), L3 draft for the
manager's approval (the default: today's behaviour), L4 publish after approval, L5 send low-risk
nudges to the rep without a per-item approval.

A rule configured at L5 *is* at L5 only while its own record clears the bar: over the last
``l5.window_business_days`` business days, managers approved at least ``l5.min_agreement`` of at
least ``l5.min_decisions`` decisions on its items (autonomous approvals excluded, recalls counted
against it), and the live drafter's eval passes ``l5.min_eval_pass_rate``. The bar is checked at
start-up and again before every L5 send; a rule below it runs at L4, and the drop is audited with a
notice the managers see in their next digest.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from agents.autonomy.config import LEVEL_NAMES, REP_CHANNELS, AutonomySettings
from agents.ledger import Ledger
from agents.ledger import autonomy as _store
from agents.ledger.business_days import window_start


@dataclasses.dataclass(frozen=True)
class L5Check:
    rule_id: str
    passed: bool
    approved: int
    decided: int
    agreement: float | None
    eval_pass_rate: float | None
    window: str
    problems: tuple[str, ...]

    def payload(self) -> dict[str, Any]:
        return {
            "passed": self.passed, "approved": self.approved, "decided": self.decided, "agreement": self.agreement,
            "eval_pass_rate": self.eval_pass_rate, "window": self.window, "problems": list(self.problems),
        }

    def describe(self) -> str:
        shown = "no decisions" if self.agreement is None else f"{self.agreement:.0%} ({self.approved} of {self.decided} approved)"
        verdict = "clears the L5 bar" if self.passed else "below the L5 bar: " + "; ".join(self.problems)
        return f"{self.rule_id}: agreement {shown} over {self.window}; {verdict}"


def check_l5(ledger: Ledger, settings: AutonomySettings, rule_id: str, as_of: dt.date, drafter: str) -> L5Check:
    bar = settings.l5
    since = window_start(as_of, bar.window_business_days)
    approved, decided = _store.rule_agreement(ledger.uow, rule_id, since, as_of)
    agreement = approved / decided if decided else None
    problems = []
    if not settings.low_risk(rule_id):
        problems.append("the policy does not mark this rule low-risk")
    if decided < bar.min_decisions:
        problems.append(f"{decided} manager decision(s) in the window, at least {bar.min_decisions} needed")
    elif agreement is not None and agreement < bar.min_agreement:
        problems.append(f"agreement {agreement:.0%} < {bar.min_agreement:.0%}")
    result = ledger.latest_eval(drafter)
    rate = float(result["pass_rate"]) if result else None
    if rate is None:
        problems.append(f"no eval recorded for drafter {drafter!r} (`sales-supervisor eval`)")
    elif rate < bar.min_eval_pass_rate:
        problems.append(f"eval pass rate {rate:.0%} < {bar.min_eval_pass_rate:.0%} for {drafter}")
    window = f"{bar.window_business_days} business days {since.isoformat()}..{as_of.isoformat()}"
    return L5Check(rule_id, not problems, approved, decided, agreement, rate, window, tuple(problems))


def demotion_notice(check: L5Check) -> str:
    return (
        f"Rule {check.rule_id} dropped from L5 to L4: {'; '.join(check.problems)} ({check.window}). "
        "Its nudges wait for your approval again until it earns L5 back."
    )


def apply_check(ledger: Ledger, check: L5Check, *, actor: str) -> int:
    """Record the rule's effective level after ``check`` (audited only when it changes); returns it."""
    state = _store.rule_level_state(ledger.uow, check.rule_id)
    level = 5 if check.passed else 4
    previous = (state or {}).get("level")
    if previous == level:
        return level
    if level == 5:
        action, extra = "autonomy.l5_granted", {}
    elif previous == 5:
        action, extra = "autonomy.demoted", {"notice": demotion_notice(check)}
    else:
        action, extra = "autonomy.l5_refused", {}
    _store.set_rule_level(ledger.uow, check.rule_id, level, action=action, payload={**check.payload(), **extra}, actor=actor)
    return level


def evaluate_levels(
    ledger: Ledger, settings: AutonomySettings, as_of: dt.date, *, drafter: str, actor: str = "startup"
) -> dict[str, tuple[int, L5Check | None]]:
    """Each rule configured above the default or at L5: its effective level (L5 only while its check passes)."""
    out: dict[str, tuple[int, L5Check | None]] = {}
    for rule_id, cfg in settings.rules.items():
        if cfg.level != 5:
            out[rule_id] = (cfg.level, None)
            continue
        check = check_l5(ledger, settings, rule_id, as_of, drafter)
        out[rule_id] = (apply_check(ledger, check, actor=actor), check)
    return out


def high_risk_reason(settings: AutonomySettings, item: Any, channel: str) -> str | None:
    """Why ``item`` may never be sent on ``channel`` without a manager's approval (None: it is a low-risk nudge)."""
    if channel not in (*REP_CHANNELS, "rep_teams"):
        return f"{channel} does not go to the rep: L5 sends only nudges to the rep (never a CRM write or a customer)"
    if not settings.low_risk(item.rule_id):
        return f"the policy does not mark rule {item.rule_id} low-risk"
    if item.rule_id in settings.high_risk.rules:
        return f"rule {item.rule_id} is a performance verdict"
    if not item.opportunity_id:
        return "a verdict on a rep, not a nudge on a deal"
    if item.severity in settings.high_risk.severities:
        return f"severity {item.severity} is high-risk"
    flag = (item.evidence or {}).get("flag") or {}
    amount = flag.get("amount")
    if amount is None:
        return "the deal's amount is unknown"
    if float(amount) > settings.high_risk.max_amount:
        return f"a large deal ({float(amount):,.0f} > {settings.high_risk.max_amount:,.0f})"
    draft = item.draft or {}
    if draft.get("actor") not in (None, "rep"):
        return f"the action is for the {draft.get('actor')}, not the rep"
    return None


def describe_levels(settings: AutonomySettings, levels: dict[str, tuple[int, L5Check | None]]) -> list[str]:
    lines = [f"default: {LEVEL_NAMES[settings.default_level]}"]
    for rule_id, (level, check) in sorted(levels.items()):
        configured = settings.configured_level(rule_id)
        line = f"{rule_id}: {LEVEL_NAMES[level]}"
        if configured != level:
            line += f" (configured L{configured})"
        if check is not None:
            line += f" - {check.describe()}"
        lines.append(line)
    return lines
