"""Learning from dismissals: the keyword taxonomy, candidates (threshold / exclusion / demotion) as policy versions."""

from __future__ import annotations

import datetime as dt

import pytest

from agents.learning.dismissals import (
    Dismissal,
    RuleDismissals,
    categorise,
    dismissals_by_rule,
    propose_candidate,
    rules_over_threshold,
)
from agents.ledger import open_ledger
from agents.review.demotion import demoted_rules
from agents.risk.policy import DEFAULT_POLICY_PATH, load_policy
from agents.risk.versions import PolicyVersionStore, policy_from_text

TEXT = DEFAULT_POLICY_PATH.read_text()
POLICY = load_policy(None)
AT = dt.datetime(2026, 9, 15, 16, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("reason, category", [
    ("Customer is on holiday until mid-September", "timing"),
    ("Already spoke to the champion last week", "already_handled"),
    ("Normal for this account: procurement runs long", "expected"),
    ("Strategic account, the exec sponsor owns it", "account_policy"),
    ("Wrong flag: the meeting is not logged in the CRM", "wrong_data"),
    ("", "other"),
    (None, "other"),
    ("meh", "other"),
])
def test_taxonomy(reason, category):
    assert categorise(reason) == category


def _stats(rule: str, reasons: list[str], decided: int = 10) -> RuleDismissals:
    ds = [Dismissal(f"i{k}", f"opp-{k}", rule, "mgr-1", AT, r, categorise(r)) for k, r in enumerate(reasons)]
    return RuleDismissals(rule, decided, len(ds), ds)


def test_threshold_candidate_keeps_comments_and_changes_only_the_threshold():
    cand = propose_candidate(TEXT, POLICY, _stats("meeting_cadence_drop", ["On holiday", "Out of office", "Next quarter", "meh"]))
    assert cand.kind == "threshold"
    new = policy_from_text(cand.yaml_text)
    before = POLICY.resolve("meeting_cadence_drop").params
    after = new.resolve("meeting_cadence_drop").params
    assert after.baseline_share == pytest.approx(before.baseline_share * 0.75)
    assert after.own_share == pytest.approx(before.own_share * 0.75)
    changed = {(c.rule_id, c.setting) for c in __import__("agents.risk.versions", fromlist=["x"]).threshold_changes(POLICY, new)}
    assert changed == {("meeting_cadence_drop", "params.baseline_share"), ("meeting_cadence_drop", "params.own_share"),
                       ("(policy)", "version")}
    assert "# The shipped risk policy" in cand.yaml_text  # comments kept
    import difflib

    changed = [ln for ln in difflib.unified_diff(TEXT.splitlines(), cand.yaml_text.splitlines(), lineterm="", n=0)
               if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    assert len(changed) == 6, changed  # version, baseline_share, own_share: nothing else moves
    assert new.version == "2026.10.1+meeting_cadence_drop"
    assert cand.evidence["dismissal_rate"] == 0.4 and cand.evidence["reason_categories"]["timing"] == 3
    assert len(cand.evidence["dismissals"]) == 4


def test_exclusion_when_dismissed_deals_share_a_tag_the_approved_ones_lack():
    tags = {f"opp-{k}": ["Strategic"] for k in range(4)} | {"opp-a": [], "opp-b": ["Renewal"]}
    cand = propose_candidate(TEXT, POLICY, _stats("stalled_in_stage", ["Strategic account"] * 4),
                             account_tags=tags, approved_opportunities=["opp-a", "opp-b"])
    assert cand.kind == "exclusion"
    assert policy_from_text(cand.yaml_text).excluded_rules(["Strategic"]).get("stalled_in_stage")


def test_demotion_when_there_is_no_threshold_or_the_data_is_wrong():
    cand = propose_candidate(TEXT, POLICY, _stats("no_decision_maker", ["Legal review expected"] * 4))
    assert cand.kind == "demotion"
    new = policy_from_text(cand.yaml_text)
    assert new.demotion.rules == ["no_decision_maker"]
    assert "no_decision_maker" in demoted_rules(None, new.demotion.lift_floor, always=new.demotion.rules)
    wrong = propose_candidate(TEXT, POLICY, _stats("stalled_in_stage", ["wrong data in the CRM"] * 4))
    assert wrong.kind == "demotion"


def test_rates_over_the_last_four_weeks_from_the_ledger(tmp_path):
    clock = [AT]
    with open_ledger(home=tmp_path, clock=lambda: clock[0]) as ledger:
        d = ledger.create_digest("r1", "mgr-1", dt.date(2026, 9, 14))
        for k in range(6):
            ledger.add_item(d.digest_id, flag_id=f"f{k}", rule_id="meeting_cadence_drop", severity="medium",
                            draft={}, evidence={}, opportunity_id=f"opp-{k}", rep_id="rep-1", manager_id="mgr-1",
                            item_id=f"it-{k}")
            ledger.record_decision(f"it-{k}", "dismiss" if k < 2 else "approve", "mgr-1", "cli",
                                   reason="On holiday" if k < 2 else None)
        clock[0] = AT - dt.timedelta(days=40)  # an old dismissal: outside the window
        ledger.add_item(d.digest_id, flag_id="old", rule_id="meeting_cadence_drop", severity="medium", draft={},
                        evidence={}, opportunity_id="opp-old", rep_id="rep-1", manager_id="mgr-1", item_id="it-old")
        ledger.record_decision("it-old", "dismiss", "mgr-1", "cli", reason="x")
        clock[0] = AT
        ledger.add_item(d.digest_id, flag_id="l5", rule_id="meeting_cadence_drop", severity="medium", draft={},
                        evidence={}, opportunity_id="opp-l5", rep_id="rep-1", manager_id="mgr-1", item_id="it-l5")
        from agents.ledger.autonomy import record_autonomous_approval

        record_autonomous_approval(ledger.uow, "it-l5", gate={"level": 5}, reason="L5")  # nobody's verdict: not counted
        stats = dismissals_by_rule(ledger.uow, dt.date(2026, 10, 1))
    s = stats["meeting_cadence_drop"]
    assert (s.decided, s.dismissed) == (6, 2) and s.rate == pytest.approx(1 / 3)
    assert rules_over_threshold(stats) == [s]
    assert rules_over_threshold(stats, threshold=0.4) == []
    assert rules_over_threshold(stats, min_decisions=7) == []


@pytest.mark.slow
def test_a_rule_dismissed_in_over_30_percent_gets_a_proposal_with_backtest_figures(built_warehouse, tmp_path, monkeypatch):
    """On the demo CRM's planted history, meeting_cadence_drop is dismissed in 8 of 14 decisions in the last 4 weeks."""
    import getpass

    from typer.testing import CliRunner

    from connectors.demo.plant_loop import seed_review_history
    from sales_supervisor.cli import app

    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    identities = tmp_path / "identities.yaml"
    identities.write_text(f"users:\n  {getpass.getuser()}: ops-1\n")
    monkeypatch.setenv("SALES_SUPERVISOR_LEDGER_URL", url)
    monkeypatch.setenv("SALES_SUPERVISOR_IDENTITIES_FILE", str(identities))
    with open_ledger(url) as ledger:
        seed_review_history(ledger, built_warehouse.demo_dir)
    result = CliRunner().invoke(app, ["policy", "propose", "--backtest-months", "1", "--step-days", "14",
                                      "--home", str(built_warehouse.home)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "meeting_cadence_drop: dismissed in 8 of 14 decisions (57%)" in out
    assert "Backtest before:" in out and "Backtest after:" in out and "lift" in out
    assert "Proposed version 1 (not applied)" in out
    for other in ("stalled_in_stage:", "no_decision_maker:", "close_date_slipped:", "no_recent_activity:"):
        assert f"{other} dismissed in" not in out  # below 30%: no proposal
    with open_ledger(url) as ledger:
        store = PolicyVersionStore(ledger)
        (v,) = store.list()
        assert v.status == "proposed" and store.current() is None
        assert v.evidence["backtest"]["before"]["flagged_deals"] >= v.evidence["backtest"]["after"]["flagged_deals"]
        assert len(v.evidence["dismissals"]) == 8
        assert any("meeting_cadence_drop" in c for c in v.evidence["changes"])


def test_claude_groups_reasons_through_the_validator_with_the_keywords_as_fallback():
    import anthropic

    from agents.learning.dismissals import group_reasons_with_claude
    from tests.fakes.anthropic_server import FakeAnthropicServer, Reply

    reasons = ["They are at a trade fair this month", "Already handled", "meh"]
    with FakeAnthropicServer() as server:
        client = anthropic.Anthropic(base_url=server.base_url, api_key="test-key-not-real", max_retries=0)
        server.enqueue(Reply.tool({"categories": [{"index": 0, "category": "timing"},
                                                  {"index": 1, "category": "made_up"}]}))
        cats, problems = group_reasons_with_claude(reasons, client)
        assert cats == ["timing", "already_handled", "other"]  # 1: invalid -> keywords; 2: unanswered -> keywords
        assert any("unknown category 'made_up'" in p for p in problems)
        assert any("not answered" in p for p in problems)
        body = server.requests[-1]["body"] if isinstance(server.requests[-1], dict) else server.requests[-1].body
        assert body["tool_choice"] == {"type": "tool", "name": "group_dismissal_reasons"}
        server.enqueue(Reply.error(500, "api_error", "boom"))
        cats, problems = group_reasons_with_claude(reasons, client)
        assert cats == ["other", "already_handled", "other"] and "keyword taxonomy used" in problems[0]
