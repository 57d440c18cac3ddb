"""The CRM rows behind a rep's numbers, read set-based from the marts as of a date: the rows a
rep-level trigger or a scorecard cites (the rep, the open deals closing in the period, the deals
won this quarter, the recent losses, the single-threaded deals, the latest activities)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from agents.accountability.metrics import Periods

_REPS_SQL = """
select rep_id, rep_name, manager_id, segment, hired_on, coalesce(is_active, true) as is_active
from marts.dim_reps
"""

# One row per deal a trigger may cite, with its role: open in the coverage period, won this quarter,
# lost in the recent window, single-threaded (open, at or past from_stage, <= max contacts engaged).
_DEALS_SQL = """
with open_deals as (
    select o.*, (o.created_at <= :cutoff and (not o.is_closed or o.closed_at > :cutoff)) as open_then
    from marts.fct_opportunities o
),
cited as (
    select o.* from open_deals o
    where o.owner_rep_id is not null and (
        o.open_then
        or (o.is_won and o.closed_at >= :q_start and o.closed_at <= :cutoff)
        or (o.is_closed and not o.is_won and o.closed_at > :recent_from and o.closed_at <= :cutoff))
),
engaged as (  -- contacts engaged on the deals cited only (not every deal's activities)
    select a.opportunity_id, count(distinct b.contact_id) as contacts
    from marts.fct_activities a
    join marts.bridge_activity_contacts b on b.activity_id = a.activity_id
    where a.occurred_at <= :cutoff and a.opportunity_id in (select opportunity_id from cited)
    group by a.opportunity_id
)
select o.owner_rep_id as rep_id, o.opportunity_id, o.opportunity_name, o.amount, o.stage, o.stage_order,
       o.close_date, o.source_url, coalesce(e.contacts, 0) as contacts,
       case
           when o.open_then and o.close_date >= :cov_start and o.close_date < :cov_end then 'closing'
           when o.is_won and o.closed_at >= :q_start and o.closed_at <= :cutoff then 'won'
           when o.is_closed and not o.is_won and o.closed_at > :recent_from and o.closed_at <= :cutoff then 'lost'
           when o.open_then then 'open'
       end as role
from cited o
left join engaged e on e.opportunity_id = o.opportunity_id
"""

# Each rep's three latest activities. A rep with three or more since :recent_from has them all among
# those, so only reps without are ranked over their whole history (the window sorts far fewer rows).
_ACTIVITIES_SQL = """
with busy as (
    select rep_id from marts.fct_activities
    where occurred_at <= :cutoff and occurred_at > :recent_from and rep_id is not null
    group by rep_id having count(*) >= 3
),
pool as (
    select rep_id, activity_id, activity_type, occurred_at from marts.fct_activities
    where occurred_at <= :cutoff and occurred_at > :recent_from and rep_id in (select rep_id from busy)
    union all
    select rep_id, activity_id, activity_type, occurred_at from marts.fct_activities
    where occurred_at <= :cutoff and rep_id is not null and rep_id not in (select rep_id from busy)
)
select rep_id, activity_id, activity_type, occurred_at
from (
    select rep_id, activity_id, activity_type, occurred_at,
           row_number() over (partition by rep_id order by occurred_at desc, activity_id) as k
    from pool
) as ranked where k <= 3
order by rep_id, k
"""

_LATEST_ACTIVITY_DAYS = 7  # where the three latest activities are looked for first (any window gives the same rows)

_STAGES_SQL = "select distinct stage, stage_order from marts.fct_opportunities where stage_order is not null"


@dataclass
class RepRows:
    rep_id: str
    rep_name: str | None = None
    manager_id: str | None = None
    segment: str | None = None
    hired_on: dt.date | None = None
    is_active: bool = True
    deals: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    recent_activities: list[dict[str, Any]] = field(default_factory=list)


def load_rep_rows(con: Any, as_of: dt.date, p: Periods, *, recent_days: int = 90) -> tuple[dict[str, RepRows], dict[str, int]]:
    """Every rep with the deals and activities a rep-level flag may cite, and the stage orders.
    ``con``: a connection from agents/warehouse.py (DuckDB or PostgreSQL)."""
    cutoff = dt.datetime.combine(as_of, dt.time(23, 59, 59))
    reps: dict[str, RepRows] = {}
    for r in con.execute(_REPS_SQL).mappings():
        reps[r["rep_id"]] = RepRows(
            rep_id=r["rep_id"], rep_name=r["rep_name"], manager_id=r["manager_id"], segment=r["segment"],
            hired_on=r["hired_on"], is_active=bool(r["is_active"]))
    params = {"cutoff": cutoff, "cov_start": p.coverage_start, "cov_end": p.coverage_end, "q_start": p.quarter_start,
              "recent_from": cutoff - dt.timedelta(days=recent_days)}
    for d in con.execute(_DEALS_SQL, params).mappings():
        rep = reps.get(d["rep_id"])
        if rep is not None and d["role"]:
            rep.deals[d["role"]].append(d)
            if d["role"] == "closing":  # an open deal closing in the period is also open
                rep.deals["open"].append(d)
    latest = {"cutoff": cutoff, "recent_from": cutoff - dt.timedelta(days=_LATEST_ACTIVITY_DAYS)}
    for a in con.execute(_ACTIVITIES_SQL, latest).mappings():
        if a["rep_id"] in reps:
            reps[a["rep_id"]].recent_activities.append(a)
    for rep in reps.values():
        for role in rep.deals:
            rep.deals[role].sort(key=lambda d: (-(d["amount"] or 0), d["opportunity_id"]))
    stages = {s: int(o) for s, o in con.execute(_STAGES_SQL).fetchall()}
    return reps, stages
