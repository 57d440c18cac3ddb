"""Evidence packets for flagged deals, read from the warehouse marts (point in time).

Lives outside agents/drafting on purpose: the drafting code reads no warehouse and imports no I/O beyond its model client."""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agents.drafting.models import EvidencePacket, RemedyEvidence, build_packet
from agents.risk.models import RiskFlag
from agents.warehouse import Warehouse

# Portable SQL (DuckDB and PostgreSQL, agents/warehouse.py): :name parameters, date - date = days,
# interval '1 day', = any(:ids) for a list, grouping by column position, a window in a subquery.
_DEAL_FACTS_SQL = """
with last_activity as (
    select opportunity_id, max(occurred_at) as last_at
    from marts.fct_activities
    where occurred_at < cast(:as_of as date) + interval '1 day'
    group by opportunity_id
),
open_counts as (
    select owner_rep_id, count(*) as open_deals
    from marts.fct_opportunities
    where not is_closed
    group by owner_rep_id
)
select
    o.opportunity_id, o.account_id, o.stage, o.stage_order, o.amount,
    cast(o.created_at as date) as created_at, o.close_date, o.owner_rep_id, r.rep_name as owner_rep_name,
    o.manager_id, o.segment, o.source_url,
    cast(:as_of as date) - cast(o.current_stage_entered_at as date) as days_in_stage,
    cast(:as_of as date) - cast(la.last_at as date) as days_since_last_activity,
    oc.open_deals as open_deal_count,
    o.opportunity_name, a.account_name, o.next_step
from marts.fct_opportunities o
left join marts.dim_reps r on r.rep_id = o.owner_rep_id
left join marts.dim_accounts a on a.account_id = o.account_id
left join last_activity la on la.opportunity_id = o.opportunity_id
left join open_counts oc on oc.owner_rep_id = o.owner_rep_id
where o.opportunity_id = any(:ids)
"""

_REP_FACTS_SQL = """
select r.rep_id as owner_rep_id, r.rep_name as owner_rep_name, r.manager_id, r.segment,
       (select count(*) from marts.fct_opportunities o where o.owner_rep_id = r.rep_id and not o.is_closed) as open_deal_count
from marts.dim_reps r where r.rep_id = any(:ids)
"""


_CONTACTS_SQL = """
with meetings as (
    -- each contact's last meeting on each flagged deal, from the meetings alone (not every activity
    -- of every contact of the account)
    select b.contact_id, a.opportunity_id, max(cast(a.occurred_at as date)) as last_met_on
    from marts.fct_activities a
    join marts.bridge_activity_contacts b on b.activity_id = a.activity_id
    where a.activity_type = 'meeting' and a.occurred_at < cast(:as_of as date) + interval '1 day'
      and a.opportunity_id = any(:ids)
    group by 1, 2
)
select o.opportunity_id, c.contact_id, c.contact_name as name, c.title, c.buying_role, max(m.last_met_on) as last_met_on
from marts.fct_opportunities o
join marts.dim_contacts c on c.account_id = o.account_id
left join meetings m on m.contact_id = c.contact_id and m.opportunity_id = o.opportunity_id
where o.opportunity_id = any(:ids)
group by 1, 2, 3, 4, 5
"""

# Won deals of the last four quarters: the pool comparables are picked from (per segment).
_WON_POOL_SQL = """
select o.opportunity_id, o.opportunity_name as name, o.amount, cast(o.closed_at as date) as closed_on, o.segment,
       o.source_url, o.cycle_days, r.days_dm_meeting_to_close, r.close_date_pushes, r.max_amount_swing
from marts.fct_opportunities o
left join marts.fct_deal_remedies r on r.opportunity_id = o.opportunity_id
where o.is_won and o.closed_at <= cast(:as_of as date) + interval '1 day'
  and o.closed_at > cast(:as_of as date) - interval '365 day'
"""

_STAGE_ENTRY_SQL = """
select s.opportunity_id, s.stage, min(cast(s.entered_at as date)) as entered_on
from marts.fct_stage_history s
where s.opportunity_id = any(:ids)
group by 1, 2
"""

_WEAKEST_SQL = """
with last_activity as (
    select opportunity_id, max(occurred_at) as last_at from marts.fct_activities
    where occurred_at < cast(:as_of as date) + interval '1 day' group by opportunity_id
),
ranked as (
    select o.owner_rep_id, o.opportunity_id, o.opportunity_name as name, o.amount, o.source_url,
           cast(:as_of as date) - cast(coalesce(la.last_at, o.created_at) as date) as idle_days
    from marts.fct_opportunities o
    left join last_activity la on la.opportunity_id = o.opportunity_id
    where not o.is_closed and o.owner_rep_id = any(:ids)
)
select owner_rep_id, opportunity_id, name, amount, source_url, idle_days from (
    select ranked.*, row_number() over (
        partition by owner_rep_id order by idle_days desc, amount asc nulls first, opportunity_id) as rank_in_rep
    from ranked
) w where rank_in_rep <= 5
order by owner_rep_id, rank_in_rep
"""

COMPARABLES_PER_ITEM = 3


def _has(con, schema: str, table: str) -> bool:
    return con.has_table(schema, table)


def pick_comparables(flag: RiskFlag, pool: Sequence[dict[str, Any]], entries: dict[tuple[str, str], Any],
                     k: int = COMPARABLES_PER_ITEM, *, _sorted: bool = True) -> list[dict[str, Any]]:
    """Won deals of the flag's segment that did what the rule's remedy asks, closest in amount first.

    ``days_to_close``: from the remedy to the close (the decision-maker meeting; entering the deal's
    stage for the stage rules), else the whole cycle.
    """
    out = []
    for d in pool:
        if d["segment"] != flag.segment:
            continue
        days = None
        if flag.rule_id in ("no_decision_maker", "stale_cycle"):
            days = d["days_dm_meeting_to_close"]
            if days is None:
                continue
        elif flag.rule_id == "close_date_slipped":
            if (d["close_date_pushes"] or 0) < 2:
                continue
            days = d["cycle_days"]
        elif flag.rule_id == "amount_swing":
            if (d["max_amount_swing"] or 0) < 0.2:
                continue
            days = d["cycle_days"]
        elif flag.stage:
            entered = entries.get((d["opportunity_id"], flag.stage))
            if entered is None or d["closed_on"] is None:
                continue
            days = (d["closed_on"] - entered).days
        else:
            days = d["cycle_days"]
        out.append({**d, "days_to_close": None if days is None else int(days)})
    if not _sorted:  # ComparablePool's candidates: every qualifying deal, unordered
        return out
    target = flag.amount or 0.0
    out.sort(key=lambda d: (abs((d["amount"] or 0.0) - target), d["opportunity_id"]))
    return [
        {k2: c[k2] for k2 in ("opportunity_id", "name", "amount", "closed_on", "days_to_close", "source_url")}
        for c in out[:k]
    ]


def _remedy_kind(flag: RiskFlag) -> tuple:
    """Which won deals qualify as comparables for ``flag`` (and how their days to close are counted):
    the candidates depend only on this and the flag's segment (see pick_comparables)."""
    if flag.rule_id in ("no_decision_maker", "stale_cycle"):
        return ("dm_meeting",)
    if flag.rule_id in ("close_date_slipped", "amount_swing"):
        return (flag.rule_id,)
    if flag.stage:
        return ("stage", flag.stage)
    return ("cycle",)


class ComparablePool:
    """pick_comparables for many flags at once: the won-deal pool is filtered once per (segment, remedy
    kind) and sorted by amount, so each flag costs a binary search and k steps, not a pass over the
    whole pool (which grew with the CRM: flags x won deals). Same picks, same order as pick_comparables."""

    def __init__(self, pool: Sequence[dict[str, Any]], entries: dict[tuple[str, str], Any], k: int = COMPARABLES_PER_ITEM):
        self.pool, self.entries, self.k = pool, entries, k
        self._groups: dict[tuple, tuple[list[float], list[dict[str, Any]]]] = {}

    def _group(self, flag: RiskFlag) -> tuple[list[float], list[dict[str, Any]]]:
        key = (flag.segment, *_remedy_kind(flag))
        group = self._groups.get(key)
        if group is None:
            # the candidates pick_comparables would keep for this flag, with their days to close, by amount
            cands = pick_comparables(flag, self.pool, self.entries, k=len(self.pool), _sorted=False)
            cands.sort(key=lambda c: (c["amount"] or 0.0, c["opportunity_id"]))
            group = self._groups[key] = ([c["amount"] or 0.0 for c in cands], cands)
        return group

    def pick(self, flag: RiskFlag) -> list[dict[str, Any]]:
        amounts, cands = self._group(flag)
        if not cands:
            return []
        target = flag.amount or 0.0
        lo = hi = bisect.bisect_left(amounts, target)  # cands[lo-1] < target <= cands[hi]
        taken: list[int] = []
        # walk outwards, nearest amount first, until k are taken; then every further one as near as the k-th
        # (ties in distance are broken by opportunity id below, so they must all be in)
        limit = None
        while lo > 0 or hi < len(cands):
            if hi >= len(cands) or (lo > 0 and abs(amounts[lo - 1] - target) <= abs(amounts[hi] - target)):
                lo -= 1
                idx = lo
            else:
                idx = hi
                hi += 1
            dist = abs(amounts[idx] - target)
            if limit is not None and dist > limit:
                break
            taken.append(idx)
            if limit is None and len(taken) >= self.k:
                limit = dist
        taken.sort(key=lambda i: (abs(amounts[i] - target), cands[i]["opportunity_id"]))
        return [
            {k2: cands[i][k2] for k2 in ("opportunity_id", "name", "amount", "closed_on", "days_to_close", "source_url")}
            for i in taken[: self.k]
        ]


def _rows(result) -> list[dict[str, Any]]:
    return result.mappings()


def load_packets(
    warehouse: Warehouse | Path, flags: Sequence[RiskFlag], as_of: dt.date, remedies: Mapping[str, RemedyEvidence] | None = None
) -> list[EvidencePacket]:
    """One evidence packet per primary flag: the flag, its cited rows, the deal's facts from the marts, the
    people on the account (who was met, who was not), comparable won deals and the rule's remedy curve
    (``remedies``: flag id -> evidence from agents/remedies.py)."""
    primaries = [f for f in flags if f.is_primary]
    opp_ids = sorted({f.opportunity_id for f in primaries if f.opportunity_id})
    rep_ids = sorted({f.rep_id for f in primaries if f.subject == "rep" and f.rep_id})
    with Warehouse.coerce(warehouse).connect(read_only=True) as con:
        deals = {r["opportunity_id"]: r for r in _rows(con.execute(_DEAL_FACTS_SQL, {"as_of": as_of, "ids": opp_ids}))}
        reps = {r["owner_rep_id"]: r for r in _rows(con.execute(_REP_FACTS_SQL, {"ids": rep_ids}))} if rep_ids else {}
        contacts: dict[str, list[dict[str, Any]]] = {}
        for r in _rows(con.execute(_CONTACTS_SQL, {"as_of": as_of, "ids": opp_ids})):
            contacts.setdefault(r.pop("opportunity_id"), []).append(r)
        pool = _rows(con.execute(_WON_POOL_SQL, {"as_of": as_of})) if _has(con, "marts", "fct_deal_remedies") else []
        entries = {
            (r["opportunity_id"], r["stage"]): r["entered_on"]
            for r in _rows(con.execute(_STAGE_ENTRY_SQL, {"ids": [d["opportunity_id"] for d in pool]}))
        } if pool else {}
        weakest: dict[str, list[dict[str, Any]]] = {}
        if rep_ids:
            for r in _rows(con.execute(_WEAKEST_SQL, {"as_of": as_of, "ids": rep_ids})):
                weakest.setdefault(r.pop("owner_rep_id"), []).append(
                    {"opportunity_id": r["opportunity_id"], "name": r["name"], "amount": r["amount"], "source_url": r["source_url"]}
                )
    role_order = {"decision_maker": 0, "economic_buyer": 1, "champion": 2}
    comparables = ComparablePool(pool, entries)
    packets = []
    for flag in primaries:
        facts = deals.get(flag.opportunity_id, {}) if flag.subject == "opportunity" else reps.get(flag.rep_id, {})
        facts = {k: v for k, v in facts.items() if v is not None}
        people = sorted(contacts.get(flag.opportunity_id, []), key=lambda c: (role_order.get(c["buying_role"], 9), c["contact_id"]))[:6]
        packets.append(
            build_packet(
                flag, facts, [], as_of,
                contacts=people,
                comparables=comparables.pick(flag) if flag.subject == "opportunity" else [],
                remedy=(remedies or {}).get(flag.flag_id),
                weakest_deals=weakest.get(flag.rep_id, []) if flag.subject == "rep" else [],
            )
        )
    return packets
