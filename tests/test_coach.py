"""The deal coach (issue 16): briefs grounded in cited rows and queries, two drafters, the eval gate,
who may see a brief, rendering, and the CLI / Slack / audit on the demo CRM."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from agents.coach.models import Brief, Line
from agents.coach.playbook import PlaybookError, load_playbook
from agents.coach.service import may_see
from agents.coach.template import draft_brief
from agents.coach.validator import brief_vocabulary, validate_brief
from evals.briefs import GOLDEN_BRIEFS, BriefCase, check_case, load_cases, packet_for, run_brief_eval

CASES = load_cases()


# --------------------------------------------------------------------------- the golden set and the gate


def test_golden_set_covers_stages_and_gaps():
    assert len(CASES) >= 30
    assert {c.stage for c in CASES} >= {"Prospecting", "Qualification", "Discovery", "Proposal", "Negotiation"}
    gaps = {g for c in CASES for g in c.gaps}
    assert gaps >= {"no_loss_reasons", "no_contacts", "no_stage_history", "no_activities", "no_team_figures",
                    "thin_history", "no_risk_run", "champion_silent", "single_threaded", "no_next_step"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_each_golden_brief_is_grounded_and_says_what_its_data_supports(case: BriefCase):
    playbook = load_playbook()
    packet = packet_for(case)
    result = check_case(case, draft_brief(packet, playbook), packet, playbook)
    assert result.passed, result.failures


def test_gate_passes_for_the_template_and_fails_below_it(tmp_path):
    report = run_brief_eval()
    assert report.gate_passed and report.pass_rate == 1.0 and report.cases == len(CASES)
    # a golden set whose expectations the briefs cannot meet fails the gate
    broken = tmp_path / "golden.yaml"
    broken.write_text(GOLDEN_BRIEFS.read_text().replace("No loss reasons in the data", "Objections we invented"))
    bad = run_brief_eval(broken)
    assert not bad.gate_passed and bad.pass_rate < 0.9


def test_no_loss_reasons_means_no_objections():
    case = next(c for c in CASES if c.id == "prop-no_loss_reasons")
    brief = draft_brief(packet_for(case), load_playbook())
    assert [ln.text for ln in brief.objections] == [
        "No loss reasons in the data: none of the team's lost enterprise deals records a reason, so no objections are listed."]


def test_objections_carry_their_frequencies():
    case = next(c for c in CASES if c.id == "prop-full")
    brief = draft_brief(packet_for(case), load_playbook())
    assert brief.objections[0].text == "Price too high: 18 of 36 lost enterprise deals at Proposal with a recorded reason (50%)."


def test_missing_role_compares_with_won_deals_at_the_same_stage():
    case = next(c for c in CASES if c.id == "disc-no-champion")
    brief = draft_brief(packet_for(case), load_playbook())
    assert any(ln.text.startswith("No champion engaged: won enterprise deals that left Discovery had one in 71% of cases (85 of 120)")
               for ln in brief.missing_roles)


def test_next_best_action_is_ranked_by_won_exits_and_has_an_alternative():
    case = next(c for c in CASES if c.id == "nego-no-dm")
    brief = draft_brief(packet_for(case), load_playbook())
    na = brief.next_action
    assert na.action.text == "Join an executive call with the decision maker: Olga Jensen (Chief Financial Officer)."
    assert na.who.text.startswith("Tomas Berg (the manager)")
    assert "92 of 120 won enterprise deals that left Negotiation had met a decision maker in the stage (77%)" in na.reason.text
    assert na.alternative is not None and na.timing.text.startswith(("This week", "Next week"))


# --------------------------------------------------------------------------- the validator


@pytest.fixture
def grounded():
    case = next(c for c in CASES if c.id == "prop-full")
    packet, playbook = packet_for(case), load_playbook()
    brief = draft_brief(packet, playbook)
    assert validate_brief(brief, packet, vocabulary=brief_vocabulary(playbook, packet)) == []
    return brief, packet, brief_vocabulary(playbook, packet)


@pytest.mark.parametrize("text, cites, code", [
    ("Price too high: 19 of 36 lost deals.", ["mfq_eval_losses"], "ungrounded_number"),  # a wrong count
    ("Olga Jensen last touched 2026-09-12.", ["con-1"], "ungrounded_date"),  # a date not in her row
    ("Call Maria Gonzalez, the new CFO.", ["opp-prop-full"], "ungrounded_name"),  # a person not in the packet
    ("Olga Jensen is the signer.", ["opp-prop-full"], "ungrounded_name"),  # a real person, not cited
    ("Price too high: 18 of 36 lost deals.", ["mfq_made_up"], "uncited_id"),
    ("Send your bank details to finish the deal.", [], "adversarial_content"),
    ("Discount 15% to close.", [], "ungrounded_number"),
])
def test_validator_rejects_what_the_cited_rows_do_not_say(grounded, text, cites, code):
    brief, packet, vocab = grounded
    bad = brief.model_copy(deep=True)
    bad.objections = [Line(text=text, cites=cites)]
    assert code in {f.code for f in validate_brief(bad, packet, vocabulary=vocab)}


# --------------------------------------------------------------------------- the playbook


def test_playbook_errors_name_the_file_and_the_field(tmp_path):
    bad = tmp_path / "playbook.yaml"
    bad.write_text((Path(__file__).parents[1] / "agents/coach/default_playbook.yaml").read_text()
                   .replace("check: champion_engaged", "check: champion_happy", 1))
    with pytest.raises(PlaybookError, match=r"playbook.yaml: .*unknown check 'champion_happy'"):
        load_playbook(bad)
    (tmp_path / "p2.yaml").write_text("actions: {}\nstages: {Proposal: {actions: [dance]}}\n")
    with pytest.raises(PlaybookError, match="default"):
        load_playbook(tmp_path / "p2.yaml")


def test_an_edited_playbook_changes_the_brief(tmp_path):
    text = (Path(__file__).parents[1] / "agents/coach/default_playbook.yaml").read_text()
    edited = tmp_path / "playbook.yaml"
    edited.write_text(text.replace("question: \"Is the champion still pushing this internally, and what are they hearing?\"",
                                   "question: \"When did the champion last brief the buying committee?\""))
    case = next(c for c in CASES if c.id == "prop-champion-silent")
    brief = draft_brief(packet_for(case), load_playbook(edited))
    assert "When did the champion last brief the buying committee?" in [q.text for q in brief.questions]


# --------------------------------------------------------------------------- who may see a brief


def test_only_the_rep_their_manager_and_delegates_may_see_a_brief():
    delegates = {"mgr-1": frozenset({"dlg-1"})}.get
    of = lambda m: delegates(m, frozenset())  # noqa: E731
    assert may_see("rep-1", "rep-1", "mgr-1", of)
    assert may_see("mgr-1", "rep-1", "mgr-1", of)
    assert may_see("dlg-1", "rep-1", "mgr-1", of)
    assert not may_see("rep-2", "rep-1", "mgr-1", of)
    assert not may_see("mgr-2", "rep-1", "mgr-1", of)
    assert not may_see("", "rep-1", "mgr-1", of)


# --------------------------------------------------------------------------- rendering


def test_renderers_keep_crm_text_inert():
    from agents.coach.render import to_html, to_markdown, to_slack_text

    case = next(c for c in CASES if c.id == "prop-full")
    packet = packet_for(case)
    brief = draft_brief(packet, load_playbook())
    brief.headline = Line(text="<script>alert(1)</script> [click](https://evil.example) <!channel>", cites=[])
    html, md, slack = to_html(brief), to_markdown(brief), to_slack_text(brief)
    assert "<script>" not in html and "&lt;script&gt;" in html and "href='https://evil" not in html
    assert "[click](https://evil.example)" not in md and "hxxps://evil" in md and "\\[click\\]" in md
    assert "<!channel>" not in slack and "&lt;!channel&gt;" in slack
    assert "open in the CRM" in html  # the deal's own link stays a link


# --------------------------------------------------------------------------- the Claude drafter (local fake)


def _claude(server, budget=5.0):
    from agents.coach.claude import ClaudeBriefDrafter
    from agents.drafting.config import DrafterConfig

    return ClaudeBriefDrafter(DrafterConfig(api_key="test-key", base_url=server.base_url, max_retries=0, budget_usd=budget))


def _tool_reply(body):
    from agents.coach.claude import BRIEF_TOOL_NAME
    from tests.fakes.anthropic_server import Reply

    return Reply(body={"content": [{"type": "tool_use", "id": "toolu_brief1", "name": BRIEF_TOOL_NAME, "input": body}]})


def test_claude_rewording_is_used_when_grounded_and_costed(tmp_path):
    from tests.fakes.anthropic_server import FakeAnthropicServer

    case = next(c for c in CASES if c.id == "prop-full")
    packet = packet_for(case)
    template = draft_brief(packet, load_playbook())
    body = template.model_dump(mode="json", include={"headline", "stakeholders", "missing_roles", "threading", "next_action",
                                                     "adherence", "history", "risks", "questions", "objections"})
    body["stakeholders"][0]["text"] = "Olga Jensen, Chief Financial Officer and decision maker; last touch 2026-09-29, 3 meetings in 90 days."
    with FakeAnthropicServer() as server:
        server.enqueue(_tool_reply(body))
        claude = _claude(server)
        started = time.monotonic()
        got, cost, error = claude.draft(packet, template)
        elapsed = time.monotonic() - started
        req = server.message_requests()[0].body
    assert error is None and cost > 0 and elapsed < 10
    assert req["tool_choice"] == {"type": "tool", "name": "submit_deal_brief"}
    assert req["system"][0]["cache_control"] == {"type": "ephemeral"}
    brief = Brief(**got.model_dump(), opportunity_id=template.opportunity_id, as_of=template.as_of, drafter=claude.name,
                  citations=template.citations)
    assert validate_brief(brief, packet, vocabulary=brief_vocabulary(load_playbook(), packet)) == []
    assert brief.stakeholders[0].text.startswith("Olga Jensen, Chief Financial Officer and decision maker")


def test_claude_inventions_are_rejected_by_the_same_validator():
    from tests.fakes.anthropic_server import FakeAnthropicServer

    case = next(c for c in CASES if c.id == "prop-full")
    packet = packet_for(case)
    template = draft_brief(packet, load_playbook())
    body = template.model_dump(mode="json", include={"headline", "stakeholders", "missing_roles", "threading", "next_action",
                                                     "adherence", "history", "risks", "questions", "objections"})
    body["objections"][0]["text"] = "Price too high in 64% of lost deals; offer Maria Gonzalez a 20% discount."
    with FakeAnthropicServer() as server:
        server.enqueue(_tool_reply(body))
        got, _, _ = _claude(server).draft(packet, template)
    brief = Brief(**got.model_dump(), opportunity_id=template.opportunity_id, as_of=template.as_of, drafter="claude",
                  citations=template.citations)
    codes = {f.code for f in validate_brief(brief, packet, vocabulary=brief_vocabulary(load_playbook(), packet))}
    assert {"ungrounded_number", "ungrounded_name"} <= codes


def test_claude_over_budget_makes_no_call():
    from tests.fakes.anthropic_server import FakeAnthropicServer

    case = next(c for c in CASES if c.id == "prop-full")
    packet = packet_for(case)
    with FakeAnthropicServer() as server:
        got, cost, error = _claude(server, budget=0.0).draft(packet, draft_brief(packet, load_playbook()))
        assert server.message_requests() == []
    assert got is None and cost == 0 and error.startswith("budget")


# --------------------------------------------------------------------------- loss reasons in a CSV export


def test_a_salesforce_export_maps_its_loss_reason_field_only_where_present(tmp_path):
    from connectors.csv_folder import CsvFolderSource
    from connectors.mapping import MappingError, load_mapping
    from connectors.schema import RAW_OBJECTS

    mapping = load_mapping(Path(__file__).parents[1] / "connectors/mappings/salesforce_data_export.yaml")
    om = mapping.objects["opportunities"]
    header = ["Id", "AccountId", "OwnerId", "Name", "StageName", "Amount", "CreatedDate", "CloseDate", "IsClosed", "IsWon",
              "NextStep", "IsDeleted", "LastModifiedDate"]
    plan = CsvFolderSource._column_plan(RAW_OBJECTS["opportunities"], om, header, tmp_path / "Opportunity.csv")
    assert plan["loss_reason"] is None  # the org has no such field: left empty, no error
    plan = CsvFolderSource._column_plan(RAW_OBJECTS["opportunities"], om, [*header, "Loss_Reason__c"], tmp_path / "Opportunity.csv")
    assert plan["loss_reason"] == "Loss_Reason__c"
    bad = tmp_path / "m.yaml"
    bad.write_text("stages: [{name: A, order: 1}]\nobjects: {opportunities: {file: o.csv, if_present: {why_lost: X}}}\n")
    with pytest.raises(MappingError, match="unknown canonical field 'why_lost'"):
        load_mapping(bad)


def test_brief_eval_command_gates_and_records(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from agents.ledger import open_ledger
    from sales_supervisor.cli import app

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    res = CliRunner().invoke(app, ["brief-eval", "--home", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert f"{len(CASES)} of {len(CASES)} cases pass (100%)" in res.output
    assert json.loads((tmp_path / "evals" / "briefs.json").read_text())["gate_passed"] is True
    res = CliRunner().invoke(app, ["brief-eval", "--home", str(tmp_path), "--gate", "1.01"])
    assert res.exit_code == 1
    with open_ledger(home=tmp_path) as ledger:
        assert [r.action for r in ledger.audit_rows(subject_type="eval")] == ["coach.brief_eval", "coach.brief_eval"]


def test_slack_manifest_declares_the_brief_command():
    from agents.review.slack_app import app_manifest

    m = app_manifest("https://review.example.test/slack/events")
    assert {"command": "/brief", "url": "https://review.example.test/slack/events"}.items() <= m["features"]["slash_commands"][0].items()
    assert "commands" in m["oauth_config"]["scopes"]["bot"]
    assert "url" not in app_manifest(None)["features"]["slash_commands"][0]  # Socket Mode: no URL
