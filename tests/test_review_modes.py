"""Modes: shadow by default, live refused without the eval and shadow-agreement gates, the kill switch from the environment."""

from __future__ import annotations

import datetime as dt

import pytest

from agents.ledger import open_ledger
from agents.review.modes import GateThresholds, LiveModeRefused, ModeSettings, apply_startup_mode
from tests.test_review_fixtures import AS_OF, Clock


@pytest.fixture
def ledger(tmp_path):
    with open_ledger(home=tmp_path / "home", clock=Clock()) as ledger:
        yield ledger


def _shadow_decisions(ledger, approved: int, dismissed: int) -> None:
    digest = ledger.create_digest("run-1", "mgr-1", AS_OF)
    for i in range(approved + dismissed):
        item = ledger.add_item(digest.digest_id, flag_id=f"f{i}", rule_id="r", severity="high", draft={"action": "x"}, evidence={})
        ledger.record_decision(item.item_id, "approve" if i < approved else "dismiss", "mgr-1", "cli")


def _evals(ledger, rate, drafter="template") -> None:
    ledger.record_eval(drafter, {"pass_rate": rate, "cases": 40}, actor="test")


def test_from_env_defaults_and_validation():
    s = ModeSettings.from_env({})
    assert (s.mode, s.send_enabled, s.thresholds) == ("shadow", False, GateThresholds())
    s = ModeSettings.from_env({"AGENT_MODE": "LIVE", "AGENT_SEND_ENABLED": "true", "AGENT_LIVE_MIN_EVAL_PASS_RATE": "0.95"})
    assert (s.mode, s.send_enabled, s.thresholds.min_eval_pass_rate) == ("live", True, 0.95)
    with pytest.raises(ValueError, match="AGENT_MODE"):
        ModeSettings.from_env({"AGENT_MODE": "yolo"})
    with pytest.raises(ValueError, match="AGENT_SEND_ENABLED"):
        ModeSettings.from_env({"AGENT_SEND_ENABLED": "maybe"})


def test_shadow_is_the_default(ledger, tmp_path):
    assert apply_startup_mode(ledger, ModeSettings(), home=tmp_path, as_of=AS_OF) == "shadow"
    assert ledger.mode() == "shadow"
    assert ledger.kill_switch_engaged()  # AGENT_SEND_ENABLED defaults to false


def test_live_refused_without_eval_results(ledger, tmp_path):
    _shadow_decisions(ledger, 10, 0)
    with pytest.raises(LiveModeRefused) as exc:
        apply_startup_mode(ledger, ModeSettings(mode="live", send_enabled=True), home=tmp_path, as_of=AS_OF)
    message = str(exc.value)
    assert "eval gate FAILED" in message and "no eval results" in message
    assert "shadow_agreement gate passed: 1.000" in message
    assert ledger.mode() == "shadow"
    assert any(r.action == "mode.refused" for r in ledger.audit_rows(subject_type="ledger"))


def test_live_refused_when_eval_pass_rate_is_low(ledger, tmp_path):
    _shadow_decisions(ledger, 10, 0)
    _evals(ledger, 0.85)
    with pytest.raises(LiveModeRefused, match=r"eval gate FAILED: 0\.850 < 0\.90"):
        apply_startup_mode(ledger, ModeSettings(mode="live"), home=tmp_path, as_of=AS_OF)


def test_live_refused_when_shadow_agreement_is_low_or_missing(ledger, tmp_path):
    _evals(ledger, 0.97)
    with pytest.raises(LiveModeRefused, match="shadow_agreement gate FAILED: missing.*0 shadow decision"):
        apply_startup_mode(ledger, ModeSettings(mode="live"), home=tmp_path, as_of=AS_OF)
    _shadow_decisions(ledger, 8, 2)
    with pytest.raises(LiveModeRefused, match=r"shadow_agreement gate FAILED: 0\.800 < 0\.90.*8 approved of 10"):
        apply_startup_mode(ledger, ModeSettings(mode="live"), home=tmp_path, as_of=AS_OF)
    # Old decisions fall out of the 10-business-day window.
    with pytest.raises(LiveModeRefused, match="0 shadow decision"):
        apply_startup_mode(ledger, ModeSettings(mode="live"), home=tmp_path, as_of=AS_OF + dt.timedelta(days=30))
    # Thresholds are configuration.
    lenient = ModeSettings(mode="live", thresholds=GateThresholds(min_shadow_agreement=0.75))
    assert apply_startup_mode(ledger, lenient, home=tmp_path, as_of=AS_OF) == "live"


def test_live_when_both_gates_pass_and_the_env_kill_switch(ledger, tmp_path):
    _shadow_decisions(ledger, 19, 1)
    _evals(ledger, 0.93)
    assert apply_startup_mode(ledger, ModeSettings(mode="live", send_enabled=False), home=tmp_path, as_of=AS_OF) == "live"
    assert ledger.mode() == "live" and ledger.sends_allowed()[0] is False  # AGENT_SEND_ENABLED=false
    apply_startup_mode(ledger, ModeSettings(mode="live", send_enabled=True), home=tmp_path, as_of=AS_OF)
    assert ledger.sends_allowed() == (True, "live")
    # A kill switch pulled by a person is never released by configuration.
    ledger.engage_kill_switch(actor="ops", reason="incident")
    apply_startup_mode(ledger, ModeSettings(mode="live", send_enabled=True), home=tmp_path, as_of=AS_OF)
    assert ledger.kill_switch_engaged()
    # And going back to shadow needs no gate.
    assert apply_startup_mode(ledger, ModeSettings(mode="shadow", send_enabled=True), home=tmp_path, as_of=AS_OF) == "shadow"
