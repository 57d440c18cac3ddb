"""Evidence packets for flagged deals, read from the warehouse marts (point in time).

Lives outside agents/drafting on purpose: the drafting code reads no warehouse and imports no I/O beyond its model client."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from agents.drafting.models import EvidencePacket, build_packet
from agents.risk.models import RiskFlag

_DEAL_FACTS_SQL = """
with last_activity as (
    select opportunity_id, max(occurred_at) as last_at
    from marts.fct_activities
    where occurred_at < cast(? as date) + interval 1 day
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
    date_diff('day', cast(o.current_stage_entered_at as date), cast(? as date)) as days_in_stage,
    date_diff('day', cast(la.last_at as date), cast(? as date)) as days_since_last_activity,
    oc.open_deals as open_deal_count,
    o.opportunity_name, a.account_name, o.next_step
from marts.fct_opportunities o
left join marts.dim_reps r on r.rep_id = o.owner_rep_id
left join marts.dim_accounts a on a.account_id = o.account_id
left join last_activity la on la.opportunity_id = o.opportunity_id
left join open_counts oc on oc.owner_rep_id = o.owner_rep_id
where o.opportunity_id in (select unnest(?::varchar[]))
"""

_REP_FACTS_SQL = """
select r.rep_id as owner_rep_id, r.rep_name as owner_rep_name, r.manager_id, r.segment,
       (select count(*) from marts.fct_opportunities o where o.owner_rep_id = r.rep_id and not o.is_closed) as open_deal_count
from marts.dim_reps r where r.rep_id in (select unnest(?::varchar[]))
"""


def _rows(cur) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def load_packets(warehouse: Path, flags: Sequence[RiskFlag], as_of: dt.date) -> list[EvidencePacket]:
    """One evidence packet per primary flag: the flag, its cited rows, and the deal's facts from the marts."""
    primaries = [f for f in flags if f.is_primary]
    opp_ids = sorted({f.opportunity_id for f in primaries if f.opportunity_id})
    rep_ids = sorted({f.rep_id for f in primaries if f.subject == "rep" and f.rep_id})
    with duckdb.connect(str(warehouse), read_only=True) as con:
        deals = {r["opportunity_id"]: r for r in _rows(con.execute(_DEAL_FACTS_SQL, [as_of, as_of, as_of, opp_ids]))}
        reps = {r["owner_rep_id"]: r for r in _rows(con.execute(_REP_FACTS_SQL, [rep_ids]))} if rep_ids else {}
    packets = []
    for flag in primaries:
        facts = deals.get(flag.opportunity_id, {}) if flag.subject == "opportunity" else reps.get(flag.rep_id, {})
        facts = {k: v for k, v in facts.items() if v is not None}
        packets.append(build_packet(flag, facts, [], as_of))
    return packets
