"""Fault-and-abuse (issue 11 item 7): the eval gate gates what goes live.

Live mode drafts with one drafter and model; only an eval of that drafter
and model, stored in the ledger (audited), opens the gate. A template-drafter
eval, an eval of another model, or a results file on disk does not.
"""

from __future__ import annotations

import json
import sqlite3

import pytest
from typer.testing import CliRunner

from agents.drafting.config import DRAFTER_MODEL_ENV, live_drafter_name
from agents.ledger import open_ledger, verify_audit
from agents.review.modes import LiveModeRefused, ModeSettings, apply_startup_mode
from sales_supervisor.cli import app
from tests.test_review_fixtures import AS_OF, Clock

CLAUDE_ENV = {"AGENT_MODE": "live", "ANTHROPIC_API_KEY": "sk-test-not-real", DRAFTER_MODEL_ENV: "claude-haiku-4-5"}


@pytest.fixture
def ledger(tmp_path):
    with open_ledger(home=tmp_path / "home", clock=Clock()) as ledger:
        digest = ledger.create_digest("run-1", "mgr-1", AS_OF)
        for i in range(10):  # the shadow-agreement gate passes: only the eval gate is under test
            item = ledger.add_item(digest.digest_id, flag_id=f"f{i}", rule_id="r", severity="high", draft={}, evidence={})
            ledger.record_decision(item.item_id, "approve", "mgr-1", "cli")
        yield ledger


def _go_live(ledger, tmp_path, env):
    return apply_startup_mode(ledger, ModeSettings.from_env(env), home=tmp_path / "home", as_of=AS_OF)


def test_live_drafter_is_the_one_the_pipeline_would_use():
    assert live_drafter_name({}) == "template"
    assert live_drafter_name(CLAUDE_ENV) == "claude:claude-haiku-4-5"
    assert ModeSettings.from_env(CLAUDE_ENV).live_drafter == "claude:claude-haiku-4-5"


def test_a_perfect_template_eval_does_not_unlock_live_claude_drafts(ledger, tmp_path):
    ledger.record_eval("template", {"pass_rate": 1.0, "cases": 40}, actor="test")
    with pytest.raises(LiveModeRefused, match="no eval results in the ledger for drafter 'claude:claude-haiku-4-5'"):
        _go_live(ledger, tmp_path, CLAUDE_ENV)
    assert ledger.mode() == "shadow"


def test_an_eval_of_another_model_does_not_count(ledger, tmp_path):
    ledger.record_eval("claude:claude-sonnet-4-5", {"pass_rate": 1.0}, actor="test")
    with pytest.raises(LiveModeRefused, match="claude:claude-haiku-4-5"):
        _go_live(ledger, tmp_path, CLAUDE_ENV)
    ledger.record_eval("claude:claude-haiku-4-5", {"pass_rate": 0.95}, actor="test")
    assert _go_live(ledger, tmp_path, CLAUDE_ENV) == "live"


def test_a_results_file_on_disk_does_not_open_the_gate(ledger, tmp_path):
    path = tmp_path / "home" / "evals" / "latest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pass_rate": 1.0, "drafter": "template"}))
    with pytest.raises(LiveModeRefused, match="eval gate FAILED"):
        _go_live(ledger, tmp_path, {"AGENT_MODE": "live", "AGENT_EVAL_RESULTS": str(path)})


def test_eval_results_are_audited_and_tampering_shows(ledger, tmp_path):
    ledger.record_eval("template", {"pass_rate": 0.5}, actor="test")
    [row] = [r for r in ledger.audit_rows(subject_type="eval") if r.action == "eval.recorded"]
    assert row.subject_id == "template" and json.loads(row.payload)["pass_rate"] == 0.5
    assert verify_audit(ledger).ok
    con = sqlite3.connect(ledger.engine.url.database, isolation_level=None)
    con.execute("update meta set value = json_set(value, '$.pass_rate', 1.0) where key = 'eval:template'")
    con.close()
    report = verify_audit(ledger)
    assert [p.kind for p in report.problems] == ["row_mismatch"] and "eval result for template" in report.problems[0].message


def test_the_eval_reads_the_pipelines_model_setting(monkeypatch):
    from evals.run import _drafter_from_env
    from orchestration.resources import DrafterSettings

    for k, v in CLAUDE_ENV.items():
        monkeypatch.setenv(k, v)
    drafter = _drafter_from_env("claude")
    assert drafter.config.model == DrafterSettings().config().model == "claude-haiku-4-5"
    assert drafter.name == live_drafter_name()


def test_cli_eval_records_the_result_in_the_ledger(tmp_path, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    result = CliRunner().invoke(app, ["eval", "--drafter", "template", "--home", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "Recorded in the ledger for drafter template" in result.output
    with open_ledger(home=tmp_path) as ledger:
        stored = ledger.latest_eval("template")
    assert stored["pass_rate"] == 1.0 and stored["cases"] > 0 and stored["golden_sha256"]
