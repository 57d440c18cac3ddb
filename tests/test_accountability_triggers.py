"""Rep-level triggers and scorecard verdicts (issue 14), on hand-built governed metrics: each trigger
fires on its case with the rep's rows and query ids, stays quiet otherwise, says "not applicable"
when the source lacks quotas or activities, honours segment and playbook overrides, snoozes and
fatigue; verdicts come from the policy's rules, and a floor change changes the verdict."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml

from agents.accountability.evidence import RepRows
from agents.accountability.metrics import RepMetrics, RepMetricSet, periods
from agents.accountability.policy import AccountabilitySettings
from agents.accountability.scorecards import build_scorecards
from agents.accountability.triggers import evaluate_rep_triggers
from agents.risk.engine import Snooze
from agents.risk.policy import PolicyError, RiskPolicy

AS_OF = dt.date(2026, 9, 28)  # a Monday, past the quarter's midpoint
QUERIES = ["attainment", "coverage_quota", "coverage_won", "pipeline_closing", "open_pipeline", "win_rate_recent",
           "win_rate_norm", "win_rate_segment", "activities_by_week", "created_by_week"]


class _Result:
    def __init__(self, name):
        self.query_id = f"sq_{name}"


def metric_set(reps: dict[str, RepMetrics], *, has_quotas=True, has_activities=True, segment_rate=0.3) -> RepMetricSet:
    p = periods(AS_OF)
    return RepMetricSet(AS_OF, p, reps, {"smb": (segment_rate, 200)}, {q: _Result(q) for q in QUERIES},
                        has_quotas=has_quotas, has_activities=has_activities)


def healthy(rep_id: str, **over) -> RepMetrics:
    weeks = periods(AS_OF).weeks
    m = RepMetrics(rep_id, quota=100_000, won_amount=80_000, attainment=0.8, coverage_quota=120_000, coverage_won=0,
                   pipeline_closing=480_000, open_pipeline=500_000, win_rate_recent=0.32, closed_recent=25,
                   win_rate_norm=0.3, closed_norm=100,
                   activities_by_week={w: {"meeting": 5, "call": 10, "email": 8} for w in weeks},
                   created_by_week={w: (2, 20_000.0) for w in weeks})
    for k, v in over.items():
        setattr(m, k, v)
    return m


def rep_rows(rep_id: str, *, single_threaded=0) -> RepRows:
    r = RepRows(rep_id=rep_id, rep_name=f"Rep {rep_id}", manager_id="mgr-1", segment="smb", hired_on=dt.date(2024, 1, 1))
    for i in range(single_threaded):
        r.deals["open"].append({"opportunity_id": f"{rep_id}-st{i}", "amount": 10_000.0, "stage": "Negotiation",
                                "stage_order": 4, "contacts": 1, "close_date": dt.date(2026, 11, 1), "source_url": None})
    r.deals["open"].append({"opportunity_id": f"{rep_id}-ok", "amount": 5_000.0, "stage": "Negotiation", "stage_order": 4,
                            "contacts": 3, "close_date": dt.date(2026, 11, 1), "source_url": None})
    return r


STAGES = {"Discovery": 1, "Qualification": 2, "Proposal": 3, "Negotiation": 4}


def run(ms, reps, settings=None, **kw):
    return evaluate_rep_triggers(ms, reps, STAGES, settings or AccountabilitySettings(), as_of=AS_OF,
                                 policy_version="test", **kw)


def fired(flags):
    out = {}
    for f in flags:
        out.setdefault(f.rule_id, set()).add(f.rep_id)
        for s in f.supporting:
            out.setdefault(s.rule_id, set()).add(f.rep_id)
    return out


def test_each_trigger_fires_on_its_case_and_not_on_a_healthy_rep():
    weeks = periods(AS_OF).weeks
    metrics = {
        "ok": healthy("ok"),
        "cov": healthy("cov", pipeline_closing=200_000),                       # 1.7x of 120k remaining
        "win": healthy("win", win_rate_recent=0.12, closed_recent=25),         # 18 pts below 30% and the segment's 30%
        "att": healthy("att", won_amount=30_000, attainment=0.3),              # 30% past the midpoint
        "act": healthy("act", activities_by_week={w: {"meeting": 1, "call": 2, "email": 1, "task": 30} for w in weeks}),
        "st": healthy("st"),
    }
    reps = {k: rep_rows(k, single_threaded=3 if k == "st" else 0) for k in metrics}
    flags, suppressed, na = run(metric_set(metrics), reps, AccountabilitySettings(max_primary_flags_per_rep=5))
    assert fired(flags) == {"low_coverage": {"cov"}, "win_rate_drop": {"win"}, "attainment_below_midpoint": {"att"},
                            "activity_below_floor": {"act"}, "single_threaded_deals": {"st"}}
    assert not suppressed and not na
    by = {f.rule_id: f for f in flags}
    cov = by["low_coverage"]
    assert cov.subject == "rep" and cov.rep_id == "cov" and cov.manager_id == "mgr-1"
    assert cov.observed == pytest.approx(1.67, abs=0.01) and cov.threshold == 3.0
    assert "1.7x the remaining quota of 120,000" in cov.message and "next quarter" in cov.message
    assert {"sq_pipeline_closing", "sq_coverage_quota", "sq_coverage_won"} <= set(cov.semantic_query_ids)
    assert cov.crm_records[0].object == "rep" and cov.crm_records[0].record_id == "cov"
    st = by["single_threaded_deals"]
    assert [r.record_id for r in st.crm_records[1:]] == ["st-st0", "st-st1", "st-st2"]  # not the deal with 3 contacts
    assert "18 points below the rep's own norm of 30%" in by["win_rate_drop"].message
    assert by["activity_below_floor"].observed == 4.0  # tasks are not counted by default


def test_win_rate_drop_needs_the_segment_too_unless_told_otherwise():
    ms = metric_set({"w": healthy("w", win_rate_recent=0.12)}, segment_rate=0.15)  # only 3 pts below the segment
    reps = {"w": rep_rows("w")}
    assert "win_rate_drop" not in fired(run(ms, reps)[0])
    loose = AccountabilitySettings.model_validate({"triggers": {"win_rate_drop": {"params": {"compare_segment": False}}}})
    assert "win_rate_drop" in fired(run(ms, reps, loose)[0])


def test_not_applicable_without_quotas_or_activities_never_a_false_flag():
    m = healthy("r", quota=None, attainment=None, coverage_quota=None, pipeline_closing=0, activities_by_week={})
    flags, _, na = run(metric_set({"r": m}, has_quotas=False, has_activities=False), {"r": rep_rows("r", single_threaded=3)})
    assert not flags
    reasons = {n.rule_id: n.reason for n in na}
    assert set(reasons) == {"low_coverage", "attainment_below_midpoint", "activity_below_floor", "single_threaded_deals"}
    assert "no quotas" in reasons["low_coverage"] and "no activity log" in reasons["activity_below_floor"]


def test_attainment_is_not_judged_before_the_midpoint():
    p = periods(dt.date(2026, 10, 5))
    ms = metric_set({"att": healthy("att", won_amount=0, attainment=0.0)})
    ms.as_of, ms.periods = p.as_of, p
    flags, _, na = evaluate_rep_triggers(ms, {"att": rep_rows("att")}, STAGES, AccountabilitySettings(),
                                         as_of=p.as_of, policy_version="t")
    assert "attainment_below_midpoint" not in fired(flags)
    assert any(n.rule_id == "attainment_below_midpoint" and "midpoint" in n.reason for n in na)


def test_segment_and_playbook_overrides_snooze_and_fatigue():
    ms = metric_set({"cov": healthy("cov", pipeline_closing=300_000, won_amount=30_000, attainment=0.3)})  # 2.5x
    reps = {"cov": rep_rows("cov")}
    settings = AccountabilitySettings.model_validate({"triggers": {"low_coverage": {"overrides": [
        {"segment": "smb", "params": {"min_coverage": 2.0}},
        {"playbook": "quarter_end", "params": {"min_coverage": 4.0}, "severity": "critical"}]}}})
    assert "low_coverage" not in fired(run(ms, reps, settings)[0])            # smb: 2x is enough
    flags = run(ms, reps, settings, playbooks=["quarter_end"])[0]
    assert fired(flags) == {"low_coverage": {"cov"}, "attainment_below_midpoint": {"cov"}}
    # Fatigue: one primary rep-level item per rep, the other rides along as a supporting signal.
    assert len(flags) == 1 and flags[0].rule_id == "low_coverage" and flags[0].severity == "critical"
    assert [s.rule_id for s in flags[0].supporting] == ["attainment_below_midpoint"]
    snooze = Snooze(opportunity_id="cov", rule_id="low_coverage", until=AS_OF, reason="new territory")
    flags, suppressed, _ = run(ms, reps, settings, playbooks=["quarter_end"], snoozes=[snooze])
    assert [f.rule_id for f in flags] == ["attainment_below_midpoint"]
    assert [(s.kind, s.flag.rule_id) for s in suppressed] == [("snooze", "low_coverage")]


def test_the_policy_validates_the_section_and_names_the_field():
    with open("agents/risk/default_policy.yaml") as fh:
        data = yaml.safe_load(fh)
    data["accountability"] = {"triggers": {"low_covrage": {}}}
    with pytest.raises(PolicyError, match="accountability.*low_covrage"):
        RiskPolicy.from_dict(data)
    data["accountability"] = {"verdicts": [{"verdict": "MEETS", "when": "__import__('os')"}]}
    with pytest.raises(PolicyError, match="verdicts"):
        RiskPolicy.from_dict(data)


def test_verdicts_follow_the_policy_rules_and_a_floor_change_moves_them():
    weeks = periods(AS_OF).weeks
    slump = {w: {"meeting": 0, "call": 2, "email": 1} for w in weeks}
    quiet = {w: {"meeting": 2, "call": 2, "email": 1} for w in weeks}  # meetings at the floor, activity below
    metrics = {
        "star": healthy("star", won_amount=150_000, attainment=1.5, pipeline_closing=900_000),
        "ok": healthy("ok"),
        "low": healthy("low", pipeline_closing=150_000),
        "pip": healthy("pip", activities_by_week=quiet, pipeline_closing=100_000, won_amount=20_000, attainment=0.2),
        "crit": healthy("crit", activities_by_week=slump, pipeline_closing=100_000, won_amount=20_000, attainment=0.2,
                        win_rate_recent=0.05),
    }
    reps = {k: rep_rows(k) for k in metrics}
    settings = AccountabilitySettings.model_validate({"floors": {"default": {"win_rate": 0.1}}})
    cards = {c.rep_id: c for c in build_scorecards(metric_set(metrics), reps, settings, as_of=AS_OF)}
    assert {k: c.verdict for k, c in cards.items()} == {
        "star": "EXCEEDS", "ok": "MEETS", "low": "BELOW_FLOOR", "pip": "BELOW_FLOOR_PIP", "crit": "CRITICAL"}
    assert cards["pip"].manager_only and not cards["low"].manager_only
    assert len(cards["ok"].weeks) == 8 and cards["ok"].weeks[0].activities == 23
    flag = cards["pip"].to_flag("test")
    assert flag.rule_id == "weekly_scorecard" and flag.observed == "BELOW_FLOOR_PIP" and flag.action_hint == "manager_only"
    assert "sq_activities_by_week" in flag.semantic_query_ids and flag.crm_records[0].record_id == "pip"
    # Lower the coverage floor for this team: the rep below it now meets it.
    lower = AccountabilitySettings.model_validate({"floors": {"default": {"win_rate": 0.1}, "smb": {"coverage": 1.0}}})
    again = {c.rep_id: c.verdict for c in build_scorecards(metric_set(metrics), reps, lower, as_of=AS_OF)}
    assert again["low"] == "MEETS"
