"""Point-in-time deal and rep features, computed with SQL on the canonical marts.

Everything here uses only what was known at ``as_of`` (the end of that day):

* a deal is open at D if it was created by D and had not closed by D;
* its stage at D is the last stint of ``fct_stage_history`` entered by D;
* its close date and amount at D come from ``fct_field_history``: a change
  made after D tells, in its ``old_value``, what the field held at D;
* activities, field changes and decision-maker contacts count only when they
  happened by D.

Every feature keeps the ids of the rows that justify it (the last activity,
the current stint, the close-date pushes, the amount change, the
decision-maker activities), so a flag can cite them.

A source that lacks a whole table (no activity log, no stage history, no
field history, no buying roles) is detected by the table being empty; the
rules that depend on it then report "not applicable" instead of firing.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FEATURE_NAMES",
    "ActivityFact",
    "DealFeatures",
    "FieldChange",
    "RepFeatures",
    "SourceCoverage",
    "days_to_quarter_end",
    "load_deal_features",
    "load_rep_features",
    "deal_from_row",
    "load_source_coverage",
]

MARTS = "marts"

# The scalar features custom rules and playbook conditions may use (name -> meaning).
FEATURE_NAMES: dict[str, str] = {
    "amount": "deal amount at the as-of date",
    "segment": "market segment ('smb', 'mid_market', 'enterprise')",
    "stage": "stage at the as-of date",
    "stage_order": "position of that stage in the pipeline (1 = first)",
    "days_in_stage": "days since the deal entered its current stage",
    "cycle_days": "days since the deal was created",
    "days_since_activity": "days since the last logged activity (unknown if none)",
    "activity_count": "activities logged by the as-of date",
    "meetings_last_28d": "meetings in the last 28 days",
    "meetings_prior_8w": "meetings in the 8 weeks before those 28 days",
    "has_decision_maker": "true if an activity ever involved a decision-maker contact",
    "days_to_close": "close date minus the as-of date (negative when past due)",
    "is_past_due": "true if the close date is before the as-of date",
    "close_date_pushes": "times the close date was moved later",
    "amount_change_30d": "largest relative amount change in the last 30 days (0.25 = 25%)",
    "rep_tenure_days": "days since the owner rep was hired",
    "rep_open_deals": "open deals the owner rep holds",
    "days_to_quarter_end": "days from the as-of date to the end of its calendar quarter",
    "is_strategic": "true if the account is tagged Strategic",
    "has_next_step": "true if the deal has a next step recorded",
}


def _day_end(as_of: dt.date) -> dt.datetime:
    """The exclusive upper bound of what is known at ``as_of`` (the dbt macro as_of_upper_bound)."""
    return dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())


def days_to_quarter_end(d: dt.date) -> int:
    q_end_month = ((d.month - 1) // 3 + 1) * 3
    if q_end_month == 12:
        end = dt.date(d.year, 12, 31)
    else:
        end = dt.date(d.year, q_end_month + 1, 1) - dt.timedelta(days=1)
    return (end - d).days


def _as_date(value: Any) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        return None


def _as_float(value: Any) -> float | None:
    if value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


@dataclass(frozen=True)
class SourceCoverage:
    """Which marts the source fills; an empty one makes its dependent rules not applicable."""

    has_stage_history: bool = True
    has_activities: bool = True
    has_field_history: bool = True
    has_buying_roles: bool = True


@dataclass(frozen=True)
class ActivityFact:
    activity_id: str
    activity_type: str
    occurred_at: dt.datetime
    decision_maker_contact_ids: tuple[str, ...] = ()

    @property
    def with_decision_maker(self) -> bool:
        return bool(self.decision_maker_contact_ids)


@dataclass(frozen=True)
class FieldChange:
    field_history_id: str
    field_name: str
    old_value: str | None
    new_value: str | None
    changed_at: dt.datetime


@dataclass(frozen=True)
class DealFeatures:
    """One open deal as it stood at ``as_of``, with the rows behind each value."""

    as_of: dt.date
    opportunity_id: str
    account_id: str | None = None
    owner_rep_id: str | None = None
    manager_id: str | None = None
    opportunity_name: str | None = None
    segment: str | None = None
    stage: str | None = None
    stage_order: int | None = None
    amount: float | None = None
    created_at: dt.datetime | None = None
    close_date: dt.date | None = None
    next_step: str | None = None
    source_url: str | None = None
    account_tags: tuple[str, ...] = ()
    rep_hired_on: dt.date | None = None
    rep_open_deals: int | None = None
    # The current stint (stage history row) at as_of.
    stage_history_id: str | None = None
    stage_entered_at: dt.datetime | None = None
    # Facts known at as_of, oldest first.
    activities: tuple[ActivityFact, ...] = ()
    close_date_changes: tuple[FieldChange, ...] = ()
    amount_changes: tuple[FieldChange, ...] = ()
    # Field history rows (after as_of) that told the close date / amount at as_of.
    close_date_source_id: str | None = None
    amount_source_id: str | None = None
    coverage: SourceCoverage = field(default_factory=SourceCoverage)
    # Activities logged by as_of, counted in SQL. Set when ``activities`` holds only the ones the
    # policy can look at (see load_deal_features' activity_windows); None means all are there.
    activity_total: int | None = None

    # ------------------------------------------------------------------ derived values

    @property
    def days_in_stage(self) -> int | None:
        if self.stage_entered_at is None:
            return None
        return (self.as_of - self.stage_entered_at.date()).days

    @property
    def cycle_days(self) -> int | None:
        if self.created_at is None:
            return None
        return (self.as_of - self.created_at.date()).days

    @property
    def activity_count(self) -> int:
        return self.activity_total if self.activity_total is not None else len(self.activities)

    @property
    def last_activity(self) -> ActivityFact | None:
        return self.activities[-1] if self.activities else None

    @property
    def days_since_activity(self) -> int | None:
        last = self.last_activity
        return None if last is None else (self.as_of - last.occurred_at.date()).days

    @property
    def decision_maker_activities(self) -> tuple[ActivityFact, ...]:
        return tuple(a for a in self.activities if a.with_decision_maker)

    @property
    def days_to_close(self) -> int | None:
        return None if self.close_date is None else (self.close_date - self.as_of).days

    @property
    def rep_tenure_days(self) -> int | None:
        return None if self.rep_hired_on is None else (self.as_of - self.rep_hired_on).days

    @property
    def is_strategic(self) -> bool:
        return any(t.lower() == "strategic" for t in self.account_tags)

    def meetings_between(self, days_back_from: int, days_back_to: int) -> tuple[ActivityFact, ...]:
        """Meetings with ``as_of - days_back_from < date <= as_of - days_back_to``."""
        lo = self.as_of - dt.timedelta(days=days_back_from)
        hi = self.as_of - dt.timedelta(days=days_back_to)
        meetings = self.__dict__.get("_meetings")
        if meetings is None:  # the rules and the custom-rule features ask several windows of each deal
            meetings = tuple((a.occurred_at.date(), a) for a in self.activities if a.activity_type == "meeting")
            self.__dict__["_meetings"] = meetings  # a cache beside the fields, as scalars()
        return tuple(a for day, a in meetings if lo < day <= hi)

    def activities_within(self, days: int, types: tuple[str, ...] | None = None) -> tuple[ActivityFact, ...]:
        lo = self.as_of - dt.timedelta(days=days)
        return tuple(
            a for a in self.activities if a.occurred_at.date() > lo and (types is None or a.activity_type in types)
        )

    def close_date_pushes(self) -> tuple[FieldChange, ...]:
        """Close-date changes that moved the date later."""
        out = []
        for c in self.close_date_changes:
            old, new = _as_date(c.old_value), _as_date(c.new_value)
            if old is not None and new is not None and new > old:
                out.append(c)
        return tuple(out)

    def amount_swings(self, within_days: int) -> list[tuple[FieldChange, float]]:
        """Amount changes in the last ``within_days`` days with their relative size (|new-old|/old)."""
        lo = self.as_of - dt.timedelta(days=within_days)
        out = []
        for c in self.amount_changes:
            if c.changed_at.date() <= lo:
                continue
            old, new = _as_float(c.old_value), _as_float(c.new_value)
            if old and new is not None and old > 0:
                out.append((c, abs(new - old) / old))
        return out

    def field_value(self, name: str) -> Any:
        """A deal field by name (for the required-fields rule)."""
        return getattr(self, name, None)

    def scalars(self) -> dict[str, Any]:
        """The feature values custom rules and playbook conditions see (FEATURE_NAMES).

        Computed once per deal (playbook conditions and custom rules both read them); a copy is returned."""
        cached = self.__dict__.get("_scalars")
        if cached is None:
            cached = self._compute_scalars()
            self.__dict__["_scalars"] = cached  # a frozen dataclass: a cache beside the fields, not a field
        return dict(cached)

    def _compute_scalars(self) -> dict[str, Any]:
        swings = self.amount_swings(30)
        return {
            "amount": self.amount,
            "segment": self.segment,
            "stage": self.stage,
            "stage_order": self.stage_order,
            "days_in_stage": self.days_in_stage,
            "cycle_days": self.cycle_days,
            "days_since_activity": self.days_since_activity,
            "activity_count": self.activity_count if self.coverage.has_activities else None,
            "meetings_last_28d": len(self.meetings_between(28, 0)) if self.coverage.has_activities else None,
            "meetings_prior_8w": len(self.meetings_between(84, 28)) if self.coverage.has_activities else None,
            "has_decision_maker": bool(self.decision_maker_activities) if self.coverage.has_buying_roles else None,
            "days_to_close": self.days_to_close,
            "is_past_due": None if self.close_date is None else self.close_date < self.as_of,
            "close_date_pushes": len(self.close_date_pushes()) if self.coverage.has_field_history else None,
            "amount_change_30d": max((s for _, s in swings), default=0.0) if self.coverage.has_field_history else None,
            "rep_tenure_days": self.rep_tenure_days,
            "rep_open_deals": self.rep_open_deals,
            "days_to_quarter_end": days_to_quarter_end(self.as_of),
            "is_strategic": self.is_strategic,
            "has_next_step": bool(self.next_step and self.next_step.strip()),
        }


@dataclass(frozen=True)
class RepFeatures:
    as_of: dt.date
    rep_id: str
    rep_name: str | None = None
    manager_id: str | None = None
    segment: str | None = None
    hired_on: dt.date | None = None
    is_active: bool | None = None
    open_deal_ids: tuple[str, ...] = ()
    open_amount: float = 0.0
    source_url: str | None = None

    @property
    def open_deals(self) -> int:
        return len(self.open_deal_ids)


# ---------------------------------------------------------------------------- SQL


def _rows(con: Any, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    cur = con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def load_source_coverage(con: Any) -> SourceCoverage:
    """Which marts hold rows at all (a source without an activity log lands an empty table)."""

    def has(sql: str) -> bool:
        return con.execute(sql).fetchone()[0] > 0

    return SourceCoverage(
        has_stage_history=has(f"select count(*) from (select 1 from {MARTS}.fct_stage_history limit 1)"),
        has_activities=has(f"select count(*) from (select 1 from {MARTS}.fct_activities limit 1)"),
        has_field_history=has(f"select count(*) from (select 1 from {MARTS}.fct_field_history limit 1)"),
        has_buying_roles=has(
            f"select count(*) from (select 1 from {MARTS}.bridge_activity_contacts "
            "where buying_role is not null limit 1)"
        ),
    )


# Deals open at the cut-off, with their stage, close date and amount at that time.
_OPEN_DEALS_SQL = f"""
with open_deals as (
    select *
    from {MARTS}.fct_opportunities
    where (created_at < $cutoff or created_at is null)  -- no creation date: open, its age unknown
      and not (coalesce(is_closed, false) and coalesce(closed_at, $cutoff) < $cutoff)
),
stint_at as (
    select
        opportunity_id, stage_history_id, stage, stage_order, entered_at,
        row_number() over (partition by opportunity_id order by entered_at desc, stage_history_id desc) as rn
    from {MARTS}.fct_stage_history
    where entered_at < $cutoff
      and opportunity_id in (select opportunity_id from open_deals)
),
later_changes as (
    -- The first change after the cut-off of each field tells its value at the cut-off.
    select
        opportunity_id, field_name, field_history_id, old_value,
        row_number() over (
            partition by opportunity_id, field_name order by changed_at, field_history_id
        ) as rn
    from {MARTS}.fct_field_history
    where changed_at >= $cutoff
      and field_name in ('close_date', 'amount', 'next_step')
      and opportunity_id in (select opportunity_id from open_deals)
),
rep_load as (
    select owner_rep_id, count(*) as rep_open_deals
    from open_deals
    group by owner_rep_id
)
select
    o.opportunity_id,
    o.account_id,
    o.owner_rep_id,
    coalesce(o.manager_id, r.manager_id) as manager_id,
    o.opportunity_name,
    o.segment,
    o.created_at,
    o.source_url,
    o.is_closed as closed_now,
    o.stage as stage_now,
    o.stage_order as stage_order_now,
    s.stage_history_id,
    s.stage as stage_at,
    s.stage_order as stage_order_at,
    s.entered_at as stage_entered_at,
    o.close_date as close_date_now,
    cd.old_value as close_date_at,
    cd.field_history_id as close_date_source_id,
    o.amount as amount_now,
    am.old_value as amount_at,
    am.field_history_id as amount_source_id,
    o.next_step as next_step_now,
    ns.old_value as next_step_at,
    ns.field_history_id as next_step_source_id,
    a.tags as account_tags,
    r.hired_on as rep_hired_on,
    rl.rep_open_deals
from open_deals o
left join stint_at s on s.opportunity_id = o.opportunity_id and s.rn = 1
left join later_changes cd on cd.opportunity_id = o.opportunity_id and cd.field_name = 'close_date' and cd.rn = 1
left join later_changes am on am.opportunity_id = o.opportunity_id and am.field_name = 'amount' and am.rn = 1
left join later_changes ns on ns.opportunity_id = o.opportunity_id and ns.field_name = 'next_step' and ns.rn = 1
left join {MARTS}.dim_accounts a on a.account_id = o.account_id
left join {MARTS}.dim_reps r on r.rep_id = o.owner_rep_id
left join rep_load rl on rl.owner_rep_id = o.owner_rep_id
order by o.opportunity_id
"""

_ACTIVITIES_SQL = f"""
with open_ids as ({{open_ids}})
select
    act.opportunity_id,
    act.activity_id,
    act.activity_type,
    act.occurred_at,
    list(b.contact_id order by b.contact_id) filter (where b.buying_role = 'decision_maker') as dm_contacts
from {MARTS}.fct_activities act
left join {MARTS}.bridge_activity_contacts b on b.activity_id = act.activity_id
where act.occurred_at < $cutoff
  and act.opportunity_id in (select opportunity_id from open_ids)
group by all
order by act.opportunity_id, act.occurred_at, act.activity_id
"""

# The activities a policy can look at, chosen in SQL: the meetings since the meeting window's start
# (cadence windows, custom-rule meeting counts), any activity since the other window's start ("active
# within N days"), the deal's last activity and its last decision-maker activity (the rules only ask
# whether there was one), with the count of all activities by as_of. The rest never become Python objects.
_COMPACT_ACTIVITIES_SQL = f"""
with open_ids as ({{open_ids}}),
acts as (
    select
        act.opportunity_id, act.activity_id, act.activity_type, act.occurred_at,
        list(b.contact_id order by b.contact_id) filter (where b.buying_role = 'decision_maker') as dm_contacts
    from {MARTS}.fct_activities act
    left join {MARTS}.bridge_activity_contacts b on b.activity_id = act.activity_id
    where act.occurred_at < $cutoff
      and act.opportunity_id in (select opportunity_id from open_ids)
    group by all
),
ranked as (
    select
        *,
        coalesce(len(dm_contacts), 0) > 0 as with_dm,
        count(*) over (partition by opportunity_id) as n_activities,
        row_number() over (partition by opportunity_id order by occurred_at desc, activity_id desc) as rn_last,
        row_number() over (
            partition by opportunity_id, coalesce(len(dm_contacts), 0) > 0 order by occurred_at desc, activity_id desc
        ) as rn_kind
    from acts
)
select opportunity_id, activity_id, activity_type, occurred_at, dm_contacts, n_activities
from ranked
where (lower(activity_type) = 'meeting' and occurred_at >= $meetings_since) or occurred_at >= $any_since
   or rn_last = 1 or (with_dm and rn_kind = 1)
order by opportunity_id, occurred_at, activity_id
"""

_FIELD_CHANGES_SQL = f"""
with open_ids as ({{open_ids}})
select field_history_id, opportunity_id, field_name, old_value, new_value, changed_at
from {MARTS}.fct_field_history
where changed_at < $cutoff
  and field_name in ('close_date', 'amount')
  and opportunity_id in (select opportunity_id from open_ids)
order by opportunity_id, changed_at, field_history_id
"""

_OPEN_IDS_SQL = f"""
select opportunity_id from {MARTS}.fct_opportunities
where (created_at < $cutoff or created_at is null)
  and not (coalesce(is_closed, false) and coalesce(closed_at, $cutoff) < $cutoff)
"""


def _split_tags(tags: str | None) -> tuple[str, ...]:
    if not tags:
        return ()
    return tuple(t.strip() for t in tags.replace(",", ";").split(";") if t.strip())


def _stage_order_map(con: Any) -> dict[str, int]:
    rows = _rows(
        con,
        f"select stage, min(stage_order) as stage_order from {MARTS}.fct_opportunities "
        "where stage_order is not null group by stage",
    )
    out = {r["stage"]: int(r["stage_order"]) for r in rows}
    for r in _rows(
        con,
        f"select stage, min(stage_order) as stage_order from {MARTS}.fct_stage_history "
        "where stage_order is not null group by stage",
    ):
        out.setdefault(r["stage"], int(r["stage_order"]))
    return out


def load_deal_features(
    con: Any, as_of: dt.date, *, coverage: SourceCoverage | None = None,
    activity_windows: tuple[int, int] | None = None, only: list[str] | None = None,
) -> list[DealFeatures]:
    """Every deal open at the end of ``as_of``, as it stood then (see the module docstring).

    ``con`` is a DuckDB connection to the warehouse (read-only is enough).

    ``activity_windows``: (meeting days, any-activity days), the widest windows the policy reads
    (:func:`agents.risk.engine.activity_windows`). When given, each deal's ``activities`` hold only
    its meetings of the first window, its activities of the second, its last activity and its last
    decision-maker activity, chosen in SQL, and ``activity_total`` counts them all: every rule sees
    the same values as with all activities loaded (None), for a fraction of the Python objects.

    ``only``: load just these open deals (the set-based engine's candidates); every value, the
    rep's open-deal count included, is the same as in the full load.
    """
    cutoff = _day_end(as_of)
    coverage = coverage or load_source_coverage(con)
    params: dict[str, Any] = {"cutoff": cutoff}
    deals_sql, open_ids_sql = _OPEN_DEALS_SQL, _OPEN_IDS_SQL
    if only is not None:
        params["only"] = list(only)
        deals_sql = deals_sql.replace(
            "\norder by o.opportunity_id", "\nwhere o.opportunity_id in (select unnest($only::VARCHAR[]))\norder by o.opportunity_id")
        open_ids_sql = "select unnest($only::VARCHAR[]) as opportunity_id"
    deals = _rows(con, deals_sql, params)
    stage_orders = _stage_order_map(con)

    activities: dict[str, list[ActivityFact]] = defaultdict(list)
    totals: dict[str, int] = {}
    if coverage.has_activities:
        if activity_windows is None:
            sql, sql_params = _ACTIVITIES_SQL, params
        else:
            since = [dt.datetime.combine(as_of - dt.timedelta(days=days), dt.time()) for days in activity_windows]
            sql, sql_params = _COMPACT_ACTIVITIES_SQL, {**params, "meetings_since": since[0], "any_since": since[1]}
        for r in _rows(con, sql.replace("{open_ids}", open_ids_sql), sql_params):
            activities[r["opportunity_id"]].append(
                ActivityFact(
                    activity_id=str(r["activity_id"]),
                    activity_type=str(r["activity_type"] or "").lower(),
                    occurred_at=r["occurred_at"],
                    decision_maker_contact_ids=tuple(r["dm_contacts"] or ()),
                )
            )
            if activity_windows is not None:
                totals[r["opportunity_id"]] = int(r["n_activities"])
    changes: dict[tuple[str, str], list[FieldChange]] = defaultdict(list)
    if coverage.has_field_history:
        for r in _rows(con, _FIELD_CHANGES_SQL.replace("{open_ids}", open_ids_sql), params):
            changes[(r["opportunity_id"], r["field_name"])].append(
                FieldChange(
                    field_history_id=str(r["field_history_id"]),
                    field_name=r["field_name"],
                    old_value=r["old_value"],
                    new_value=r["new_value"],
                    changed_at=r["changed_at"],
                )
            )

    return [
        deal_from_row(r, as_of, coverage=coverage, stage_orders=stage_orders,
                      activities=activities.get(r["opportunity_id"], ()),
                      changes=changes, activity_total=None if activity_windows is None else totals.get(r["opportunity_id"], 0))
        for r in deals
    ]


def deal_from_row(
    r: Mapping[str, Any], as_of: dt.date, *, coverage: SourceCoverage, stage_orders: Mapping[str, int],
    activities: Any = (), changes: Mapping[tuple[str, str], Any] | None = None, activity_total: int | None = None,
) -> DealFeatures:
    """One deal's features from a row with the columns of the open-deals query (``*_now`` as the deal
    is, ``*_at`` as it was at the cut-off, the stint at the cut-off), its activities (oldest first) and
    its field changes by (deal, field). Shared by :func:`load_deal_features` and the set-based gate
    (:mod:`agents.risk.setbased`, whose query returns the same columns), so both build the same values."""
    changes = changes or {}
    opp = r["opportunity_id"]
    if coverage.has_stage_history and r["stage_history_id"] is not None:
        stage, stage_order = r["stage_at"], r["stage_order_at"]
        if stage_order is None:
            stage_order = stage_orders.get(stage)
        sh_id, entered = r["stage_history_id"], r["stage_entered_at"]
    elif not r["closed_now"]:
        # No history for this deal: its current stage is its stage at as_of only
        # if it is still open; the stage entry time is unknown.
        stage, stage_order, sh_id, entered = r["stage_now"], r["stage_order_now"], None, None
    else:
        stage = stage_order = sh_id = entered = None
    close_date = _as_date(r["close_date_at"]) if r["close_date_source_id"] else r["close_date_now"]
    amount = _as_float(r["amount_at"]) if r["amount_source_id"] else _as_float(r["amount_now"])
    next_step = r["next_step_at"] if r["next_step_source_id"] else r["next_step_now"]
    return DealFeatures(
        as_of=as_of,
        opportunity_id=opp,
        account_id=r["account_id"],
        owner_rep_id=r["owner_rep_id"],
        manager_id=r["manager_id"],
        opportunity_name=r["opportunity_name"],
        segment=r["segment"],
        stage=stage,
        stage_order=int(stage_order) if stage_order is not None else None,
        amount=amount,
        created_at=r["created_at"],
        close_date=_as_date(close_date),
        next_step=next_step,
        source_url=r["source_url"],
        account_tags=_split_tags(r["account_tags"]),
        rep_hired_on=_as_date(r["rep_hired_on"]),
        rep_open_deals=int(r["rep_open_deals"]) if r["rep_open_deals"] is not None else None,
        stage_history_id=sh_id,
        stage_entered_at=entered,
        activities=tuple(activities),
        close_date_changes=tuple(changes.get((opp, "close_date"), ())),
        amount_changes=tuple(changes.get((opp, "amount"), ())),
        close_date_source_id=r["close_date_source_id"],
        amount_source_id=r["amount_source_id"],
        coverage=coverage,
        activity_total=activity_total,
    )


_REPS_SQL = f"""
with open_deals as ({_OPEN_IDS_SQL.replace('select opportunity_id', 'select opportunity_id, owner_rep_id, amount')})
select
    r.rep_id, r.rep_name, r.manager_id, r.segment, r.hired_on, r.is_active,
    list(o.opportunity_id order by o.opportunity_id) filter (where o.opportunity_id is not null) as open_ids,
    coalesce(sum(o.amount), 0) as open_amount
from {MARTS}.dim_reps r
left join open_deals o on o.owner_rep_id = r.rep_id
group by all
order by r.rep_id
"""


def load_rep_features(con: Any, as_of: dt.date, *, deals: list[DealFeatures] | None = None) -> list[RepFeatures]:
    """Every rep with the deals they held open at the end of ``as_of``.

    Pass ``deals`` (from :func:`load_deal_features`) to count open deals and
    amounts at as_of exactly as the deal features see them.
    """
    rows = _rows(con, _REPS_SQL, {"cutoff": _day_end(as_of)})
    by_rep: Mapping[str, list[DealFeatures]] | None = None
    if deals is not None:
        grouped: dict[str, list[DealFeatures]] = defaultdict(list)
        for d in deals:
            if d.owner_rep_id:
                grouped[d.owner_rep_id].append(d)
        by_rep = grouped
    out = []
    for r in rows:
        if by_rep is not None:
            mine = by_rep.get(r["rep_id"], [])
            ids = tuple(sorted(d.opportunity_id for d in mine))
            amount = float(sum(d.amount or 0.0 for d in mine))
        else:
            ids = tuple(r["open_ids"] or ())
            amount = float(r["open_amount"] or 0.0)
        out.append(
            RepFeatures(
                as_of=as_of,
                rep_id=r["rep_id"],
                rep_name=r["rep_name"],
                manager_id=r["manager_id"],
                segment=r["segment"],
                hired_on=_as_date(r["hired_on"]),
                is_active=r["is_active"],
                open_deal_ids=ids,
                open_amount=amount,
            )
        )
    return out
