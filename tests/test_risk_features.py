"""Point-in-time features on a tiny in-memory marts schema: nothing after as_of may be visible."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from agents.risk.engine import evaluate
from agents.risk.features import load_deal_features, load_rep_features, load_source_coverage
from agents.risk.policy import load_policy
from tests.test_risk_fixtures import make_baselines

SCHEMA = """
create schema marts;
create table marts.fct_opportunities (
    opportunity_id varchar, account_id varchar, owner_rep_id varchar, manager_id varchar, opportunity_name varchar,
    segment varchar, stage varchar, stage_order bigint, amount double, created_at timestamp, close_date date,
    is_closed boolean, is_won boolean, closed_at timestamp, next_step varchar, source_url varchar);
create table marts.fct_stage_history (
    stage_history_id varchar, opportunity_id varchar, stage varchar, stage_order bigint, entered_at timestamp);
create table marts.fct_field_history (
    field_history_id varchar, opportunity_id varchar, field_name varchar, old_value varchar, new_value varchar,
    changed_at timestamp);
create table marts.fct_activities (activity_id varchar, opportunity_id varchar, activity_type varchar, occurred_at timestamp);
create table marts.bridge_activity_contacts (activity_id varchar, contact_id varchar, buying_role varchar);
create table marts.dim_accounts (account_id varchar, tags varchar);
create table marts.dim_reps (
    rep_id varchar, rep_name varchar, manager_id varchar, segment varchar, hired_on date, is_active boolean);
"""

DATA = """
insert into marts.dim_accounts values ('acc-1', 'Strategic;Renewal'), ('acc-2', null);
insert into marts.dim_reps values ('rep-1', 'Ada', 'mgr-1', 'smb', '2026-05-01', true);
insert into marts.fct_opportunities values
  ('opp-1', 'acc-1', 'rep-1', 'mgr-1', 'One', 'smb', 'Proposal', 4, 80000, '2026-03-01 09:00', '2026-09-30', false, false, null, 'demo', 'u1'),
  ('opp-2', 'acc-2', 'rep-1', 'mgr-1', 'Two', 'smb', 'Closed Lost', 7, 10000, '2026-02-01 09:00', '2026-08-15', true, false, '2026-08-15 12:00', null, 'u2'),
  ('opp-3', 'acc-2', 'rep-1', 'mgr-1', 'Three', 'smb', 'Closed Won', 6, 5000, '2026-01-01 09:00', '2026-06-01', true, true, '2026-06-01 12:00', null, 'u3'),
  ('opp-4', 'acc-2', 'rep-1', 'mgr-1', 'Four', 'smb', 'Prospecting', 1, 7000, '2026-07-10 09:00', '2026-12-01', false, false, null, null, 'u4');
insert into marts.fct_stage_history values
  ('sh-1', 'opp-1', 'Prospecting', 1, '2026-03-01 09:00'),
  ('sh-2', 'opp-1', 'Discovery', 3, '2026-05-01 09:00'),
  ('sh-3', 'opp-1', 'Proposal', 4, '2026-07-15 09:00'),
  ('sh-4', 'opp-2', 'Qualification', 2, '2026-02-01 09:00'),
  ('sh-5', 'opp-2', 'Closed Lost', 7, '2026-08-15 12:00'),
  ('sh-6', 'opp-3', 'Prospecting', 1, '2026-01-01 09:00'),
  ('sh-7', 'opp-3', 'Closed Won', 6, '2026-06-01 12:00'),
  ('sh-8', 'opp-4', 'Prospecting', 1, '2026-07-10 09:00');
insert into marts.fct_field_history values
  ('fh-1', 'opp-1', 'close_date', '2026-05-31', '2026-06-20', '2026-05-20 10:00'),
  ('fh-2', 'opp-1', 'close_date', '2026-06-20', '2026-07-31', '2026-06-15 10:00'),
  ('fh-3', 'opp-1', 'close_date', '2026-07-31', '2026-09-30', '2026-07-20 10:00'),
  ('fh-4', 'opp-1', 'amount', '50000', '80000', '2026-07-10 10:00');
insert into marts.fct_activities values
  ('act-1', 'opp-1', 'meeting', '2026-06-20 10:00'),
  ('act-2', 'opp-1', 'meeting', '2026-07-05 10:00'),
  ('act-3', 'opp-2', 'email', '2026-06-30 23:30'),
  ('act-4', 'opp-2', 'call', '2026-07-01 00:30');
insert into marts.bridge_activity_contacts values
  ('act-1', 'con-1', 'champion'), ('act-2', 'con-2', 'decision_maker'), ('act-3', 'con-3', 'influencer');
"""


@pytest.fixture()
def con():
    c = duckdb.connect(":memory:")
    c.execute(SCHEMA)
    c.execute(DATA)
    yield c
    c.close()


def _by_id(deals):
    return {d.opportunity_id: d for d in deals}


def test_open_deals_at_a_past_date(con):
    deals = _by_id(load_deal_features(con, dt.date(2026, 6, 30)))
    # opp-3 closed (won) before; opp-4 not created yet; opp-2 closed only later, so it was open.
    assert set(deals) == {"opp-1", "opp-2"}
    assert deals["opp-2"].stage == "Qualification" and deals["opp-2"].stage_history_id == "sh-4"


def test_changes_after_as_of_are_invisible(con):
    d = _by_id(load_deal_features(con, dt.date(2026, 6, 30)))["opp-1"]
    # Stage from history: Discovery (Proposal was entered on 2026-07-15).
    assert (d.stage, d.stage_order, d.stage_history_id) == ("Discovery", 3, "sh-2")
    assert d.days_in_stage == 60
    # Close date and amount at as_of come from the old_value of the first later change.
    assert d.close_date == dt.date(2026, 7, 31) and d.close_date_source_id == "fh-3"
    assert d.amount == 50000 and d.amount_source_id == "fh-4"
    assert [c.field_history_id for c in d.close_date_changes] == ["fh-1", "fh-2"]
    assert [c.field_history_id for c in d.close_date_pushes()] == ["fh-1", "fh-2"]
    assert d.amount_changes == ()
    # Activities by the end of as_of only; the decision maker was met later.
    assert [a.activity_id for a in d.activities] == ["act-1"]
    assert d.days_since_activity == 10
    assert d.decision_maker_activities == ()
    assert d.account_tags == ("Strategic", "Renewal") and d.is_strategic
    assert d.rep_tenure_days == 60 and d.rep_open_deals == 2
    # An activity late on the as-of day counts; one just after midnight does not.
    assert [a.activity_id for a in _by_id(load_deal_features(con, dt.date(2026, 6, 30)))["opp-2"].activities] == ["act-3"]


def test_the_same_deal_later_sees_the_later_changes(con):
    d = _by_id(load_deal_features(con, dt.date(2026, 7, 31)))["opp-1"]
    assert (d.stage, d.stage_history_id) == ("Proposal", "sh-3")
    assert d.close_date == dt.date(2026, 9, 30) and d.close_date_source_id is None
    assert d.amount == 80000
    assert [c.field_history_id for c in d.amount_changes] == ["fh-4"]
    assert [a.activity_id for a in d.decision_maker_activities] == ["act-2"]
    assert d.decision_maker_activities[0].decision_maker_contact_ids == ("con-2",)


def test_rep_features_count_open_deals_at_as_of(con):
    reps = load_rep_features(con, dt.date(2026, 6, 30))
    assert reps[0].open_deal_ids == ("opp-1", "opp-2") and reps[0].open_amount == 80000 + 10000  # current amounts
    deals = load_deal_features(con, dt.date(2026, 6, 30))
    reps = load_rep_features(con, dt.date(2026, 6, 30), deals=deals)
    assert reps[0].open_amount == 50000 + 10000  # amounts as of the date


def test_flags_at_a_past_date_use_only_past_data(con):
    policy = load_policy()
    deals = load_deal_features(con, dt.date(2026, 6, 30))
    run = evaluate(deals, [], make_baselines(), policy, dt.date(2026, 6, 30))
    fired = run.flags_by_rule()
    # Two pushes by then: close_date_slipped cites exactly the pushes known at as_of.
    assert "opp-1" in fired["close_date_slipped"]
    flag = next(f for f in run.flags + [s.flag for s in run.suppressed] if f.opportunity_id == "opp-1")
    cited = {r.record_id for r in flag.crm_records}
    assert {"fh-1", "fh-2"} <= cited
    assert not {"fh-3", "fh-4", "act-2"} & cited  # rows from after as_of are never evidence
    assert "amount_swing" not in fired  # the amount changed only on 2026-07-10


def test_empty_tables_mean_no_coverage(con):
    assert load_source_coverage(con).has_activities
    con.execute("delete from marts.fct_activities")
    con.execute("delete from marts.bridge_activity_contacts")
    con.execute("delete from marts.fct_stage_history")
    cov = load_source_coverage(con)
    assert not cov.has_activities and not cov.has_stage_history and not cov.has_buying_roles and cov.has_field_history
    deals = _by_id(load_deal_features(con, dt.date(2026, 6, 30)))
    # Without history, a deal still open today keeps its current stage (entry time unknown);
    # a deal that has closed since has no known stage at as_of.
    assert deals["opp-1"].stage == "Proposal" and deals["opp-1"].stage_entered_at is None
    assert deals["opp-2"].stage is None
    run = evaluate(list(deals.values()), [], make_baselines(), load_policy(), dt.date(2026, 6, 30))
    na = {n.rule_id for n in run.not_applicable}
    assert {"stalled_in_stage", "no_recent_activity", "meeting_cadence_drop", "no_decision_maker"} <= na
    assert not {"stalled_in_stage", "no_recent_activity", "meeting_cadence_drop"} & set(run.flags_by_rule())
