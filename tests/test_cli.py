"""The command line as a person uses it: help text, review decisions, audit verify."""

from __future__ import annotations

import datetime as dt
import getpass
import sqlite3

import pytest
from typer.testing import CliRunner

from agents.ledger import open_ledger
from sales_supervisor.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    "args",
    [[], ["run"], ["demo"], ["generate-demo-crm"], ["audit"], ["audit", "verify"], ["review"], ["review", "list"],
     ["review", "approve"], ["review", "edit"], ["review", "dismiss"], ["audit", "anchor"], ["risk", "snooze"]],
)
def test_every_command_has_help(args):
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


@pytest.fixture
def ledger_home(tmp_path):
    with open_ledger(home=tmp_path) as ledger:
        digest = ledger.create_digest("run-1", "mgr-0001", dt.date(2026, 10, 1))
        item = ledger.add_item(
            digest.digest_id,
            flag_id="flag_1",
            rule_id="stalled_in_stage",
            severity="high",
            draft={"action": "Book the executive-sponsor call with Dana Lee by 2026-10-05."},
            evidence={"crm_records": ["opp-000001"]},
            opportunity_id="opp-000001",
            rep_id="rep-0001",
        )
    # The CLI establishes who runs it (issue 11): the test's OS user is mgr-0001.
    (tmp_path / "identities.yaml").write_text(f"users:\n  {getpass.getuser()}: mgr-0001\n")
    return tmp_path, item.item_id


def test_review_lists_and_records_an_approval_by_the_manager(ledger_home):
    home, item_id = ledger_home
    listed = runner.invoke(app, ["review", "list", "--home", str(home)])
    assert listed.exit_code == 0 and item_id in listed.output and "stalled_in_stage" in listed.output
    approved = runner.invoke(app, ["review", "approve", item_id, "--as", "mgr-0001", "--home", str(home)])
    assert approved.exit_code == 0, approved.output
    assert f"Recorded: approve of {item_id} by mgr-0001" in approved.output
    assert "No pending items" in runner.invoke(app, ["review", "list", "--home", str(home)]).output
    again = runner.invoke(app, ["review", "dismiss", item_id, "--as", "mgr-0001", "--home", str(home)])
    assert again.exit_code == 4


def test_a_decision_by_someone_else_is_refused_and_audited(ledger_home):
    home, item_id = ledger_home
    refused = runner.invoke(app, ["review", "approve", item_id, "--as", "rep-0002", "--home", str(home)])
    assert refused.exit_code == 3
    with open_ledger(home=home) as ledger:
        assert ledger.get_decision(item_id) is None
        actions = [row.action for row in ledger.audit_rows()]
    assert any("refus" in a or "denied" in a or "not_authorised" in a for a in actions), actions


def test_audit_verify_passes_then_fails_after_a_row_is_edited_by_hand(ledger_home):
    home, item_id = ledger_home
    runner.invoke(app, ["review", "edit", item_id, "--as", "mgr-0001", "--text", "Call Dana Lee by 2026-10-06.", "--home", str(home)])
    ok = runner.invoke(app, ["audit", "verify", "--home", str(home)])
    assert ok.exit_code == 0 and "audit trail OK" in ok.output
    con = sqlite3.connect(home / "ledger.sqlite")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("update audit set actor = 'someone' where seq = 2")
    # someone with database access drops the guard and edits history
    con.execute("drop trigger audit_refuse_update")
    con.execute("update audit set actor = 'someone' where seq = 2")
    con.commit()
    con.close()
    tampered = runner.invoke(app, ["audit", "verify", "--home", str(home)])
    assert tampered.exit_code == 1
    assert "TAMPERED" in tampered.output and "seq 2: row altered" in tampered.output


def test_snooze_is_only_for_the_deals_manager_and_checks_its_input(ledger_home):
    home, item_id = ledger_home
    args = ["risk", "snooze", "opp-000001", "--until", "2026-10-20", "--reason", "on holiday", "--home", str(home)]
    assert runner.invoke(app, [*args, "--as", "mgr-0002"]).exit_code == 3  # not the deal's manager
    assert runner.invoke(app, ["risk", "snooze", "opp-999999", "--until", "2026-10-20", "--reason", "x",
                               "--as", "mgr-0001", "--home", str(home)]).exit_code == 2  # never flagged
    past = runner.invoke(app, ["risk", "snooze", "opp-000001", "--until", "2026-09-01", "--reason", "x",
                               "--as", "mgr-0001", "--home", str(home)])
    assert past.exit_code == 2 and "not after the flag's date" in past.output
    unknown_rule = runner.invoke(app, [*args, "--as", "mgr-0001", "--rule", "nope"])
    assert unknown_rule.exit_code == 2 and "Unknown rule 'nope'" in unknown_rule.output
    ok = runner.invoke(app, [*args, "--as", "mgr-0001", "--rule", "stalled_in_stage"])
    assert ok.exit_code == 0, ok.output
    with open_ledger(home=home) as ledger:
        snoozes = ledger.active_snoozes(dt.date(2026, 10, 1))
        actions = [row.action for row in ledger.audit_rows()]
    assert [(s.opportunity_id, s.rule_id, s.by) for s in snoozes] == [("opp-000001", "stalled_in_stage", "mgr-0001")]
    assert "snooze.refused" in actions


def test_an_item_id_prefix_works_and_a_new_digest_supersedes_old_undecided_items(ledger_home):
    home, item_id = ledger_home
    with open_ledger(home=home) as ledger:
        newer = ledger.create_digest("run-2", "mgr-0001", dt.date(2026, 10, 2))
        fresh = ledger.add_item(newer.digest_id, flag_id="flag_2", rule_id="amount_swing", severity="medium",
                                draft={"action": "Confirm the new amount with Dana Lee by 2026-10-06."},
                                evidence={"deal_name": "Acme renewal"}, opportunity_id="opp-000002", rep_id="rep-0001")
    listed = runner.invoke(app, ["review", "list", "--home", str(home)])
    assert fresh.item_id in listed.output and item_id not in listed.output and "Acme renewal" in listed.output
    assert item_id in runner.invoke(app, ["review", "list", "--all", "--home", str(home)]).output
    approved = runner.invoke(app, ["review", "approve", fresh.item_id[:10], "--as", "mgr-0001", "--home", str(home)])
    assert approved.exit_code == 0 and fresh.item_id in approved.output
    empty_edit = runner.invoke(app, ["review", "edit", item_id, "--as", "mgr-0001", "--text", " ", "--home", str(home)])
    assert empty_edit.exit_code == 2 and "--text is empty" in empty_edit.output
