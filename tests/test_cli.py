"""The command line as a person uses it: help text, review decisions, audit verify."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest
from typer.testing import CliRunner

from agents.ledger import open_ledger
from sales_supervisor.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    "args",
    [[], ["run"], ["demo"], ["generate-demo-crm"], ["audit"], ["audit", "verify"], ["review"], ["review", "list"],
     ["review", "approve"], ["review", "edit"], ["review", "dismiss"]],
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
