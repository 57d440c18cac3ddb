"""Learning from dismissals: why managers dismiss a rule's items, and what policy change the evidence supports.

Reasons are grouped by a keyword taxonomy (offline, documented here; the first
category whose keyword appears in the lower-cased reason wins):

    already_handled  already, handled, spoke, called, booked, on it, in progress, done
    timing           holiday, vacation, out of office, ooo, next quarter, later, budget cycle, summer
    expected         normal for, expected, procurement, legal, long cycle, runs long, seasonal
    account_policy   strategic, renewal, exec sponsor, key account, partner
    wrong_data       wrong, incorrect, not logged, stale, data, crm, not true, inaccurate, already moved
    other            anything else (and no reason)

A rule whose dismissal rate over the window (default the last 4 weeks) is above
the threshold (default 30%) with at least ``min_decisions`` decisions gets one
candidate change, chosen from its reasons:

- an *exclusion*, when most dismissed deals share an account tag that few of
  the rule's approved deals have (the rule is right elsewhere, wrong there);
- a *threshold change* (one step less sensitive: e.g. a multiplier x1.25, a
  share x0.75, days +50%), when the rule has a threshold and the reasons say
  the flags came too early (timing / expected / already handled / other);
- *demotion to informational* (``demotion.rules``), when it has no threshold
  to move or the reasons say the data is wrong.

Nothing is applied: the candidate becomes a *proposed* policy version with its
evidence (the dismissals, and the backtest lift and flag volume before and after).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select

from agents.ledger.autonomy import AUTONOMY_CHANNEL
from agents.ledger.models import Decision, Item

TAXONOMY: dict[str, tuple[str, ...]] = {
    "already_handled": ("already", "handled", "spoke", "called", "booked", "on it", "in progress", "done"),
    "timing": ("holiday", "vacation", "out of office", "ooo", "next quarter", "later", "budget cycle", "summer"),
    "expected": ("normal for", "expected", "procurement", "legal", "long cycle", "runs long", "seasonal"),
    "account_policy": ("strategic", "renewal", "exec sponsor", "key account", "partner"),
    "wrong_data": ("wrong", "incorrect", "not logged", "stale", "data", "crm", "not true", "inaccurate", "moved"),
}
OTHER = "other"

# rule -> (param, direction): the step that makes the rule less sensitive.
THRESHOLDS: dict[str, list[tuple[str, str]]] = {
    "stalled_in_stage": [("multiplier", "x1.25")],
    "stale_cycle": [("multiplier", "x1.25")],
    "no_recent_activity": [("days", "x1.5")],
    "meeting_cadence_drop": [("baseline_share", "x0.75"), ("own_share", "x0.75")],
    "close_date_slipped": [("min_pushes", "+1")],
    "amount_swing": [("min_relative_change", "x1.25")],
    "rep_overload": [("max_open_deals", "x1.25")],
}


def categorise(reason: str | None) -> str:
    text = (reason or "").lower()
    for category, words in TAXONOMY.items():
        if any(re.search(r"\b" + re.escape(w), text) for w in words):
            return category
    return OTHER


@dataclasses.dataclass(frozen=True)
class Dismissal:
    item_id: str
    opportunity_id: str | None
    rule_id: str
    manager_id: str
    decided_at: dt.datetime
    reason: str | None
    category: str


@dataclasses.dataclass
class RuleDismissals:
    rule_id: str
    decided: int
    dismissed: int
    dismissals: list[Dismissal]

    @property
    def rate(self) -> float:
        return self.dismissed / self.decided if self.decided else 0.0

    @property
    def categories(self) -> dict[str, int]:
        return dict(Counter(d.category for d in self.dismissals).most_common())


def dismissals_by_rule(uow: Any, as_of: dt.date, *, weeks: int = 4) -> dict[str, RuleDismissals]:
    """Decisions taken in the ``weeks`` weeks up to ``as_of`` (inclusive), per rule, with the dismissals."""
    since = dt.datetime.combine(as_of - dt.timedelta(weeks=weeks), dt.time.min, tzinfo=dt.timezone.utc)
    until = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time.min, tzinfo=dt.timezone.utc)
    query = (
        select(Item.item_id, Item.opportunity_id, Item.rule_id, Item.manager_id, Decision.action, Decision.decided_at,
               Decision.reason)
        .join(Decision, Decision.item_id == Item.item_id)
        .where(Decision.decided_at >= since, Decision.decided_at < until)
        # people's decisions only: an L5 approval (agents/autonomy) is no manager's verdict on the rule
        .where(Decision.approver_channel != AUTONOMY_CHANNEL)
        .order_by(Decision.decided_at)
    )
    out: dict[str, RuleDismissals] = {}
    with uow.read() as s:
        for r in s.execute(query):
            entry = out.setdefault(r.rule_id, RuleDismissals(r.rule_id, 0, 0, []))
            entry.decided += 1
            if r.action == "dismiss":
                entry.dismissed += 1
                entry.dismissals.append(Dismissal(r.item_id, r.opportunity_id, r.rule_id, r.manager_id, r.decided_at,
                                                  r.reason, categorise(r.reason)))
    return dict(sorted(out.items()))


@dataclasses.dataclass
class Candidate:
    rule_id: str
    kind: str  # threshold / exclusion / demotion
    summary: str
    yaml_text: str
    evidence: dict[str, Any]


def _step(value: Any, how: str) -> Any:
    if how.startswith("+"):
        return int(value) + int(how[1:])
    factor = float(how[1:])
    new = value * factor
    return int(round(new)) if isinstance(value, int) else round(new, 4)


def _yaml():
    from ruamel.yaml import YAML

    y = YAML()  # round-trip: the proposal keeps the policy's comments and order, so its diff shows only the change
    y.preserve_quotes = True
    y.width = 4096
    y.indent(mapping=2, sequence=4, offset=2)  # the shipped policy's layout: "key:\n  - item"
    y.representer.add_representer(
        type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null"))
    return y


def _load(text: str) -> Any:
    from ruamel.yaml.comments import CommentedMap

    return _yaml().load(text) or CommentedMap()


def _dump(data: Any) -> str:
    import io

    buf = io.StringIO()
    _yaml().dump(data, buf)
    return buf.getvalue()


def _bump_version(data: dict[str, Any], rule_id: str) -> None:
    data["version"] = f"{data.get('version', 'policy')}+{rule_id}"


def propose_candidate(
    policy_text: str, policy: Any, stats: RuleDismissals, *, account_tags: Mapping[str, Iterable[str]] | None = None,
    approved_opportunities: Iterable[str] = (),
) -> Candidate:
    """One candidate change for a rule managers keep dismissing (see the module docstring for the choice)."""
    rule = stats.rule_id
    data = _load(policy_text)
    cats = stats.categories
    evidence: dict[str, Any] = {
        "rule": rule, "decided": stats.decided, "dismissed": stats.dismissed, "dismissal_rate": round(stats.rate, 3),
        "reason_categories": cats,
        "dismissals": [{"item": d.item_id, "deal": d.opportunity_id, "manager": d.manager_id,
                        "decided_at": d.decided_at.isoformat(), "reason": d.reason, "category": d.category}
                       for d in stats.dismissals],
    }
    # An exclusion: most dismissed deals share a tag that the approved deals mostly lack.
    if account_tags:
        dismissed_deals = [d.opportunity_id for d in stats.dismissals if d.opportunity_id]
        tag_counts = Counter(t for o in dismissed_deals for t in set(account_tags.get(o, ())))
        approved = list(approved_opportunities)
        for tag, n in tag_counts.most_common():
            share_dismissed = n / len(dismissed_deals) if dismissed_deals else 0
            share_approved = (sum(tag in set(account_tags.get(o, ())) for o in approved) / len(approved)) if approved else 0
            if share_dismissed >= 0.6 and share_approved < 0.3:
                if data.get("exclusions") is None:
                    data["exclusions"] = []
                data["exclusions"].append(
                    {"tag": tag, "rules": [rule], "reason": f"dismissed on {n} of {len(dismissed_deals)} {tag} deals"})
                _bump_version(data, rule)
                evidence["tag"] = {"tag": tag, "share_dismissed": round(share_dismissed, 2),
                                   "share_approved": round(share_approved, 2)}
                return Candidate(rule, "exclusion", f"exclude accounts tagged {tag} from {rule}",
                                 _dump(data), evidence)
    steps = THRESHOLDS.get(rule)
    wrong_data = cats.get("wrong_data", 0) > stats.dismissed / 2
    if steps and not wrong_data:
        section = "custom_rules" if policy.is_custom(rule) else "rules"
        if data.get(section) is None:
            data[section] = {}
        if data[section].get(rule) is None:
            data[section][rule] = {}
        cfg = data[section][rule]
        if cfg.get("params") is None:
            cfg["params"] = {}
        params = cfg["params"]
        current = policy.resolve(rule).params
        changes = []
        for param, how in steps:
            before = getattr(current, param)
            after = _step(before, how)
            params[param] = after
            changes.append(f"{param} {before} -> {after}")
        _bump_version(data, rule)
        return Candidate(rule, "threshold", f"{rule}: " + ", ".join(changes) + " (less sensitive)",
                         _dump(data), evidence)
    if data.get("demotion") is None:
        data["demotion"] = {}
    demotion = data["demotion"]
    rules = list(demotion.get("rules") or [])
    if rule not in rules:
        rules.append(rule)
    demotion["rules"] = rules
    _bump_version(data, rule)
    return Candidate(rule, "demotion", f"show {rule} as informational (nothing to decide)",
                     _dump(data), evidence)


def rules_over_threshold(stats: Mapping[str, RuleDismissals], *, threshold: float = 0.3,
                         min_decisions: int = 5) -> list[RuleDismissals]:
    return [s for s in stats.values() if s.decided >= min_decisions and s.rate > threshold]


def approved_opportunities(uow: Any, rule_id: str) -> list[str]:
    query = (select(Item.opportunity_id).join(Decision, Decision.item_id == Item.item_id)
             .where(Item.rule_id == rule_id, Decision.action.in_(("approve", "edit"))))
    with uow.read() as s:
        return [r[0] for r in s.execute(query) if r[0]]


def account_tags_for(warehouse: Any, opportunity_ids: Iterable[str]) -> dict[str, list[str]]:
    """Deal -> its account's tags (';'-separated in dim_accounts), read-only from the warehouse."""
    from agents.warehouse import Warehouse

    ids = sorted(set(opportunity_ids))
    if not ids:
        return {}
    with Warehouse.coerce(warehouse).connect(read_only=True) as con:
        rows = con.execute(
            "select o.opportunity_id, a.tags from marts.fct_opportunities o "
            "join marts.dim_accounts a on a.account_id = o.account_id "
            "where o.opportunity_id = any(:ids)", {"ids": ids},
        ).fetchall()
    out: dict[str, list[str]] = defaultdict(list)
    for opp, tags in rows:
        if isinstance(tags, (list, tuple)):
            out[opp] = [str(t) for t in tags if t]
        elif tags:
            out[opp] = [t.strip() for t in str(tags).split(";") if t.strip()]
    return dict(out)


# ---------------------------------------------------------------------------- optional: Claude groups the reasons

GROUP_TOOL_NAME = "group_dismissal_reasons"
GROUP_SYSTEM_PROMPT = (
    "You sort sales managers' reasons for dismissing a coaching suggestion into fixed categories. "
    "Categories: already_handled (the rep or manager already acted), timing (holidays, out of office, "
    "come back later), expected (normal for this kind of deal: procurement, legal, long cycles), "
    "account_policy (strategic, renewal or partner accounts handled differently), wrong_data (the CRM "
    "data behind the flag is wrong or stale), other. Answer only with the tool: one category per reason index."
)
GROUP_TOOL = {
    "name": GROUP_TOOL_NAME,
    "description": "Record the category of each numbered dismissal reason.",
    "input_schema": {
        "type": "object",
        "properties": {"categories": {"type": "array", "items": {"type": "object", "properties": {
            "index": {"type": "integer"}, "category": {"type": "string", "enum": [*TAXONOMY, OTHER]}},
            "required": ["index", "category"]}}},
        "required": ["categories"],
    },
}


def group_reasons_with_claude(reasons: list[str | None], client: Any, *, model: str = "claude-sonnet-4-5",
                              max_tokens: int = 1024) -> tuple[list[str], list[str]]:
    """Categories for ``reasons`` from Claude, checked by a validator; (categories, problems).

    The validator accepts only the taxonomy's categories and each given index once; every reason Claude
    did not answer validly (or the whole call, on an API error) falls back to the keyword taxonomy, and the
    problems say which. The keyword result is always the floor: Claude can only re-sort, never invent.
    """
    from pydantic import BaseModel, Field, ValidationError

    class _Pick(BaseModel):
        index: int = Field(ge=0, lt=max(len(reasons), 1))
        category: str

    class _Answer(BaseModel):
        categories: list[_Pick]

    fallback = [categorise(r) for r in reasons]
    if not reasons:
        return [], []
    listing = "\n".join(f"{i}. {(r or '(no reason)')[:300]}" for i, r in enumerate(reasons))
    try:
        message = client.messages.create(
            model=model, max_tokens=max_tokens, system=GROUP_SYSTEM_PROMPT, tools=[GROUP_TOOL],
            tool_choice={"type": "tool", "name": GROUP_TOOL_NAME},
            messages=[{"role": "user", "content": f"Reasons:\n{listing}"}],
        )
    except Exception as exc:  # any API failure: the offline taxonomy answers
        return fallback, [f"Claude unavailable ({type(exc).__name__}); keyword taxonomy used"]
    block = next((b for b in (getattr(message, "content", None) or []) if getattr(b, "type", None) == "tool_use"), None)
    if block is None:
        return fallback, ["no tool call in Claude's answer; keyword taxonomy used"]
    try:
        answer = _Answer.model_validate(block.input if isinstance(block.input, dict) else {})
    except ValidationError as exc:
        return fallback, [f"Claude's answer failed validation ({exc.errors()[0]['msg']}); keyword taxonomy used"]
    out, problems, seen = list(fallback), [], set()
    allowed = {*TAXONOMY, OTHER}
    for pick in answer.categories:
        if pick.index in seen:
            problems.append(f"reason {pick.index} answered twice; the first answer kept")
            continue
        seen.add(pick.index)
        if pick.category not in allowed:
            problems.append(f"reason {pick.index}: unknown category {pick.category!r}; keyword taxonomy used")
            continue
        out[pick.index] = pick.category
    missing = [i for i in range(len(reasons)) if i not in seen]
    if missing:
        problems.append(f"reasons {missing} not answered; keyword taxonomy used for them")
    return out, problems


def regroup(stats: RuleDismissals, categories: list[str]) -> RuleDismissals:
    """The same dismissals with the given categories (e.g. from :func:`group_reasons_with_claude`)."""
    return RuleDismissals(stats.rule_id, stats.decided, stats.dismissed,
                          [dataclasses.replace(d, category=c) for d, c in zip(stats.dismissals, categories)])
