"""Action outcomes on the demo CRM: the planted approved actions that worked and did not, measured from the marts."""

from __future__ import annotations

import datetime as dt

import pytest

from agents.learning.outcomes import check_outcomes, effectiveness, loop_kpis, stored_outcomes
from agents.ledger import open_ledger
from agents.risk.policy import load_policy
from connectors.demo.plant_loop import PLAN, TRUTH_FILE, planted_effectiveness, seed_review_history


@pytest.fixture(scope="module")
def checked(built_warehouse, tmp_path_factory):
    home = tmp_path_factory.mktemp("loop_ledger")
    with open_ledger(home=home) as ledger:
        written = seed_review_history(ledger, built_warehouse.demo_dir)
        assert seed_review_history(ledger, built_warehouse.demo_dir) == 0  # idempotent
        result = check_outcomes(ledger.uow, built_warehouse.warehouse, load_policy(None), as_of=dt.date(2026, 10, 1))
        outcomes = stored_outcomes(ledger.uow)
        kpis = loop_kpis(ledger.uow, outcomes)
        yield ledger, written, result, outcomes, kpis


@pytest.mark.slow
def test_effectiveness_per_rule_is_within_five_points_of_the_planted_truth(checked, built_warehouse):
    ledger, written, result, outcomes, _ = checked
    assert written == sum(sum(v[:1] + v[2:]) for v in PLAN.values())
    assert result.items == written and result.due == written  # every planted check is due by the as-of date
    truth = planted_effectiveness(built_warehouse.demo_dir)
    measured = {e.key: e for e in effectiveness(outcomes, by="rule")}
    assert set(measured) == set(truth)
    for rule, expected in truth.items():
        e = measured[rule]
        assert e.approved == PLAN[rule][0]
        assert abs(e.rate - expected) <= 0.05, (rule, e.rate, expected)
        assert e.low <= e.rate <= e.high
        assert e.compared == PLAN[rule][2] + PLAN[rule][3]


@pytest.mark.slow
def test_each_item_matches_its_planted_outcome_and_is_audited(checked, built_warehouse):
    import csv

    ledger, _, _, outcomes, _ = checked
    with open(built_warehouse.demo_dir / TRUTH_FILE, newline="") as fh:
        truth = {f"demo-history-{r['item_key']}": r for r in csv.DictReader(fh)}
    mismatched = [o.item_id for o in outcomes if o.achieved != (truth[o.item_id]["worked"] == "true")]
    assert len(mismatched) <= 0.05 * len(outcomes), mismatched
    assert all(o.final_result == truth[o.item_id]["final_result"] for o in outcomes)
    assert {o.aimed_change for o in outcomes} == {t["aim"] for t in truth.values()}
    assert [r.action for r in ledger.audit_rows(subject_type="action_outcomes")] == ["outcomes.checked"]
    assert ledger.verify_audit().ok


@pytest.mark.slow
def test_by_manager_rep_week_and_the_seed_kpis(checked):
    _, _, _, outcomes, kpis = checked
    by_manager = effectiveness(outcomes, by="manager")
    assert {e.key for e in by_manager} == {"mgr-0001", "mgr-0002", "mgr-0003"}
    assert sum(e.approved for e in by_manager) == sum(v[0] for v in PLAN.values())
    assert len(effectiveness(outcomes, by="week")) == 6
    assert sum(e.approved for e in effectiveness(outcomes, by="rep")) == sum(v[0] for v in PLAN.values())
    assert kpis["flag_to_first_touch_median_business_days"] is not None
    assert kpis["reps_reviewed_per_week"] and all(n >= 1 for n in kpis["reps_reviewed_per_week"].values())


@pytest.mark.slow
def test_the_daily_job_checks_action_outcomes_after_posting_the_digests(built_warehouse):
    settings = built_warehouse.settings
    with open_ledger(settings.ledger_url, home=settings.home_dir) as ledger:
        checks = [a for a in ledger.audit_rows(subject_type="action_outcomes") if a.action == "outcomes.checked"]
        posted = [a for a in ledger.audit_rows() if a.action == "digest.posted"]
    assert [a.actor for a in checks] == ["pipeline"]
    assert checks[0].subject_id <= "2026-10-01" and checks[0].seq > max(a.seq for a in posted)  # as of the latest data
