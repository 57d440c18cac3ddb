"""The manager review loop end to end on the session's real pipeline run (issue acceptance):
digests in the outbox, a decision from the terminal, shadow mode sending nothing, live mode refused
without its gates, an approved item published exactly once to the outbox and the local CRM notes
table, and an audit trail that verifies."""

from __future__ import annotations

import getpass
import sqlite3

import pytest
from typer.testing import CliRunner

from agents.ledger import open_ledger
from sales_supervisor.cli import app

pytestmark = pytest.mark.slow
runner = CliRunner()


def _cli(*args: str, home) -> object:
    return runner.invoke(app, [*args, "--home", str(home)])


def _notes(home) -> list[tuple]:
    path = home / "crm_notes.sqlite"
    if not path.exists():
        return []
    with sqlite3.connect(path) as con:
        return con.execute("select idempotency_key, opportunity_id, author, body from crm_notes").fetchall()


def test_digest_decide_publish_exactly_once_and_audit(built_warehouse, monkeypatch):
    home = built_warehouse.home
    as_of = built_warehouse.settings.effective_as_of().isoformat()
    digests = sorted((home / "outbox" / "digests" / as_of).glob("*.md"))
    assert [p.stem for p in digests] == ["mgr-0001", "mgr-0002", "mgr-0003"]
    assert "reps reviewed" in digests[0].read_text()

    (home / "identities.yaml").write_text(f"users:\n  {getpass.getuser()}: mgr-0001\n")  # the CLI's operator
    with open_ledger(home=home) as ledger:
        items = ledger.pending_items("mgr-0001")
    assert len(items) >= 2
    first, second = items[0], items[1]

    # shadow (the default): the decision is recorded, nothing reaches the rep or the CRM
    assert _cli("review", "approve", first.item_id, "--as", "mgr-0001", home=home).exit_code == 0
    shadow = _cli("publish", home=home)
    assert shadow.exit_code == 0, shadow.output
    assert "shadow" in shadow.output and _notes(home) == []

    # live is refused while the eval gate has no result
    monkeypatch.setenv("AGENT_MODE", "live")
    monkeypatch.setenv("AGENT_SEND_ENABLED", "true")
    refused = _cli("publish", home=home)
    assert refused.exit_code == 1 and "eval" in refused.output.lower()
    assert _notes(home) == []

    # with the eval gate passed (template drafter, stored result) and 1 of 1 shadow approvals, live starts
    assert _cli("eval", "--drafter", "template", home=home).exit_code == 0
    started = _cli("publish", home=home)
    assert started.exit_code == 0, started.output
    assert _notes(home) == []  # the shadow approval is never published retroactively

    assert _cli("review", "approve", second.item_id, "--as", "mgr-0001", home=home).exit_code == 0
    published = _cli("publish", home=home)
    assert published.exit_code == 0, published.output
    notes = _notes(home)
    assert len(notes) == 1
    key, opportunity_id, author, body = notes[0]
    assert opportunity_id == second.opportunity_id and "mgr-0001" in body and key in body
    assert list((home / "outbox" / "messages" / "live").rglob(f"{second.item_id}.json"))

    # a retry publishes nothing twice
    assert _cli("publish", home=home).exit_code == 0
    assert _notes(home) == notes

    # the kill switch stops sends at once
    monkeypatch.setenv("AGENT_SEND_ENABLED", "false")
    third = items[2] if len(items) > 2 else None
    if third is not None:
        _cli("review", "approve", third.item_id, "--as", "mgr-0001", home=home)
        _cli("publish", home=home)
        assert _notes(home) == notes

    verified = _cli("audit", "verify", home=home)
    assert verified.exit_code == 0 and "audit trail OK" in verified.output
