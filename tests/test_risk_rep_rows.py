"""The rows rep-level flags cite (agents/accountability/evidence.py), read by the risk step: the
cheaper queries (contacts counted for the cited deals only; each rep's latest activities looked for
in a recent window first) give exactly the rows of the straightforward queries they replaced."""

from __future__ import annotations

import datetime as dt
import random

import duckdb
import pytest

from agents.accountability.evidence import load_rep_rows
from agents.accountability.metrics import periods
from agents.warehouse import Warehouse, WarehouseConnection

SCHEMA = """
create schema marts;
create table marts.dim_reps (rep_id varchar, rep_name varchar, manager_id varchar, segment varchar, hired_on date,
                             is_active boolean);
create table marts.fct_opportunities (opportunity_id varchar, owner_rep_id varchar, opportunity_name varchar,
    amount double precision, stage varchar, stage_order integer, close_date date, source_url varchar, created_at timestamp,
    is_closed boolean, closed_at timestamp, is_won boolean);
create table marts.fct_activities (activity_id varchar, opportunity_id varchar, rep_id varchar, activity_type varchar,
                                   occurred_at timestamp);
create table marts.bridge_activity_contacts (activity_id varchar, contact_id varchar, buying_role varchar);
"""

# The queries before (the reference): every deal's engaged contacts, every rep's whole history ranked.
REFERENCE_DEALS_SQL = """
with open_deals as (
    select o.*, (o.created_at <= :cutoff and (not o.is_closed or o.closed_at > :cutoff)) as open_then
    from marts.fct_opportunities o
),
engaged as (
    select a.opportunity_id, count(distinct b.contact_id) as contacts
    from marts.fct_activities a
    join marts.bridge_activity_contacts b on b.activity_id = a.activity_id
    where a.occurred_at <= :cutoff and a.opportunity_id is not null
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
from open_deals o
left join engaged e on e.opportunity_id = o.opportunity_id
where o.owner_rep_id is not null and (
    o.open_then
    or (o.is_won and o.closed_at >= :q_start and o.closed_at <= :cutoff)
    or (o.is_closed and not o.is_won and o.closed_at > :recent_from and o.closed_at <= :cutoff))
"""
REFERENCE_ACTIVITIES_SQL = """
select rep_id, activity_id, activity_type, occurred_at
from (
    select rep_id, activity_id, activity_type, occurred_at,
           row_number() over (partition by rep_id order by occurred_at desc, activity_id) as k
    from marts.fct_activities
    where occurred_at <= :cutoff and rep_id is not null
) as ranked where k <= 3
order by rep_id, k
"""


def _fill(con: WarehouseConnection, seed: int = 5) -> None:
    """Reps busy and quiet (one with two activities ever, one with none, one whose latest ones tie on
    the minute), deals open, won and lost around the date, contacts of every role."""
    rnd = random.Random(seed)
    for statement in SCHEMA.split(";"):
        if statement.strip():
            con.execute(statement)
    reps = [f"rep-{i}" for i in range(8)]
    con.executemany("insert into marts.dim_reps values (:r, :n, :m, :s, :h, :a)",
                    [dict(r=r, n=f"Rep {r}", m="mgr-1", s="smb", h=dt.date(2025, 1, 1), a=i != 7) for i, r in enumerate(reps)])
    start = dt.datetime(2026, 1, 1, 9)
    opps, acts, bridge = [], [], []
    for i in range(160):
        rep = reps[i % 6] if i % 17 else None
        created = start + dt.timedelta(days=rnd.randint(0, 250))
        closed = rnd.random() < 0.4
        closed_at = created + dt.timedelta(days=rnd.randint(5, 200)) if closed else None
        opps.append((f"opp-{i}", rep, f"Deal {i}", rnd.choice([None, 1000.0, 50000.0 * rnd.random()]), "Proposal", 4,
                     (created + dt.timedelta(days=rnd.randint(20, 260))).date(), f"https://crm/opp-{i}", created,
                     closed, closed_at, closed and rnd.random() < 0.5))
        for k in range(rnd.choice([0, 1, 4, 12])):
            act = f"act-{i}-{k}"
            at = created + dt.timedelta(days=rnd.randint(0, 300), hours=rnd.randint(0, 9))
            acts.append((act, f"opp-{i}", rep if rep != reps[5] else reps[5] if k < 2 else None, "call", at))
            for c in range(rnd.randint(0, 3)):
                bridge.append((act, f"con-{i}-{rnd.randint(0, 3)}", rnd.choice(["decision_maker", "champion", None])))
    # rep-4's latest activities tie on the minute; rep-6 logged two activities, long ago
    tie = dt.datetime(2026, 8, 30, 10)
    acts += [(f"tie-{k}", "opp-4", "rep-4", "email", tie) for k in "bca"]
    acts += [("old-1", None, "rep-6", "call", dt.datetime(2025, 3, 1)), ("old-2", None, "rep-6", "call", dt.datetime(2025, 4, 1))]
    for table, rows in (("fct_opportunities", opps), ("fct_activities", acts), ("bridge_activity_contacts", bridge)):
        names = [f"c{i}" for i in range(len(rows[0]))]
        con.executemany(f"insert into marts.{table} values ({', '.join(':' + n for n in names)})",
                        [dict(zip(names, r)) for r in rows])


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request):
    if request.param == "duckdb":
        yield WarehouseConnection.adopt(duckdb.connect())
        return
    url = request.getfixturevalue("postgres_warehouse_url")  # skipped without a server
    with Warehouse("postgres", url=url).connect() as con:
        yield con


@pytest.mark.parametrize("as_of", [dt.date(2026, 5, 2), dt.date(2026, 8, 30), dt.date(2026, 9, 15), dt.date(2027, 3, 1)])
def test_rep_rows_equal_the_straightforward_queries(warehouse, as_of):
    con = warehouse
    _fill(con)
    p = periods(as_of)
    reps, _ = load_rep_rows(con, as_of, p, recent_days=90)
    cutoff = dt.datetime.combine(as_of, dt.time(23, 59, 59))
    params = {"cutoff": cutoff, "cov_start": p.coverage_start, "cov_end": p.coverage_end, "q_start": p.quarter_start,
              "recent_from": cutoff - dt.timedelta(days=90)}
    expected_deals = sorted((dict(d) for d in con.execute(REFERENCE_DEALS_SQL, params).mappings() if d["role"]), key=repr)
    got_deals = sorted((dict(d) for r in reps.values() for role, ds in r.deals.items() for d in ds
                        if not (role == "open" and d["role"] == "closing")), key=repr)
    assert got_deals == expected_deals
    assert any(d["contacts"] > 1 for d in got_deals)  # contacts were counted
    expected_acts: dict[str, list] = {}
    for a in con.execute(REFERENCE_ACTIVITIES_SQL, {"cutoff": cutoff}).mappings():
        expected_acts.setdefault(a["rep_id"], []).append(dict(a))
    assert {r: [dict(a) for a in rep.recent_activities] for r, rep in reps.items() if rep.recent_activities} == expected_acts
    assert len(expected_acts.get("rep-6", [])) == 2 and expected_acts  # a rep with fewer than three, long ago

