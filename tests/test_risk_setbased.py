"""The risk engine's set-based path (activities chosen and counted in SQL, each rule's settings
resolved once per segment x stage x playbooks) raises exactly the flags of the row-by-row path
(every activity of every open deal as a Python object)."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest
import yaml

from agents.risk.engine import activity_windows, assess, evaluate
from agents.risk.features import load_deal_features, load_rep_features
from agents.risk.policy import DEFAULT_POLICY_PATH, RiskPolicy, load_policy
from sales_supervisor.settings import DEMO_AS_OF
from tests.test_risk_features import DATA, SCHEMA
from tests.test_risk_fixtures import make_baselines


def _row_by_row(con, as_of, baselines, policy):
    deals = load_deal_features(con, as_of)  # every activity, as before
    return evaluate(deals, load_rep_features(con, as_of, deals=deals), baselines, policy, as_of)


def test_activity_windows_cover_every_override_and_playbook():
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    base_meetings, base_any = activity_windows(RiskPolicy.from_dict(data))
    assert base_meetings >= 84 + 1 and base_meetings >= 28 + 7 * 8 + 1 and base_any >= 14 + 1
    data["playbooks"]["quarter_end"]["overrides"]["meeting_cadence_drop"] = {"params": {"prior_weeks": 20}}
    data["rules"]["meeting_cadence_drop"]["overrides"] = [{"segment": "smb", "params": {"active_within_days": 40}}]
    meetings, any_days = activity_windows(RiskPolicy.from_dict(data))
    assert meetings >= 28 + 7 * 20 + 1 and any_days >= 40 + 1


def test_compact_features_give_the_same_values_on_a_small_warehouse():
    con = duckdb.connect(":memory:")
    con.execute(SCHEMA)
    con.execute(DATA)
    # an old, non-meeting activity and an old decision-maker call, outside every window
    con.execute("""insert into marts.fct_activities values
        ('act-5', 'opp-1', 'call', '2026-03-05 10:00'), ('act-6', 'opp-4', 'email', '2026-07-11 10:00'),
        ('act-7', 'opp-4', 'call', '2026-07-10 12:00'), ('act-8', 'opp-4', 'email', '2026-12-20 10:00')""")
    con.execute("""insert into marts.bridge_activity_contacts values
        ('act-5', 'con-2', 'decision_maker'), ('act-7', 'con-2', 'decision_maker')""")
    policy = load_policy()
    dropped = 0
    for as_of in (dt.date(2026, 7, 10), dt.date(2026, 9, 1), dt.date(2026, 12, 31), dt.date(2027, 3, 1)):
        full = {d.opportunity_id: d for d in load_deal_features(con, as_of)}
        compact = {d.opportunity_id: d for d in load_deal_features(con, as_of, activity_windows=activity_windows(policy))}
        assert full.keys() == compact.keys()
        for opp, d in full.items():
            c = compact[opp]
            assert c.scalars() == d.scalars(), (as_of, opp)
            assert c.last_activity == d.last_activity
            assert bool(c.decision_maker_activities) == bool(d.decision_maker_activities)
            assert c.activity_count == len(d.activities)
            assert len(c.activities) <= len(d.activities)
            dropped += len(d.activities) - len(c.activities)
        baselines = make_baselines()
        deals = list(compact.values())
        assert evaluate(deals, load_rep_features(con, as_of, deals=deals), baselines, policy, as_of) == _row_by_row(
            con, as_of, baselines, policy)
    assert dropped > 0  # old activities were left out, and nothing changed


@pytest.fixture(scope="module")
def demo_layer(built_warehouse):
    from agents.semantic_layer import SemanticLayer
    from sales_supervisor.settings import DBT_PROJECT_DIR

    layer = SemanticLayer(
        project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target_path=built_warehouse.dbt_target,
        warehouse=built_warehouse.warehouse,
    )
    yield layer
    layer.close()


@pytest.mark.slow
@pytest.mark.parametrize("days_back", [0, 45])
def test_flag_sets_are_identical_to_the_row_by_row_engine_on_the_demo_crm(built_warehouse, demo_layer, days_back):
    policy = load_policy()
    as_of = DEMO_AS_OF - dt.timedelta(days=days_back)
    run, baselines = assess(built_warehouse.warehouse, demo_layer, policy, as_of)  # the set-based path
    with duckdb.connect(str(built_warehouse.warehouse), read_only=True) as con:
        before = _row_by_row(con, as_of, baselines, policy)
    assert run.flags and run.suppressed
    assert [f.model_dump() for f in run.flags] == [f.model_dump() for f in before.flags]
    assert run.suppressed == before.suppressed and run.not_applicable == before.not_applicable
    assert run == before
