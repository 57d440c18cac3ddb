"""Action outcomes: did the change an approved action aimed for happen, and how effective is each rule's action?

For every reviewed item on a deal (approved, dismissed, or still undecided) the
check looks at the marts for the N business days after the flag (the policy's
``outcomes.check_after_business_days``, 10 by default, per rule overridable) and
asks whether the rule's *aim* happened:

    stage_advanced          the deal entered a later stage (a lost deal's closing stint does not count)
    decision_maker_meeting  a meeting with a decision-maker contact was logged
    close_date_held         the close date did not move and the deal was not lost
    activity_resumed        any activity was logged
    meeting_logged          a meeting was logged

Default aims per rule are in ``DEFAULT_AIMS`` (any other rule: activity_resumed);
the policy's ``outcomes.rules.<rule>.aim`` changes them. A check that is not due
yet (its window ends after the latest data) stays unknown (``achieved`` NULL).
The deal's final result (won/lost/open) is recorded too. One set-based query
over the marts computes every item; results are stored per item in the
ledger's ``action_outcomes`` (refreshed on each check, with one audit row).

Action effectiveness = share of approved items whose aim happened, with a
Wilson 95% interval, per rule, manager or rep, beside the same share for the
comparison group: flagged deals of the same rule whose item was dismissed or not
decided. The difference (in points) is what the action is associated with; it is
not a controlled experiment (managers choose what to approve).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, select

from agents.learning.stats import wilson
from agents.ledger.business_days import business_days_between
from agents.ledger.learning_models import ActionOutcome
from agents.ledger.models import APPROVING_ACTIONS, Decision, Digest, Item

DEFAULT_AIMS = {
    "stalled_in_stage": "stage_advanced",
    "stale_cycle": "decision_maker_meeting",
    "no_decision_maker": "decision_maker_meeting",
    "close_date_slipped": "close_date_held",
    "no_recent_activity": "activity_resumed",
    "meeting_cadence_drop": "meeting_logged",
}
AIM_WORDS = {
    "stage_advanced": "stage advanced",
    "decision_maker_meeting": "decision-maker meeting logged",
    "close_date_held": "close date held",
    "activity_resumed": "activity resumed",
    "meeting_logged": "meeting logged",
}
FIRST_TOUCH_TARGET_DAYS = 2


def add_business_days(day: dt.date, n: int) -> dt.date:
    while n > 0:
        day += dt.timedelta(days=1)
        if day.weekday() < 5:
            n -= 1
    return day


def aim_and_days(policy: Any, rule_id: str) -> tuple[str, int]:
    settings = getattr(policy, "outcomes", None)
    aim, days = DEFAULT_AIMS.get(rule_id, "activity_resumed"), 10
    if settings is not None:
        days = settings.check_after_business_days
        override = settings.rules.get(rule_id)
        if override is not None:
            aim = override.aim or aim
            days = override.business_days or days
    return aim, days


@dataclasses.dataclass(frozen=True)
class ReviewedItem:
    item_id: str
    opportunity_id: str
    rule_id: str
    manager_id: str
    rep_id: str | None
    flagged_on: dt.date
    decision: str  # approved / dismissed / undecided
    decided_at: dt.datetime | None


def reviewed_items(uow: Any) -> list[ReviewedItem]:
    """Items on deals with their decision; an undecided item is dropped when the same deal x rule was decided."""
    query = (
        select(Item.item_id, Item.opportunity_id, Item.rule_id, Item.manager_id, Item.rep_id, Digest.as_of,
               Decision.action, Decision.decided_at)
        .join(Digest, Digest.digest_id == Item.digest_id)
        .outerjoin(Decision, Decision.item_id == Item.item_id)
        .where(Item.opportunity_id.is_not(None))
        .order_by(Digest.as_of, Item.item_id)
    )
    with uow.read() as s:
        rows = s.execute(query).all()
    out: list[ReviewedItem] = []
    decided_pairs = {(r.opportunity_id, r.rule_id) for r in rows if r.action is not None}
    seen_undecided: set[tuple[str, str]] = set()
    for r in rows:
        if r.action is None:
            pair = (r.opportunity_id, r.rule_id)
            if pair in decided_pairs or pair in seen_undecided:
                continue  # the same flag shown again on later days: count it once
            seen_undecided.add(pair)
            decision = "undecided"
        else:
            decision = "approved" if r.action in APPROVING_ACTIONS else "dismissed"
        out.append(ReviewedItem(r.item_id, r.opportunity_id, r.rule_id, r.manager_id, r.rep_id, r.as_of, decision,
                                r.decided_at))
    return out


_CHECK_SQL = """
with i as (select * from reviewed),
acts as (
    select a.opportunity_id, cast(a.occurred_at as date) as day, a.activity_type,
           exists (select 1 from marts.bridge_activity_contacts b join marts.dim_contacts c on c.contact_id = b.contact_id
                   where b.activity_id = a.activity_id and c.buying_role = 'decision_maker') as with_dm
    from marts.fct_activities a
    where a.opportunity_id in (select opportunity_id from i)
),
stage_at_flag as (
    select i.item_id,
           (select s.stage_order from marts.fct_stage_history s
            where s.opportunity_id = i.opportunity_id and cast(s.entered_at as date) <= i.flagged_on
            order by s.entered_at desc limit 1) as stage_order
    from i
)
select
    i.item_id,
    exists (select 1 from acts a where a.opportunity_id = i.opportunity_id
            and a.day > i.flagged_on and a.day <= i.check_on) as activity_resumed,
    exists (select 1 from acts a where a.opportunity_id = i.opportunity_id
            and a.day > i.flagged_on and a.day <= i.check_on and a.activity_type = 'meeting') as meeting_logged,
    exists (select 1 from acts a where a.opportunity_id = i.opportunity_id
            and a.day > i.flagged_on and a.day <= i.check_on and a.activity_type = 'meeting' and a.with_dm)
        as decision_maker_meeting,
    exists (select 1 from marts.fct_stage_history s where s.opportunity_id = i.opportunity_id
            and cast(s.entered_at as date) > i.flagged_on and cast(s.entered_at as date) <= i.check_on
            and s.stage_order > coalesce(f.stage_order, 0)
            and not (s.is_current and s.deal_outcome = 'lost')) as stage_advanced,
    not exists (select 1 from marts.fct_field_history h where h.opportunity_id = i.opportunity_id
            and h.field_name = 'close_date'
            and cast(h.changed_at as date) > i.flagged_on and cast(h.changed_at as date) <= i.check_on)
    and not coalesce(o.is_closed and not o.is_won
            and cast(o.closed_at as date) > i.flagged_on and cast(o.closed_at as date) <= i.check_on, false)
        as close_date_held,
    (select min(a.day) from acts a where a.opportunity_id = i.opportunity_id and a.day >= i.flagged_on) as first_touch,
    case when o.is_closed and o.is_won then 'won' when o.is_closed then 'lost' else 'open' end as final_result
from i
left join stage_at_flag f on f.item_id = i.item_id
left join marts.fct_opportunities o on o.opportunity_id = i.opportunity_id
"""


def latest_data_date(con: Any) -> dt.date:
    value = con.execute(
        "select max(d) from (select max(occurred_at) as d from marts.fct_activities "
        "union all select max(entered_at) from marts.fct_stage_history "
        "union all select max(changed_at) from marts.fct_field_history "
        "union all select max(closed_at) from marts.fct_opportunities) as latest"
    ).fetchone()[0]
    return value.date() if isinstance(value, dt.datetime) else value


@dataclasses.dataclass
class CheckResult:
    as_of: dt.date
    items: int
    due: int
    achieved: int
    rows: list[dict[str, Any]]


def check_outcomes(uow: Any, warehouse: Any, policy: Any, *, as_of: dt.date | None = None,
                   actor: str = "outcomes") -> CheckResult:
    """Check every reviewed item against the marts and store the results in ``action_outcomes`` (audited).

    ``warehouse``: an :class:`agents.warehouse.Warehouse` (DuckDB or PostgreSQL) or a DuckDB path. The items
    go into a temporary table and one portable query checks them all."""
    from agents.warehouse import Warehouse

    wh = Warehouse.coerce(warehouse)
    items = reviewed_items(uow)
    plan = []
    for it in items:
        aim, days = aim_and_days(policy, it.rule_id)
        plan.append({"item_id": it.item_id, "opportunity_id": it.opportunity_id, "flagged_on": it.flagged_on,
                     "check_on": add_business_days(it.flagged_on, days), "aim": aim})
    cols = ["item_id", "activity_resumed", "meeting_logged", "decision_maker_meeting", "stage_advanced",
            "close_date_held", "first_touch", "final_result"]
    # PostgreSQL refuses even a temporary table in a read-only transaction; DuckDB allows it (and a read-only
    # connection keeps the pipeline's writer unblocked).
    with wh.connect(read_only=wh.dialect == "duckdb") as con:
        data_end = latest_data_date(con)
        as_of = min(as_of or data_end, data_end)
        found: dict[str, tuple] = {}
        if plan:
            con.execute("create temporary table reviewed "
                        "(item_id varchar(64), opportunity_id varchar(128), flagged_on date, check_on date)")
            con.executemany("insert into reviewed values (:item_id, :opportunity_id, :flagged_on, :check_on)", plan)
            found = {r[0]: r for r in con.execute(_CHECK_SQL).fetchall()}
    rows = []
    now = uow.now()
    for it, p in zip(items, plan):
        rec = dict(zip(cols, found[it.item_id])) if it.item_id in found else {}
        due = p["check_on"] <= as_of
        achieved = bool(rec.get(p["aim"])) if due and rec else None
        first_touch = rec.get("first_touch")
        rows.append({
            "item_id": it.item_id, "opportunity_id": it.opportunity_id, "rule_id": it.rule_id,
            "manager_id": it.manager_id, "rep_id": it.rep_id, "decision": it.decision, "flagged_on": it.flagged_on,
            "check_on": p["check_on"], "aimed_change": p["aim"], "achieved": achieved,
            "detail": {
                "first_touch": first_touch.isoformat() if first_touch else None,
                "first_touch_business_days": business_days_between(it.flagged_on, first_touch) if first_touch else None,
                "due": due, "checked_as_of": as_of.isoformat(),
            },
            "final_result": rec.get("final_result"), "checked_at": now,
        })
    with uow.write() as s:
        s.execute(delete(ActionOutcome))
        for r in rows:
            s.add(ActionOutcome(**r))
        s.flush()
        uow.audit(s, actor=actor, action="outcomes.checked", subject_type="action_outcomes", subject_id=as_of.isoformat(),
                  payload={"items": len(rows), "due": sum(r["detail"]["due"] for r in rows),
                           "achieved": sum(1 for r in rows if r["achieved"])})
    return CheckResult(as_of, len(rows), sum(r["detail"]["due"] for r in rows),
                       sum(1 for r in rows if r["achieved"]), rows)


def stored_outcomes(uow: Any) -> list[ActionOutcome]:
    with uow.read() as s:
        return list(s.scalars(select(ActionOutcome).order_by(ActionOutcome.flagged_on, ActionOutcome.item_id)))


@dataclasses.dataclass(frozen=True)
class Effectiveness:
    key: str
    approved: int  # approved items with a due check
    worked: int
    rate: float | None
    low: float | None
    high: float | None
    compared: int  # dismissed or undecided items of the same key with a due check
    compared_worked: int
    compared_rate: float | None
    won: int = 0
    lost: int = 0

    @property
    def difference_points(self) -> float | None:
        if self.rate is None or self.compared_rate is None:
            return None
        return round(100 * (self.rate - self.compared_rate), 1)


def effectiveness(outcomes: Iterable[Any], by: str = "rule") -> list[Effectiveness]:
    """Per rule / manager / rep / week: the approved items' success rate with a Wilson interval, and the comparison."""
    field = {"rule": "rule_id", "manager": "manager_id", "rep": "rep_id"}.get(by)
    groups: dict[str, list[list[Any]]] = defaultdict(lambda: [[], []])
    for o in outcomes:
        if o.achieved is None:
            continue
        key = (o.flagged_on - dt.timedelta(days=o.flagged_on.weekday())).isoformat() if by == "week" else (
            getattr(o, field) or "(none)")
        groups[key][0 if o.decision == "approved" else 1].append(o)
    out = []
    for key in sorted(groups):
        approved, others = groups[key]
        worked = sum(1 for o in approved if o.achieved)
        low, high = wilson(worked, len(approved))
        c_worked = sum(1 for o in others if o.achieved)
        out.append(Effectiveness(
            key, len(approved), worked, worked / len(approved) if approved else None, low, high,
            len(others), c_worked, c_worked / len(others) if others else None,
            won=sum(1 for o in approved if o.final_result == "won"),
            lost=sum(1 for o in approved if o.final_result == "lost"),
        ))
    return out


def loop_kpis(uow: Any, outcomes: Iterable[Any]) -> dict[str, Any]:
    """Seed KPIs: flag -> first touch (median business days, target <= 2), reps reviewed per week,
    manager review time (when the ledger records it)."""
    days = [o.detail.get("first_touch_business_days") for o in outcomes
            if o.decision == "approved" and o.detail and o.detail.get("first_touch_business_days") is not None]
    weekly: dict[str, set[str]] = defaultdict(set)
    query = select(Item.rep_id, Decision.decided_at).join(Decision, Decision.item_id == Item.item_id)
    with uow.read() as s:
        for rep_id, decided_at in s.execute(query):
            if rep_id:
                week = decided_at.date() - dt.timedelta(days=decided_at.weekday())
                weekly[week.isoformat()].add(rep_id)
    per_week = {w: len(v) for w, v in sorted(weekly.items())}
    median = statistics.median(days) if days else None
    return {
        "flag_to_first_touch_median_business_days": median,
        "flag_to_first_touch_target": FIRST_TOUCH_TARGET_DAYS,
        "flag_to_first_touch_meets_target": None if median is None else median <= FIRST_TOUCH_TARGET_DAYS,
        "approved_items_touched": len(days),
        "reps_reviewed_per_week": per_week,
        "reps_reviewed_per_week_mean": round(statistics.mean(per_week.values()), 1) if per_week else None,
        "manager_review_time": _review_time(uow),
    }


def _review_time(uow: Any) -> dict[str, Any] | None:
    """Median minutes from a digest's first view in the console to its last decision (target <= 15);
    None while no digest was reviewed in the console."""
    from agents.ledger.review_time import TARGET_MINUTES, review_time_kpi

    kpi = review_time_kpi(uow)
    if not kpi.digests:
        return None
    return {"digests": kpi.digests, "median_minutes": kpi.median_minutes, "within_target": kpi.within_target,
            "target_minutes": TARGET_MINUTES}
