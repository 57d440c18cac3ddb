"""Flag quality: scoring against ground truth (fast), then planted precision/recall and a short backtest on
the demo warehouse (slow: the session's full pipeline run)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from agents.risk.engine import Snooze, assess, evaluate
from agents.risk.policy import load_policy
from agents.risk.quality import backtest, planted_precision_recall
from sales_supervisor.settings import DEMO_AS_OF
from tests.test_risk_fixtures import AS_OF, deal, make_baselines


def test_precision_recall_counts_supporting_and_fatigue_held_flags(tmp_path):
    gt = tmp_path / "ground_truth.csv"
    gt.write_text(
        "entity_type,entity_id,risk,planted,detail\n"
        "opportunity,opp-1,stalled_in_stage,true,x\n"
        "opportunity,opp-2,past_due,true,x\n"
        "opportunity,opp-3,stalled_in_stage,true,x\n"
        "opportunity,opp-4,amount_swing,false,x\n"
    )
    deals = [
        deal("opp-1", days_in_stage=40, close_in=-3),  # stalled (primary) + past due (supporting)
        deal("opp-2", close_in=-3),
        deal("opp-5", days_in_stage=40),  # a false positive
    ] + [deal(f"opp-big-{i}", days_in_stage=90, amount=1e6) for i in range(5)]  # push opp-1/opp-5 past the rep limit
    run = evaluate(deals, [], make_baselines(), load_policy(), AS_OF)
    assert {s.flag.opportunity_id for s in run.suppressed if s.kind == "fatigue"} >= {"opp-1"}
    scores = {q.rule_id: q for q in planted_precision_recall(run, gt)}
    stalled = scores["stalled_in_stage"]
    assert (stalled.truth, stalled.flagged, stalled.true_positives) == (2, 7, 1)
    assert stalled.recall == 0.5 and stalled.precision == pytest.approx(1 / 7)
    slipped = scores["close_date_slipped"]  # past_due maps to close_date_slipped; opp-1's is a supporting signal
    assert (slipped.truth, slipped.true_positives, slipped.precision) == (1, 1, 0.5)
    assert scores["amount_swing"].recall == 0.0 and scores["amount_swing"].planted == 0
    # Flags only (what the digest shows): the fatigue-held deals do not count.
    only = {q.rule_id: q for q in planted_precision_recall(run.flags, gt)}
    assert only["stalled_in_stage"].true_positives == 0
    # Snoozed flags do not count as detected.
    snoozed = evaluate(deals[:2], [], make_baselines(), load_policy(), AS_OF,
                       [Snooze(opportunity_id="opp-2", until=AS_OF + dt.timedelta(days=1))])
    assert {q.rule_id: q for q in planted_precision_recall(snoozed, gt)}["close_date_slipped"].true_positives == 0


# -- the demo warehouse -------------------------------------------------------------------


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
def test_planted_precision_and_recall_on_the_demo_warehouse(built_warehouse, demo_layer):
    policy = load_policy()
    run, baselines = assess(built_warehouse.warehouse, demo_layer, policy, DEMO_AS_OF)
    assert run.flags and run.deals_evaluated > 100
    assert {r.query_id for r in baselines.results} <= set(run.semantic_query_ids)
    for f in run.flags:
        assert f.crm_records and set(f.semantic_query_ids) <= set(run.semantic_query_ids)
    scores = planted_precision_recall(run, Path(built_warehouse.demo_dir) / "ground_truth.csv")
    by_rule = {q.rule_id: q for q in scores}
    assert set(by_rule) >= {
        "stalled_in_stage", "no_recent_activity", "no_decision_maker", "meeting_cadence_drop",
        "close_date_slipped", "amount_swing", "rep_overload",
    }
    table = "\n".join(str(q.as_row()) for q in scores)
    for q in scores:
        assert q.recall is not None and q.recall >= 0.9, table
        assert q.precision is not None and q.precision >= 0.8, table
    # Fatigue holds at most 5 deals per rep in what managers see.
    per_rep: dict[str, int] = {}
    for f in run.flags:
        if f.subject == "opportunity":
            per_rep[f.rep_id] = per_rep.get(f.rep_id, 0) + 1
    assert max(per_rep.values()) <= policy.fatigue.max_deals_per_rep


@pytest.mark.slow
def test_short_backtest_uses_point_in_time_data(built_warehouse, demo_layer):
    policy = load_policy()
    report = backtest(
        built_warehouse.warehouse, demo_layer, policy,
        start=DEMO_AS_OF - dt.timedelta(days=120), end=DEMO_AS_OF - dt.timedelta(days=92), step_days=14,
    )
    assert len(report.dates) == 3 and report.deals_evaluated > 100
    assert len(set(report.semantic_query_ids)) == 5 * 3  # the baselines differ per date (time filter)
    stalled = report.rule("stalled_in_stage")
    assert stalled.flagged_deals > 0 and stalled.flagged_lost > 0 and stalled.median_lead_days is not None
    assert stalled.flagged_deals + stalled.unflagged_deals == report.deals_evaluated
    # Repeatedly pushed or past-due deals go on to be lost or slip far more often than the rest.
    slipped = report.rule("close_date_slipped")
    assert slipped.lift is not None and slipped.lift > 1.5, report.table()
    assert "stalled_in_stage" in report.table()
