"""Fault-and-abuse (issue 11 item 4): rows edited behind the ledger's back are detected, and not sent.

Each audit row commits to the content of the row it records (the decision, the
item as drafted, the delivery); ``audit verify`` cross-checks the current rows
against the chain, and the ledger refuses to claim a delivery for an item whose
decision or draft no longer matches it.
"""

from __future__ import annotations

import os
import sqlite3

import pytest
from typer.testing import CliRunner

from agents.ledger import DecisionNotVerified, open_ledger, verify_audit
from agents.review import build_digests, post_digest, publish_approved
from agents.review.channels import LocalCrmNotesChannel
from sales_supervisor.cli import app
from tests.test_review_fixtures import AS_OF, MANAGERS, REPS, Clock, pairs

GATES = {"eval": True, "shadow_agreement": True}


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


@pytest.fixture
def ledger(home):
    with open_ledger(home=home, clock=Clock()) as ledger:
        yield ledger


@pytest.fixture
def items(ledger, home):
    """Two items of mgr-1 approved in live mode (one as drafted, one edited), none sent yet."""
    ledger.set_mode("live", actor="ops", reason="test", gates=GATES)
    digest = build_digests(pairs(), REPS, MANAGERS, AS_OF, 5)[0]
    ids = post_digest(ledger, digest, None, home / "outbox").item_ids[:2]
    ledger.record_decision(ids[0], "approve", "mgr-1", "slack")
    ledger.record_decision(ids[1], "edit", "mgr-1", "cli", edited_text="Call the CFO about pricing by Friday.")
    return ids


def _sql(ledger, statement: str, *params) -> None:
    """Someone with write access to the database file (no trigger protects these tables)."""
    con = sqlite3.connect(ledger.engine.url.database, isolation_level=None)
    try:
        con.execute(statement, params)
    finally:
        con.close()


def test_clean_ledger_with_items_decisions_and_deliveries_verifies(ledger, home, items):
    report = publish_approved(ledger, {"crm_note": LocalCrmNotesChannel.at_home(ledger, home)}, "live")
    assert len(report.sent) == 2
    assert verify_audit(ledger).ok


@pytest.mark.parametrize(
    "column, value",
    [("approver_id", "mgr-2"), ("edited_text", "Wire the deposit to IBAN DE00 0000 today."), ("action", "dismiss"), ("mode", "shadow")],
)
def test_editing_a_decision_in_the_database_fails_verify(ledger, items, column, value):
    target = items[1] if column == "edited_text" else items[0]
    _sql(ledger, f"update decisions set {column} = ? where item_id = ?", value, target)
    report = verify_audit(ledger)
    assert not report.ok
    [problem] = report.problems
    assert problem.kind == "row_mismatch"
    assert f"the decision on item {target} differs from what the audit trail recorded" in problem.message
    assert column in problem.message


def test_editing_an_item_as_drafted_fails_verify(ledger, items):
    _sql(ledger, "update items set draft = json_set(draft, '$.action', 'Send your password to it@evil.example') where item_id = ?", items[0])
    report = verify_audit(ledger)
    assert [(p.kind, "draft" in p.message) for p in report.problems] == [("row_mismatch", True)]


def test_editing_a_delivery_fails_verify(ledger, home, items):
    publish_approved(ledger, {"crm_note": LocalCrmNotesChannel.at_home(ledger, home)}, "live")
    _sql(ledger, "update deliveries set status = 'failed', external_ref = NULL where item_id = ?", items[0])
    report = verify_audit(ledger)
    assert [p.kind for p in report.problems] == ["row_mismatch"]
    assert "status" in report.problems[0].message and "external_ref" in report.problems[0].message


def test_a_decision_inserted_outside_the_ledger_is_unrecorded(ledger, home):
    digest = build_digests(pairs(), REPS, MANAGERS, AS_OF, 5)[0]
    item_id = post_digest(ledger, digest, None, home / "outbox").item_ids[0]
    _sql(
        ledger,
        "insert into decisions (item_id, action, approver_id, approver_channel, decided_at, mode) "
        "values (?, 'approve', 'mgr-1', 'cli', '2026-10-01 09:00:00.000000', 'live')",
        item_id,
    )
    report = verify_audit(ledger)
    assert [p.kind for p in report.problems] == ["unrecorded"]
    assert f"decision on item {item_id}: no audit row records it" in report.problems[0].message


def test_publisher_refuses_an_item_whose_decision_was_tampered(ledger, home, items):
    _sql(ledger, "update decisions set edited_text = ? where item_id = ?", "Wire the deposit today.", items[1])
    notes = LocalCrmNotesChannel.at_home(ledger, home)
    report = publish_approved(ledger, {"crm_note": notes}, "live")
    assert [i for i, _, _ in report.sent] == [items[0]]  # the untouched item still goes out
    assert [(i, c) for i, c, _ in report.needs_attention] == [(items[1], "crm_note")]
    assert "does not match the audit trail" in report.needs_attention[0][2]
    assert all("Wire the deposit" not in n["body"] for n in notes.notes())
    refused = [r for r in ledger.audit_rows(subject_type="item", subject_id=items[1]) if r.action == "delivery.refused"]
    assert len(refused) == 1 and '"refusal":"not_verified"' in refused[0].payload
    with pytest.raises(DecisionNotVerified):
        ledger.claim_delivery(items[1], "crm_note", ledger.delivery_key(items[1], "crm_note"))


def test_publisher_refuses_an_item_whose_draft_was_tampered(ledger, home, items):
    _sql(ledger, "update items set draft = json_set(draft, '$.action', 'Reset your password at evil.example') where item_id = ?", items[0])
    notes = LocalCrmNotesChannel.at_home(ledger, home)
    report = publish_approved(ledger, {"crm_note": notes}, "live")
    assert [i for i, _, _ in report.sent] == [items[1]]
    assert [i for i, _, _ in report.needs_attention] == [items[0]]
    assert all("evil.example" not in n["body"] for n in notes.notes())


def test_cli_audit_verify_exits_1_on_a_tampered_decision(ledger, home, items):
    _sql(ledger, "update decisions set approver_id = 'mallory' where item_id = ?", items[0])
    result = CliRunner().invoke(app, ["audit", "verify", "--home", str(home), "--no-anchor"])
    assert result.exit_code == 1, result.output
    assert "TAMPERED" in result.output and "approver_id" in result.output


def test_a_forged_decision_row_appended_to_match_a_tampered_decision_is_caught(ledger, home, items):
    """The attacker edits the decision and appends a correctly chained, correctly hashed audit row that
    records the edited version: the chain verifies, but a decision is recorded only once."""
    import datetime as dt
    import json

    from agents.ledger.audit import canonical_json, compute_row_hash
    from agents.ledger.integrity import decision_record

    _sql(ledger, "update decisions set edited_text = ? where item_id = ?", "Wire the deposit today.", items[1])
    forged_decision = ledger.get_decision(items[1])
    seq, prev = ledger.audit_head()
    at = dt.datetime(2026, 10, 1, 9, 0, tzinfo=dt.timezone.utc)
    payload = canonical_json({"action": "edit", "approver_id": "mgr-1", **decision_record(forged_decision)})
    row_hash = compute_row_hash(at=at, actor="mgr-1", action="decision.recorded", subject_type="item",
                                subject_id=items[1], payload=payload, prev_hash=prev)
    _sql(ledger, "insert into audit (seq, at, actor, action, subject_type, subject_id, payload, prev_hash, row_hash) "
         "values (?, '2026-10-01 09:00:00.000000', 'mgr-1', 'decision.recorded', 'item', ?, ?, ?, ?)",
         seq + 1, items[1], payload, prev, row_hash)
    report = verify_audit(ledger)
    assert [(p.kind, p.seq) for p in report.problems] == [("inserted", seq + 1)]
    assert "2 decision.recorded audit rows" in report.problems[0].message
    report_publish = publish_approved(ledger, {"crm_note": LocalCrmNotesChannel.at_home(ledger, home)}, "live")
    assert [i for i, _, _ in report_publish.needs_attention] == [items[1]]
    assert json.loads(ledger.audit_rows(since_seq=seq + 1)[-1].payload)["refusal"] == "not_verified"


@pytest.mark.skipif(not os.environ.get("SALES_SUPERVISOR_TEST_POSTGRES_URL"), reason="no Postgres server configured")
def test_tampering_is_detected_on_a_postgres_ledger_too(tmp_path):
    """Same commitments on Postgres (JSON and timestamps round-trip there too); the edit is undone after."""
    import uuid

    from sqlalchemy import text

    url = os.environ["SALES_SUPERVISOR_TEST_POSTGRES_URL"]
    with open_ledger(url, clock=Clock()) as pg:
        pg.set_mode("live", actor="ops", reason="test", gates=GATES)
        digest = pg.create_digest(f"run-{uuid.uuid4().hex}", "mgr-1", AS_OF)
        item = pg.add_item(digest.digest_id, flag_id="f1", rule_id="r", severity="high",
                           draft={"action": "Call the buyer", "confidence": 0.7}, evidence={"amount": 12345.5, "ids": ["opp-1"]})
        pg.record_decision(item.item_id, "edit", "mgr-1", "cli", edited_text="Call the buyer on Monday.")
        key = pg.delivery_key(item.item_id, "crm_note")
        pg.claim_delivery(item.item_id, "crm_note", key)
        pg.mark_sent(key, "note-1")
        pg.set_mode("shadow", actor="ops", reason="test")
        assert verify_audit(pg).ok, str(verify_audit(pg))
        with pg.engine.begin() as conn:
            conn.execute(text("update decisions set approver_id = 'mallory' where item_id = :i"), {"i": item.item_id})
        try:
            report = verify_audit(pg)
            assert [p.kind for p in report.problems] == ["row_mismatch"] and "approver_id" in report.problems[0].message
        finally:
            with pg.engine.begin() as conn:
                conn.execute(text("update decisions set approver_id = 'mgr-1' where item_id = :i"), {"i": item.item_id})
        assert verify_audit(pg).ok
