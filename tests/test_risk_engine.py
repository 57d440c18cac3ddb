"""The engine: evidence on every flag, fatigue limits, snoozes, exclusions, playbooks, baseline fallback."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml
from pydantic import ValidationError

from agents.risk.engine import Snooze, evaluate
from agents.risk.features import SourceCoverage
from agents.risk.models import CrmRecordRef, RiskFlag
from agents.risk.policy import DEFAULT_POLICY_PATH, RiskPolicy, load_policy
from tests.test_risk_fixtures import AS_OF, act, change, deal, make_baselines, rep, ts

POLICY = load_policy()
BASELINES = make_baselines()


def _stalled(opp, amount=20_000.0, rep_id="rep-1", **kw):
    return deal(opp, days_in_stage=35, amount=amount, rep=rep_id, **kw)


def _policy(**changes) -> RiskPolicy:
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    for path, value in changes.items():
        node = data
        keys = path.split("__")
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return RiskPolicy.from_dict(data)


def test_every_flag_cites_crm_records_and_a_semantic_query():
    deals = [_stalled("opp-1"), deal("opp-2", close_in=-3), deal("opp-3", amount_changes=(change(1, "amount", 100, 200, 3),))]
    run = evaluate(deals, [rep(n_open=60)], BASELINES, POLICY, AS_OF)
    assert {f.rule_id for f in run.flags} == {"stalled_in_stage", "close_date_slipped", "amount_swing", "rep_overload"}
    for f in run.flags:
        assert f.crm_records and f.semantic_query_ids
        assert all(q.startswith("mfq_") for q in f.semantic_query_ids)
        assert f.policy_version == POLICY.version and f.as_of == AS_OF
        assert f.flag_id == RiskFlag.make_id(f.rule_id, f.opportunity_id or f.rep_id, AS_OF)
    rep_flag = next(f for f in run.flags if f.rule_id == "rep_overload")
    assert rep_flag.subject == "rep" and rep_flag.opportunity_id is None


def test_a_flag_without_evidence_cannot_be_constructed():
    base = dict(
        flag_id="flag_x", rule_id="r", opportunity_id="opp-1", observed=1, threshold=1, severity="low",
        confidence=0.5, message="m", policy_version="v", as_of=AS_OF,
    )
    ref = CrmRecordRef(object="opportunity", record_id="opp-1")
    with pytest.raises(ValidationError, match="CRM record"):
        RiskFlag(**base, crm_records=[], semantic_query_ids=["mfq_1"])
    with pytest.raises(ValidationError, match="semantic-layer query"):
        RiskFlag(**base, crm_records=[ref], semantic_query_ids=[])
    RiskFlag(**base, crm_records=[ref], semantic_query_ids=["mfq_1"])


def test_flag_ids_are_deterministic():
    deals = [_stalled("opp-1"), deal("opp-2", close_in=-3)]
    a = evaluate(deals, [], BASELINES, POLICY, AS_OF)
    b = evaluate(list(reversed(deals)), [], BASELINES, POLICY, AS_OF)
    assert [f.flag_id for f in a.flags] == [f.flag_id for f in b.flags]
    assert a.model_dump() == b.model_dump()


def test_one_primary_flag_per_deal_with_supporting_signals():
    d = deal(
        "opp-1", days_in_stage=35, close_in=-10,
        amount_changes=(change(9, "amount", 100, 200, 3),),
        activities=(act(1, 40, "meeting", dm=True), act(2, 20, "email")),
    )
    run = evaluate([d], [], BASELINES, POLICY, AS_OF)
    assert len(run.flags) == 1
    flag = run.flags[0]
    assert flag.is_primary
    fired = {flag.rule_id} | {s.rule_id for s in flag.supporting}
    assert fired == {"stalled_in_stage", "close_date_slipped", "amount_swing", "no_recent_activity"}
    # The primary is the most severe; the supporting rules' evidence is merged in.
    from agents.risk.models import SEVERITY_RANK

    assert all(flag.severity_rank >= SEVERITY_RANK[s.severity] for s in flag.supporting)
    assert {"fh-9", "act-2"} <= {r.record_id for r in flag.crm_records}
    assert run.flags_by_rule()["amount_swing"] == {"opp-1"}

    two = evaluate([d], [], BASELINES, _policy(fatigue__max_primary_flags_per_deal=2), AS_OF)
    assert len(two.flags) == 2 and all(f.is_primary for f in two.flags)


def test_primary_is_the_most_severe_rule():
    # 80 days in stage (critical) beats a 25% amount swing (medium).
    d = deal("opp-1", days_in_stage=80, amount_changes=(change(9, "amount", 100, 125, 3),))
    flag = evaluate([d], [], BASELINES, POLICY, AS_OF).flags[0]
    assert flag.rule_id == "stalled_in_stage" and flag.severity == "critical"
    assert [s.rule_id for s in flag.supporting] == ["amount_swing"]


def test_at_most_m_deals_per_rep_ranked_by_severity_times_amount():
    deals = [_stalled(f"opp-{i}", amount=1000.0 * (i + 1)) for i in range(8)]
    deals += [_stalled(f"opp-other-{i}", rep_id="rep-2") for i in range(2)]
    run = evaluate(deals, [], BASELINES, POLICY, AS_OF)
    mine = [f for f in run.flags if f.rep_id == "rep-1"]
    assert len(mine) == 5
    assert {f.opportunity_id for f in mine} == {f"opp-{i}" for i in range(3, 8)}  # the five largest
    assert len([f for f in run.flags if f.rep_id == "rep-2"]) == 2
    held = [s for s in run.suppressed if s.kind == "fatigue"]
    assert {s.flag.opportunity_id for s in held} == {"opp-0", "opp-1", "opp-2"}
    assert all("rep-1" in s.reason for s in held)

    looser = evaluate(deals, [], BASELINES, _policy(fatigue__max_deals_per_rep=10), AS_OF)
    assert len([f for f in looser.flags if f.rep_id == "rep-1"]) == 8


def test_snooze_suppresses_until_the_date_and_is_reported():
    deals = [_stalled("opp-1"), _stalled("opp-2", close_in=-5)]
    snoozes = [
        Snooze(opportunity_id="opp-1", rule_id=None, until=AS_OF + dt.timedelta(days=7), reason="customer on holiday", by="mgr-1"),
        Snooze(opportunity_id="opp-2", rule_id="close_date_slipped", until=AS_OF + dt.timedelta(days=7), reason="legal", by="mgr-1"),
    ]
    run = evaluate(deals, [], BASELINES, POLICY, AS_OF, snoozes)
    assert [f.opportunity_id for f in run.flags] == ["opp-2"]
    assert run.flags[0].rule_id == "stalled_in_stage" and not run.flags[0].supporting
    snoozed = {(s.flag.opportunity_id, s.flag.rule_id): s for s in run.suppressed if s.kind == "snooze"}
    assert set(snoozed) == {("opp-1", "stalled_in_stage"), ("opp-2", "close_date_slipped")}
    assert snoozed[("opp-1", "stalled_in_stage")].reason == "customer on holiday"
    assert snoozed[("opp-1", "stalled_in_stage")].by == "mgr-1"
    # `until` is inclusive (as in the ledger): still silent on that date, back the day after.
    on_until = evaluate(deals, [], BASELINES, POLICY, AS_OF + dt.timedelta(days=7), snoozes)
    assert [f.opportunity_id for f in on_until.flags] == ["opp-2"]
    later = evaluate(deals, [], BASELINES, POLICY, AS_OF + dt.timedelta(days=8), snoozes)
    assert {f.opportunity_id for f in later.flags} == {"opp-1", "opp-2"}


def test_exclusion_by_account_tag_suppresses_with_reason():
    strategic = _stalled("opp-1", account_tags=("Strategic",), close_in=-5)
    run = evaluate([strategic], [], BASELINES, POLICY, AS_OF)
    # Stale warnings are excluded; the past-due close date is not.
    assert [f.rule_id for f in run.flags] == ["close_date_slipped"]
    excluded = [s for s in run.suppressed if s.kind == "exclusion"]
    assert [s.flag.rule_id for s in excluded] == ["stalled_in_stage"]
    assert "strategic" in excluded[0].reason


def test_playbooks_are_recorded_and_change_thresholds():
    # A new rep (hired 30 days ago): no_recent_activity at 10 days instead of 14 (enterprise deal).
    quiet = deal("opp-1", segment="enterprise", activities=(act(1, 40, "meeting", dm=True), act(2, 12, "email")))
    assert evaluate([quiet], [], BASELINES, POLICY, AS_OF).flags == []
    newbie = deal("opp-1", segment="enterprise", rep_hired_on=AS_OF - dt.timedelta(days=30),
                  activities=(act(1, 40, "meeting", dm=True), act(2, 12, "email")))
    run = evaluate([newbie], [], BASELINES, POLICY, AS_OF)
    assert [f.rule_id for f in run.flags] == ["no_recent_activity"]
    assert run.flags[0].playbooks == ["new_rep"] and run.flags[0].threshold == 10
    # Quarter end (as of 2026-12-20): one close-date push is enough, at high severity.
    qe = dt.date(2026, 12, 20)
    shift = (qe - AS_OF).days  # the helpers count days back from AS_OF
    one_push = deal("opp-2", as_of=qe, close_date=qe + dt.timedelta(days=20), stage_entered_at=ts(-shift + 3),
                    activities=(act(1, -shift + 20, "meeting", dm=True), act(2, -shift + 2, "meeting")),
                    close_date_changes=(change(1, "close_date", "2026-12-01", "2027-01-09", 10),))
    flags = evaluate([one_push], [], BASELINES, POLICY, qe).flags
    assert [(f.rule_id, f.severity, f.playbooks) for f in flags] == [("close_date_slipped", "high", ["quarter_end"])]


def test_custom_rule_action_hint_reaches_the_flag():
    d = deal("opp-1", amount=900_000.0, segment="enterprise", activities=(act(1, 9, "meeting", dm=True),))
    run = evaluate([d], [], BASELINES, POLICY, AS_OF)
    flag = next(f for f in run.flags if f.rule_id == "large_deal_gone_quiet" or any(
        s.rule_id == "large_deal_gone_quiet" for s in f.supporting))
    assert flag.rule_id == "large_deal_gone_quiet" and flag.action_hint == "alert_manager"
    assert "large_deal" in flag.playbooks


def test_sources_without_activities_or_stage_history_report_not_applicable():
    coverage = SourceCoverage(has_activities=False, has_stage_history=False)
    d = deal("opp-1", activities=(), coverage=coverage, stage_history_id=None, stage_entered_at=None, age=200)
    run = evaluate([d], [], BASELINES, POLICY, AS_OF)
    assert run.flags == []
    na = {n.rule_id for n in run.not_applicable}
    assert {"stalled_in_stage", "no_recent_activity", "meeting_cadence_drop", "no_decision_maker", "stale_cycle",
            "large_deal_gone_quiet"} <= na
    assert all(n.subject_ids == ["opp-1"] and n.count == 1 for n in run.not_applicable)


def test_baseline_fallback_with_a_small_sample_lowers_confidence():
    small = make_baselines(segment_stage_n=12)  # < min_closed_deals (20): use the stage across segments
    b = small.stage_duration("smb", "Discovery")
    assert b.slice == {"stage": "Discovery"} and b.sample_size == 300 and b.value == 30.0
    assert b.semantic_query_id == "mfq_test_stage_all"
    assert "segment smb x stage Discovery has 12 completed stints (< 20)" in b.fallback
    assert small.confidence(b) == pytest.approx(0.7)
    full = BASELINES.stage_duration("smb", "Discovery")
    assert full.fallback is None and full.slice == {"segment": "smb", "stage": "Discovery"}

    # The flag carries the broader baseline and a lower confidence (threshold 2 x 30 = 60 days).
    run = evaluate([deal("opp-1", days_in_stage=61)], [], small, POLICY, AS_OF)
    flag = run.flags[0]
    assert flag.baseline.fallback and flag.threshold == 60
    assert flag.confidence == pytest.approx(0.85 * 0.7)

    # Every slice too small: the broadest with a value is used, flagged as still small.
    tiny = make_baselines(segment_stage_n=5, stage_n=8)
    b = tiny.stage_duration("smb", "Discovery")
    assert b.slice == {"stage": "Discovery"} and "still a small sample" in b.fallback
    assert tiny.confidence(b) == pytest.approx(0.49)

    # Segment outcomes fall back to all deals.
    few = make_baselines(segment_closed=10)
    w = few.win_rate("smb")
    assert w.slice == {} and w.semantic_query_id == "mfq_test_outcomes_all" and "10 closed deals" in w.fallback


def test_the_risk_step_pauses_the_garbage_collector_and_restores_it():
    """The risk step (assess and the asset) runs with the cyclic collector paused, and leaves it as it was."""
    import gc
    import inspect

    from agents.risk import engine
    from orchestration.assets import risk

    seen = []
    assert gc.isenabled()
    with engine.gc_paused():
        seen.append(gc.isenabled())
        with engine.gc_paused():
            seen.append(gc.isenabled())
        seen.append(gc.isenabled())  # an inner pause does not re-enable it early
    assert seen == [False, False, False] and gc.isenabled()
    gc.disable()
    try:
        with engine.gc_paused():
            pass
        assert not gc.isenabled()  # disabled before, disabled after
    finally:
        gc.enable()
    assert "gc_paused()" in inspect.getsource(engine.assess)
    assert "with gc_paused()" in inspect.getsource(risk.risk_flags.op.compute_fn.decorated_fn)
