"""Each rule on small hand-made feature rows: fires, does not fire, not applicable."""

from __future__ import annotations

import dataclasses

import pytest

from agents.risk.features import SourceCoverage
from agents.risk.policy import load_policy
from agents.risk.rules import DEAL_RULES, REP_RULES, NotApplicable, RuleContext, RuleHit, evaluate_custom_rule
from tests.test_risk_fixtures import AS_OF, STAGE_ORDERS, act, change, deal, make_baselines, rep

POLICY = load_policy()
BASELINES = make_baselines()  # smb x stage p75 = 15 days, meetings/week 1.0, smb won-cycle p75 90 days


def run(rule_id, subject, baselines=BASELINES, segment="smb", stage=None, **param_overrides):
    rule = POLICY.resolve(rule_id, segment=segment, stage=stage)
    if param_overrides:
        rule = dataclasses.replace(rule, params=rule.params.model_copy(update=param_overrides))
    ctx = RuleContext(as_of=AS_OF, rule=rule, baselines=baselines, stage_orders=STAGE_ORDERS)
    if rule.is_custom:
        return evaluate_custom_rule(subject, ctx)
    fn = DEAL_RULES.get(rule_id) or REP_RULES[rule_id]
    return fn(subject, ctx)


NO_ACTIVITIES = SourceCoverage(has_activities=False)
NO_STAGES = SourceCoverage(has_stage_history=False)
NO_FIELDS = SourceCoverage(has_field_history=False)


def test_healthy_deal_fires_nothing():
    d = deal()
    for rule_id in POLICY.rule_ids:
        if rule_id == "rep_overload":
            continue
        assert run(rule_id, d, stage=d.stage) is None, rule_id


# --- stalled_in_stage: days in stage > 2 x p75 (15) = 30


def test_stalled_in_stage():
    hit = run("stalled_in_stage", deal(days_in_stage=31))
    assert isinstance(hit, RuleHit)
    assert hit.observed == 31 and hit.threshold == 30
    assert hit.baseline.metric == "stage_duration_p75" and hit.baseline.semantic_query_id == "mfq_test_stage_seg"
    assert {r.object for r in hit.records} == {"opportunity", "stage_history"}
    assert run("stalled_in_stage", deal(days_in_stage=30)) is None
    # Severity grows with the ratio.
    assert POLICY.resolve("stalled_in_stage").severity_for(hit.ratio) == "medium"
    big = run("stalled_in_stage", deal(days_in_stage=80))
    assert POLICY.resolve("stalled_in_stage").severity_for(big.ratio) == "critical"


def test_stalled_in_stage_not_applicable_without_stage_history():
    assert isinstance(run("stalled_in_stage", deal(days_in_stage=99, coverage=NO_STAGES)), NotApplicable)
    assert isinstance(run("stalled_in_stage", deal(stage_history_id=None, stage_entered_at=None)), NotApplicable)


# --- stale_cycle: age > won-cycle p75 (90) and no decision maker


def test_stale_cycle():
    no_dm = (act(1, 3, "meeting"), act(2, 1, "email"))
    assert isinstance(run("stale_cycle", deal(age=120, activities=no_dm)), RuleHit)
    assert run("stale_cycle", deal(age=120)) is None  # a decision maker is engaged
    assert run("stale_cycle", deal(age=80, activities=no_dm)) is None
    assert isinstance(run("stale_cycle", deal(age=120, activities=no_dm, coverage=NO_ACTIVITIES)), NotApplicable)


# --- no_recent_activity: > 14 days (smb override: 10)


def test_no_recent_activity():
    quiet = deal(activities=(act(1, 40, "meeting", dm=True), act(2, 15, "email")))
    hit = run("no_recent_activity", quiet, segment="enterprise")
    assert isinstance(hit, RuleHit) and hit.observed == 15 and hit.threshold == 14
    assert any(r.object == "activity" and r.record_id == "act-2" for r in hit.records)
    assert run("no_recent_activity", deal(activities=(act(1, 14, "email"),)), segment="enterprise") is None
    # The smb override (10 days) applies to smb deals.
    assert isinstance(run("no_recent_activity", deal(activities=(act(1, 11, "email"),))), RuleHit)
    # No activity ever: fires once the deal is older than the threshold.
    assert isinstance(run("no_recent_activity", deal(activities=(), age=30)), RuleHit)
    assert run("no_recent_activity", deal(activities=(), age=5)) is None


def test_no_recent_activity_not_applicable_without_activity_log():
    outcome = run("no_recent_activity", deal(activities=(), coverage=NO_ACTIVITIES))
    assert isinstance(outcome, NotApplicable) and "activity log" in outcome.reason


# --- meeting_cadence_drop


def _cadence(prior_meetings: int, recent_meetings: int, touch_days_ago: int = 2):
    acts = [act(f"p{i}", 30 + i * 6, "meeting", dm=(i == 0)) for i in range(prior_meetings)]
    acts += [act(f"r{i}", 3 + i * 5, "meeting") for i in range(recent_meetings)]
    acts.append(act("touch", touch_days_ago, "email"))
    return deal(age=150, activities=tuple(acts))


def test_meeting_cadence_drop_fires_when_meetings_stop_but_the_deal_is_active():
    hit = run("meeting_cadence_drop", _cadence(prior_meetings=9, recent_meetings=0))
    assert isinstance(hit, RuleHit) and hit.observed == 0
    assert hit.baseline.metric == "meetings_per_week"
    assert sum(r.object == "activity" for r in hit.records) >= 2


def test_meeting_cadence_drop_does_not_fire_on_steady_cadence_or_silent_deals():
    assert run("meeting_cadence_drop", _cadence(prior_meetings=8, recent_meetings=4)) is None
    # Silent altogether: that is no_recent_activity's job.
    assert run("meeting_cadence_drop", _cadence(prior_meetings=9, recent_meetings=0, touch_days_ago=20)) is None
    # Too little earlier cadence to call it a drop.
    assert run("meeting_cadence_drop", _cadence(prior_meetings=2, recent_meetings=0)) is None
    # Too young for a 28-day window.
    assert run("meeting_cadence_drop", dataclasses.replace(_cadence(9, 0), created_at=_cadence(9, 0).activities[-1].occurred_at)) is None


def test_meeting_cadence_drop_against_own_earlier_cadence():
    # 1 recent meeting (0.25/week) is not below 25% of the 1.0 baseline, but is below 30% of the own 1.1/week.
    d = _cadence(prior_meetings=9, recent_meetings=1)
    assert isinstance(run("meeting_cadence_drop", d), RuleHit)
    assert run("meeting_cadence_drop", d, own_share=0.2) is None


def test_meeting_cadence_drop_not_applicable_without_activity_log():
    assert isinstance(run("meeting_cadence_drop", deal(coverage=NO_ACTIVITIES)), NotApplicable)


# --- no_decision_maker: from Proposal on


def test_no_decision_maker():
    no_dm = (act(1, 3, "meeting"), act(2, 1, "email"))
    hit = run("no_decision_maker", deal(stage="Proposal", activities=no_dm), stage="Proposal")
    assert isinstance(hit, RuleHit)
    assert POLICY.resolve("no_decision_maker", stage="Negotiation").severity == "critical"
    assert run("no_decision_maker", deal(stage="Discovery", activities=no_dm)) is None
    assert run("no_decision_maker", deal(stage="Negotiation")) is None  # a decision maker was met
    assert isinstance(
        run("no_decision_maker", deal(stage="Proposal", coverage=SourceCoverage(has_buying_roles=False))), NotApplicable
    )


# --- close_date_slipped: pushed >= 2 times, or past due


def test_close_date_slipped_pushed():
    pushes = (change(1, "close_date", "2026-08-01", "2026-09-01", 60), change(2, "close_date", "2026-09-01", "2026-10-20", 20))
    hit = run("close_date_slipped", deal(close_date_changes=pushes))
    assert isinstance(hit, RuleHit) and hit.signal == "pushed" and hit.observed == "pushed"
    assert {r.record_id for r in hit.records} >= {"fh-1", "fh-2"}
    pulled_in = (change(1, "close_date", "2026-12-01", "2026-11-01", 30), change(2, "close_date", "2026-11-01", "2026-10-30", 10))
    assert run("close_date_slipped", deal(close_date_changes=pushes[:1])) is None
    assert run("close_date_slipped", deal(close_date_changes=pulled_in)) is None


def test_close_date_slipped_past_due():
    hit = run("close_date_slipped", deal(close_in=-5))
    assert isinstance(hit, RuleHit) and hit.signal == "past_due"
    assert run("close_date_slipped", deal(close_in=0)) is None
    # Past due still judged without field history; pushes are not.
    assert isinstance(run("close_date_slipped", deal(close_in=-5, coverage=NO_FIELDS)), RuleHit)
    assert isinstance(run("close_date_slipped", deal(coverage=NO_FIELDS), past_due=False), NotApplicable)


# --- amount_swing: > 20% within 30 days


def test_amount_swing():
    hit = run("amount_swing", deal(amount_changes=(change(1, "amount", 10000, 13000, 10),)))
    assert isinstance(hit, RuleHit) and hit.observed == pytest.approx(0.3)
    assert run("amount_swing", deal(amount_changes=(change(1, "amount", 10000, 11500, 10),))) is None
    assert run("amount_swing", deal(amount_changes=(change(1, "amount", 10000, 20000, 45),))) is None
    assert isinstance(run("amount_swing", deal(coverage=NO_FIELDS)), NotApplicable)


# --- missing_required_fields: cumulative by stage order


def test_missing_required_fields():
    hit = run("missing_required_fields", deal(stage="Negotiation", next_step=None, close_in=None))
    assert isinstance(hit, RuleHit) and hit.observed == "close_date, next_step"
    assert run("missing_required_fields", deal(stage="Discovery", next_step=None)) is None
    assert isinstance(run("missing_required_fields", deal(stage="Qualification", amount=None)), RuleHit)
    assert run("missing_required_fields", deal(stage="Negotiation", next_step="  ")) is not None


# --- rep_overload: > 50 open deals


def test_rep_overload():
    hit = run("rep_overload", rep(n_open=57))
    assert isinstance(hit, RuleHit) and hit.observed == 57
    assert hit.records[0].object == "rep" and len(hit.records) == 58
    assert run("rep_overload", rep(n_open=50)) is None


# --- custom rule: amount > 500000 and days_since_activity > 7


def test_custom_rule_with_action():
    big_quiet = deal(amount=600_000, activities=(act(1, 9, "meeting", dm=True),))
    hit = run("large_deal_gone_quiet", big_quiet)
    assert isinstance(hit, RuleHit) and hit.action_hint == "alert_manager"
    assert "amount=600000" in hit.message and "days_since_activity=9" in hit.message
    assert run("large_deal_gone_quiet", deal(amount=600_000)) is None
    assert run("large_deal_gone_quiet", deal(amount=100_000, activities=(act(1, 9),))) is None
    assert isinstance(run("large_deal_gone_quiet", dataclasses.replace(big_quiet, coverage=NO_ACTIVITIES)), NotApplicable)


def test_missing_baseline_is_not_applicable():
    empty = make_baselines(segments=())
    empty.stage_all_segments = empty.stage_all_segments.__class__(
        **{**empty.stage_all_segments.__dict__, "rows": ()}
    )
    outcome = run("stalled_in_stage", deal(days_in_stage=99), baselines=empty)
    assert isinstance(outcome, NotApplicable) and "baseline" in outcome.reason
