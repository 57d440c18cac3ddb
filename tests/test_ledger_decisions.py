"""Decisions: who may decide, what a second decision does, and the sensor cursor."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from agents.ledger import AlreadyDecided, NotAuthorised, UnknownItem, open_ledger, verify_audit

AS_OF = dt.date(2026, 10, 1)


@pytest.fixture
def ledger(tmp_path):
    with open_ledger(home=tmp_path, delegates={"mgr-1": ["deputy-1"]}) as ledger:
        yield ledger


def _item(ledger, manager="mgr-1", flag="f-1", run="run-1", rule="stalled_in_stage"):
    digest = ledger.create_digest(run, manager, AS_OF)
    return ledger.add_item(
        digest.digest_id, flag_id=flag, rule_id=rule, severity="high", opportunity_id="opp-1", rep_id="rep-1",
        draft={"text": "Book the exec sponsor call this week."}, evidence={"crm_records": ["opp-1"], "semantic_query_ids": ["q1"]},
    )


def _audit_actions(ledger):
    return [(r.action, r.actor, json.loads(r.payload)) for r in ledger.audit_rows()]


def test_manager_may_decide(ledger):
    item = _item(ledger)
    decision = ledger.record_decision(item.item_id, "approve", "mgr-1", "slack")
    assert (decision.action, decision.approver_id, decision.approver_channel, decision.mode) == ("approve", "mgr-1", "slack", "shadow")
    action, actor, payload = _audit_actions(ledger)[-1]
    assert (action, actor, payload["on_behalf_of"], payload["decision_id"]) == ("decision.recorded", "mgr-1", None, decision.decision_id)
    assert ledger.pending_items() == []


def test_allow_listed_delegate_may_decide(ledger):
    item = _item(ledger)
    decision = ledger.record_decision(item.item_id, "edit", "deputy-1", "cli", edited_text="Call the CFO today.")
    assert decision.edited_text == "Call the CFO today."
    assert _audit_actions(ledger)[-1][2]["on_behalf_of"] == "mgr-1"


def test_anyone_else_is_refused_and_the_attempt_is_audited(ledger):
    item = _item(ledger)
    other = _item(ledger, manager="mgr-2", run="run-1", flag="f-2")
    for approver, target in [("rep-1", item), ("mgr-2", item), ("deputy-1", other)]:
        before = len(ledger.audit_rows())
        with pytest.raises(NotAuthorised, match=f"{approver} may not decide item {target.item_id}"):
            ledger.record_decision(target.item_id, "approve", approver, "slack")
        rows = ledger.audit_rows()
        assert len(rows) == before + 1  # the refusal persisted although the call raised
        action, actor, payload = _audit_actions(ledger)[-1]
        assert (action, actor, payload["refusal"], payload["manager_id"]) == ("decision.refused", approver, "not_authorised", target.manager_id)
        assert ledger.get_decision(target.item_id) is None
    assert verify_audit(ledger).ok


def test_repeating_the_same_decision_is_a_no_op(ledger):
    item = _item(ledger)
    first = ledger.record_decision(item.item_id, "approve", "mgr-1", "slack")
    audit_len = len(ledger.audit_rows())
    again = ledger.record_decision(item.item_id, "approve", "mgr-1", "slack")  # a Slack retry
    assert again.decision_id == first.decision_id
    assert len(ledger.audit_rows()) == audit_len


def test_a_different_second_decision_is_refused_and_audited(ledger):
    item = _item(ledger)
    first = ledger.record_decision(item.item_id, "approve", "mgr-1", "slack")
    with pytest.raises(AlreadyDecided, match="already decided \\(approve by mgr-1") as refused:
        ledger.record_decision(item.item_id, "dismiss", "deputy-1", "cli", reason="changed my mind")
    assert refused.value.decision.decision_id == first.decision_id
    assert ledger.get_decision(item.item_id).action == "approve"
    action, _, payload = _audit_actions(ledger)[-1]
    assert (action, payload["refusal"], payload["decision_id"]) == ("decision.refused", "already_decided", first.decision_id)


def test_decision_validation(ledger):
    item = _item(ledger)
    with pytest.raises(ValueError, match="action must be"):
        ledger.record_decision(item.item_id, "ship_it", "mgr-1", "slack")
    with pytest.raises(ValueError, match="channel must be"):
        ledger.record_decision(item.item_id, "approve", "mgr-1", "email")
    with pytest.raises(ValueError, match="edit needs the edited text"):
        ledger.record_decision(item.item_id, "edit", "mgr-1", "slack", edited_text="  ")
    with pytest.raises(ValueError, match="edited_text goes only with"):
        ledger.record_decision(item.item_id, "approve", "mgr-1", "slack", edited_text="x")
    with pytest.raises(UnknownItem):
        ledger.record_decision("nope", "approve", "mgr-1", "slack")


def test_digests_and_items_are_idempotent_per_run_and_flag(ledger):
    a = _item(ledger)
    b = _item(ledger)  # the same run retried
    assert a.item_id == b.item_id and len(ledger.items_for_digest(a.digest_id)) == 1
    assert [r.action for r in ledger.audit_rows()] == ["digest.created", "item.added"]
    with pytest.raises(ValueError, match="differs from the digest's manager"):
        ledger.add_item(a.digest_id, flag_id="f-9", rule_id="r", severity="low", draft={}, evidence={}, manager_id="mgr-2")


def test_pending_items_by_manager(ledger):
    a = _item(ledger, flag="f-1")
    b = _item(ledger, flag="f-2")
    c = _item(ledger, manager="mgr-2", flag="f-3")
    ledger.record_decision(a.item_id, "dismiss", "mgr-1", "cli", reason="already handled")
    assert [i.item_id for i in ledger.pending_items("mgr-1")] == [b.item_id]
    assert {i.item_id for i in ledger.pending_items()} == {b.item_id, c.item_id}


def test_decisions_since_cursor(ledger):
    items = [_item(ledger, flag=f"f-{n}") for n in range(5)]
    decisions, cursor = ledger.decisions_since(None)
    assert (decisions, cursor) == ([], "0")
    for item in items[:3]:
        ledger.record_decision(item.item_id, "approve", "mgr-1", "slack")
    decisions, cursor = ledger.decisions_since(cursor)
    assert [d.item_id for d in decisions] == [i.item_id for i in items[:3]]
    assert ledger.decisions_since(cursor) == ([], cursor)  # nothing new: same cursor
    for item in items[3:]:
        ledger.record_decision(item.item_id, "dismiss", "mgr-1", "slack")
    page, mid = ledger.decisions_since(cursor, limit=1)
    rest, end = ledger.decisions_since(mid)
    assert [d.item_id for d in page + rest] == [i.item_id for i in items[3:]]
    assert int(end) > int(mid) > int(cursor)
    with pytest.raises(ValueError, match="not a ledger decision cursor"):
        ledger.decisions_since("yesterday")
