"""Policy loading: validation errors name the file, the rule and the field; overrides and playbooks resolve."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from agents.risk.policy import DEFAULT_POLICY_PATH, PolicyError, load_policy


def _write(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "policy.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def _base() -> dict:
    return yaml.safe_load(DEFAULT_POLICY_PATH.read_text())


def test_default_policy_loads_with_every_builtin_rule():
    policy = load_policy()
    assert policy.version
    for rule in (
        "stalled_in_stage", "stale_cycle", "no_recent_activity", "meeting_cadence_drop", "no_decision_maker",
        "close_date_slipped", "amount_swing", "missing_required_fields", "rep_overload",
    ):
        assert rule in policy.rule_ids
    assert policy.resolve("no_recent_activity").params.days == 14
    assert policy.resolve("amount_swing").params.min_relative_change == 0.2
    assert policy.resolve("rep_overload").params.max_open_deals == 50
    assert policy.resolve("large_deal_gone_quiet").params.action == "alert_manager"
    assert policy.fatigue.max_deals_per_rep == 5 and policy.min_closed_deals == 20


@pytest.mark.parametrize(
    ("mutate", "rule", "field", "message"),
    [
        (lambda d: d["rules"]["no_recent_activity"]["params"].update(days="soon"), "no_recent_activity", "params.days", "integer"),
        (lambda d: d["rules"]["no_recent_activity"]["params"].update(dayz=3), "no_recent_activity", "params.dayz", "Extra inputs"),
        (lambda d: d["rules"]["amount_swing"].update(severity="urgent"), "amount_swing", "severity", "low"),
        (lambda d: d["rules"]["stalled_in_stage"]["overrides"][0]["params"].update(multiplier=-1),
         "stalled_in_stage", "overrides[0].params.multiplier", "greater than 0"),
        (lambda d: d["rules"].update(made_up_rule={}), "made_up_rule", None, "unknown rule"),
        (lambda d: d["custom_rules"]["large_deal_gone_quiet"].update(expression="amount > 5 and __import__('os')"),
         "large_deal_gone_quiet", "params.expression", "not allowed"),
        (lambda d: d["custom_rules"]["large_deal_gone_quiet"].update(expression="revenue > 5"),
         "large_deal_gone_quiet", "params.expression", "unknown name 'revenue'"),
        (lambda d: d["exclusions"][0]["rules"].append("not_a_rule"), "not_a_rule", "exclusions[0].rules", "unknown rule"),
        (lambda d: d["playbooks"]["quarter_end"]["overrides"]["close_date_slipped"]["params"].update(min_pushes=0),
         "close_date_slipped", "playbooks.quarter_end.overrides.close_date_slipped.params.min_pushes", "greater than or equal"),
        (lambda d: d["playbooks"]["new_rep"].update(condition="tenure <= 90"), None, "playbooks.new_rep.condition", "unknown name"),
        (lambda d: d["rules"]["missing_required_fields"]["params"]["required_fields"].update(Proposal=["budget"]),
         "missing_required_fields", "params.required_fields.Proposal", "unknown field 'budget'"),
    ],
)
def test_policy_errors_name_file_rule_and_field(tmp_path, mutate, rule, field, message):
    data = _base()
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    text = str(err.value)
    assert str(path) in text
    assert err.value.rule == rule
    if rule:
        assert f"rule {rule!r}" in text
    if field:
        assert err.value.field == field and f"field {field!r}" in text
    assert message in text


def test_missing_version_and_bad_yaml_are_policy_errors(tmp_path):
    data = _base()
    del data["version"]
    with pytest.raises(PolicyError, match="version"):
        load_policy(_write(tmp_path, data))
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [unclosed")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(bad)
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml")


def test_overrides_apply_segment_then_stage_then_both_then_playbooks():
    policy = load_policy()
    assert policy.resolve("no_recent_activity", segment="smb").params.days == 10
    assert policy.resolve("no_recent_activity", segment="enterprise").params.days == 14
    assert policy.resolve("stalled_in_stage", segment="enterprise", stage="Negotiation").params.multiplier == 2.5
    assert policy.resolve("stalled_in_stage", segment="smb", stage="Negotiation").params.multiplier == 2.0
    assert policy.resolve("no_decision_maker", stage="Negotiation").severity == "critical"
    # Playbooks come last: quarter_end tightens the smb segment override too.
    assert policy.resolve("no_recent_activity", segment="smb", playbooks=["quarter_end"]).params.days == 7
    assert policy.resolve("close_date_slipped", playbooks=["quarter_end"]).params.min_pushes == 1


def test_playbook_activation_by_condition_and_date_range(tmp_path):
    policy = load_policy()
    on = dt.date(2026, 12, 20)
    features = {"days_to_quarter_end": 11, "amount": 300_000, "rep_tenure_days": 30}
    assert policy.active_playbooks(on, features) == ["quarter_end", "new_rep", "large_deal"]
    assert policy.active_playbooks(on, {"days_to_quarter_end": 60, "amount": 1000, "rep_tenure_days": 400}) == []
    # Unknown feature values never satisfy a condition.
    assert policy.active_playbooks(on, {"days_to_quarter_end": 60, "amount": None, "rep_tenure_days": None}) == []

    data = _base()
    data["playbooks"]["audit_prep"].update(enabled=True, active_from="2026-11-01", active_to="2026-11-30")
    policy = load_policy(_write(tmp_path, data))
    outside = {"days_to_quarter_end": 60, "amount": 1, "rep_tenure_days": 999}
    assert "audit_prep" in policy.active_playbooks(dt.date(2026, 11, 15), outside)
    assert "audit_prep" not in policy.active_playbooks(dt.date(2026, 12, 1), outside)
    assert policy.resolve("missing_required_fields", playbooks=["audit_prep"]).severity == "high"


def test_enabled_playbook_needs_a_trigger(tmp_path):
    data = _base()
    data["playbooks"]["audit_prep"]["enabled"] = True
    with pytest.raises(PolicyError, match="date range or a condition") as err:
        load_policy(_write(tmp_path, data))
    assert err.value.field == "playbooks.audit_prep"


def test_exclusions_by_tag():
    policy = load_policy()
    excluded = policy.excluded_rules(["Strategic", "Renewal"])
    assert set(excluded) == {"stalled_in_stage", "stale_cycle", "no_recent_activity", "meeting_cadence_drop"}
    assert "strategic" in excluded["stalled_in_stage"]
    assert policy.excluded_rules(["strategic"])  # tags match case-insensitively
    assert policy.excluded_rules(["Non-Strategic"]) == {}


def test_severity_escalates_with_ratio():
    rule = load_policy().resolve("stalled_in_stage")
    assert rule.severity_for(1.1) == "medium"
    assert rule.severity_for(1.6) == "high"
    assert rule.severity_for(3.0) == "critical"
    assert rule.severity_for(None) == "medium"
