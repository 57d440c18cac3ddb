"""The eval gate: the golden set's coverage, the template drafter at 100%, a bad drafter failing the gate."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

from agents.drafting import CoachingDraft, DraftOutcome, TemplateDrafter
from evals.run import GOLDEN_PATH, load_golden, main, run_eval

RULES = {"stalled_in_stage", "stale_cycle", "no_recent_activity", "meeting_cadence_drop", "no_decision_maker",
         "close_date_slipped", "amount_swing", "missing_required_fields", "rep_overload"}


def test_golden_set_covers_rules_segments_and_adversarial_inputs():
    cases = load_golden()
    assert len(cases) >= 40
    assert len({c["id"] for c in cases}) == len(cases)
    rules = {c["flag"]["rule_id"] for c in cases}
    assert RULES <= rules and any(r.startswith("custom:") for r in rules)
    assert {"smb", "mid_market", "enterprise"} <= {c["flag"]["segment"] for c in cases}
    tags = Counter(t for c in cases for t in c["tags"])
    assert tags["injection"] >= 5 and tags["missing_data"] >= 4 and tags["conflicting"] >= 3
    assert all(c["expect"].get("must_cite") and c["expect"].get("actor") for c in cases)


def test_template_drafter_passes_every_case(tmp_path):
    out = tmp_path / "eval.json"
    report = run_eval(TemplateDrafter(), GOLDEN_PATH, out_path=out)
    failing = [(r.case_id, r.failures) for r in report.results if not r.passed]
    assert failing == []
    assert report.pass_rate == 1.0 and report.gate_passed
    assert all(rate == 1.0 for rate in report.property_pass_rates.values())
    stored = json.loads(out.read_text())
    assert stored["pass_rate"] == 1.0 and stored["drafter"] == "template" and len(stored["results"]) == report.cases


def test_default_report_path_is_under_the_state_home(monkeypatch, tmp_path):
    monkeypatch.setenv("SALES_SUPERVISOR_HOME", str(tmp_path))
    assert main(["--drafter", "template"]) == 0
    assert json.loads((tmp_path / "evals" / "latest.json").read_text())["gate_passed"] is True


class GenericAdviceDrafter:
    """A bad drafter: cites correctly but gives generic advice. The fallback must not hide it."""

    name = "claude:stub-generic"

    def draft(self, packets, *, feedback=None, budget=None):
        out = []
        for p in packets:
            due = p.as_of + dt.timedelta(days=3)
            out.append(DraftOutcome(packet_id=p.packet_id, draft=CoachingDraft(
                action=f"Follow up with the customer and keep pushing, by {due.isoformat()}.",
                due_date=due, actor="rep", rationale="Deals need attention to stay engaged.",
                cited_ids=[p.crm_record_ids[0], p.semantic_query_ids[0]], confidence=0.5, drafter=self.name)))
        return out


def test_a_generic_drafter_fails_the_gate(tmp_path, capsys):
    rc = main(["--out", str(tmp_path / "bad.json")], drafter=GenericAdviceDrafter())
    assert rc != 0
    report = json.loads((tmp_path / "bad.json").read_text())
    assert report["pass_rate"] < 0.9 and report["gate_passed"] is False
    assert report["property_pass_rates"]["own_draft"] == 0.0  # every item fell back to the template
    assert "FAIL" in capsys.readouterr().out


def test_the_stored_eval_result_is_what_the_live_gate_reads(tmp_path):
    """The contract between the eval runner and the live-mode gate: the report, stored in the ledger per drafter."""
    from agents.drafting import TemplateDrafter
    from agents.ledger import open_ledger
    from agents.review.modes import eval_gate
    from evals.run import GOLDEN_PATH, run_eval

    out = tmp_path / "evals" / "latest.json"
    report = run_eval(TemplateDrafter(), GOLDEN_PATH, out_path=out, gate=0.9)
    with open_ledger(home=tmp_path) as ledger:
        ledger.record_eval(report.drafter, report.model_dump(mode="json"), actor="test")
        gate = eval_gate(ledger, "template", 0.9)
        assert gate.passed and gate.value == 1.0
        assert not eval_gate(ledger, "template", 1.01).passed
