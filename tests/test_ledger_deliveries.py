"""Exactly-once deliveries: the claim/mark protocol, crashes and retries, concurrent claims, and the send gates."""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest

from agents.ledger import (
    DeliveryConflict,
    GateNotPassed,
    Ledger,
    NotApproved,
    SendsHalted,
    open_ledger,
    verify_audit,
)

AS_OF = dt.date(2026, 10, 1)
GATES = {"eval": True, "shadow_agreement": True}


class Clock:
    def __init__(self):
        self.now = dt.datetime(2026, 10, 1, 8, 0, tzinfo=dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kw) -> None:
        self.now += dt.timedelta(**kw)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def ledger(tmp_path, clock):
    with open_ledger(home=tmp_path, clock=clock) as ledger:
        ledger.set_mode("live", actor="ops", reason="gates passed", gates=GATES)
        yield ledger


def _approved(ledger, flag="f-1", action="approve"):
    digest = ledger.create_digest("run-1", "mgr-1", AS_OF)
    item = ledger.add_item(digest.digest_id, flag_id=flag, rule_id="r", severity="medium", draft={"text": "t"}, evidence={})
    extra = {"edited_text": "edited"} if action == "edit" else {}
    ledger.record_decision(item.item_id, action, "mgr-1", "slack", **extra)
    return item


class FakeCrm:
    """A CRM that records notes; the publisher's check-before-write looks for the idempotency marker."""

    def __init__(self):
        self.notes: list[str] = []

    def write_note(self, body: str) -> str:
        self.notes.append(body)
        return f"note-{len(self.notes)}"

    def find_note(self, marker: str) -> str | None:
        return next((f"note-{n}" for n, body in enumerate(self.notes, 1) if marker in body), None)


def publish_crm_note(ledger: Ledger, crm: FakeCrm, item_id: str, *, crash_before_mark=False) -> str | None:
    """The publisher's protocol for a CRM note (at-least-once + check-before-write)."""
    key = Ledger.delivery_key(item_id, "crm_note")
    claim = ledger.claim_delivery(item_id, "crm_note", key)
    if not claim.acquired:
        return None
    ref = crm.find_note(key) if claim.resumed else None
    if ref is None:
        ref = crm.write_note(f"Coaching note ... [{key}]")
    if crash_before_mark:
        raise RuntimeError("worker died")
    ledger.mark_sent(key, ref)
    return ref


def test_two_claims_on_one_key_make_one_row(ledger):
    item = _approved(ledger)
    key = Ledger.delivery_key(item.item_id, "rep_slack")
    first = ledger.claim_delivery(item.item_id, "rep_slack", key)
    second = ledger.claim_delivery(item.item_id, "rep_slack", key)
    assert first.acquired and not second.acquired
    assert second.delivery.delivery_id == first.delivery.delivery_id
    assert len(ledger.deliveries_for(item.item_id)) == 1
    ledger.mark_sent(key, "ts-1")
    third = ledger.claim_delivery(item.item_id, "rep_slack", key)
    assert (third.acquired, third.already_sent, third.delivery.external_ref) == (False, True, "ts-1")
    assert ledger.mark_sent(key, "ts-other").external_ref == "ts-1"  # marking again changes nothing


def test_crash_after_claim_then_retry_sends_once(ledger, clock):
    item = _approved(ledger)
    crm = FakeCrm()
    key = Ledger.delivery_key(item.item_id, "crm_note")
    ledger.claim_delivery(item.item_id, "crm_note", key)  # the worker claims, then dies before sending
    assert publish_crm_note(ledger, crm, item.item_id) is None  # lease still live: nobody else sends
    clock.advance(minutes=6)  # lease expired
    assert publish_crm_note(ledger, crm, item.item_id) == "note-1"
    assert publish_crm_note(ledger, crm, item.item_id) is None
    assert len(crm.notes) == 1
    delivery = ledger.get_delivery(key)
    assert (delivery.status, delivery.attempts, delivery.external_ref) == ("sent", 2, "note-1")


def test_crash_after_send_before_mark_is_found_by_check_before_write(ledger, clock):
    item = _approved(ledger)
    crm = FakeCrm()
    with pytest.raises(RuntimeError):
        publish_crm_note(ledger, crm, item.item_id, crash_before_mark=True)
    clock.advance(minutes=6)
    assert publish_crm_note(ledger, crm, item.item_id) == "note-1"  # resumed: found the marker, did not write
    assert len(crm.notes) == 1
    actions = [r.action for r in ledger.audit_rows(subject_type="delivery")]
    assert actions == ["delivery.claimed", "delivery.reclaimed", "delivery.sent"]
    assert json.loads(ledger.audit_rows(subject_type="delivery")[1].payload)["previous_status"] == "pending"


def test_failed_delivery_is_retried_and_counted(ledger):
    item = _approved(ledger)
    key = Ledger.delivery_key(item.item_id, "rep_email")
    ledger.claim_delivery(item.item_id, "rep_email", key)
    ledger.mark_failed(key, "SMTP 451 try later")
    retry = ledger.claim_delivery(item.item_id, "rep_email", key)
    assert (retry.acquired, retry.resumed, retry.previous_status, retry.delivery.attempts) == (True, False, "failed", 2)


def test_concurrent_claims_from_two_threads_have_one_winner(ledger):
    item = _approved(ledger)
    key = Ledger.delivery_key(item.item_id, "rep_slack")
    barrier = threading.Barrier(2)
    results, errors = [], []

    def claim():
        try:
            barrier.wait()
            results.append(ledger.claim_delivery(item.item_id, "rep_slack", key))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    for _ in range(5):  # repeat: a race that passes once proves little
        results.clear()
        threads = [threading.Thread(target=claim) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(ledger.deliveries_for(item.item_id)) == 1
        winners = [r for r in results if r.acquired]
        assert len(winners) <= 1
        if winners:
            ledger.mark_sent(key, "ts-1")
    assert ledger.get_delivery(key).attempts == 1
    assert verify_audit(ledger).ok


def test_concurrent_claims_on_distinct_items(ledger):
    items = [_approved(ledger, flag=f"f-{n}") for n in range(8)]
    barrier = threading.Barrier(len(items))
    acquired = []

    def claim(item):
        barrier.wait()
        acquired.append(ledger.claim_delivery(item.item_id, "crm_note", Ledger.delivery_key(item.item_id, "crm_note")).acquired)

    threads = [threading.Thread(target=claim, args=(i,)) for i in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert acquired == [True] * len(items)
    assert verify_audit(ledger).ok  # concurrent writers kept one linear chain


def test_key_conflicts(ledger):
    a, b = _approved(ledger, flag="f-1"), _approved(ledger, flag="f-2")
    ledger.claim_delivery(a.item_id, "rep_slack", "k-1")
    with pytest.raises(DeliveryConflict, match="belongs to item"):
        ledger.claim_delivery(b.item_id, "rep_slack", "k-1")
    with pytest.raises(DeliveryConflict, match="already has a rep_slack delivery"):
        ledger.claim_delivery(a.item_id, "rep_slack", "k-2")


def test_nothing_is_claimed_without_a_live_approval(ledger, tmp_path):
    dismissed = _approved(ledger, flag="f-1", action="dismiss")
    with pytest.raises(NotApproved, match="dismiss in live mode"):
        ledger.claim_delivery(dismissed.item_id, "rep_slack", "k-1")
    assert ledger.audit_rows()[-1].action == "delivery.refused"
    digest = ledger.create_digest("run-1", "mgr-1", AS_OF)
    undecided = ledger.add_item(digest.digest_id, flag_id="f-2", rule_id="r", severity="low", draft={}, evidence={})
    with pytest.raises(NotApproved, match="no decision"):
        ledger.claim_delivery(undecided.item_id, "rep_slack", "k-2")
    assert ledger.audit_rows()[-1].action == "delivery.refused"
    assert ledger.deliveries_for(dismissed.item_id) == []


def test_shadow_approvals_are_never_published(ledger):
    ledger.set_mode("shadow", actor="ops", reason="back to shadow")
    item = _approved(ledger)  # approved in shadow mode
    with pytest.raises(SendsHalted, match="shadow mode"):
        ledger.claim_delivery(item.item_id, "rep_slack", "k-1")
    ledger.set_mode("live", actor="ops", reason="gates passed", gates=GATES)
    assert ledger.approved_undelivered_items() == []  # going live does not flush the shadow backlog
    with pytest.raises(NotApproved, match="approve in shadow mode"):
        ledger.claim_delivery(item.item_id, "rep_slack", "k-1")


def test_live_mode_needs_the_gates(tmp_path):
    with open_ledger(home=tmp_path) as ledger:
        assert ledger.mode() == "shadow"
        with pytest.raises(GateNotPassed, match="shadow_agreement: not recorded"):
            ledger.set_mode("live", actor="ops", reason="yolo", gates={"eval": True})
        with pytest.raises(GateNotPassed, match="eval: failed"):
            ledger.set_mode("live", actor="ops", reason="yolo", gates={"eval": False, "shadow_agreement": True})
        assert ledger.mode() == "shadow"
        assert [r.action for r in ledger.audit_rows()] == ["mode.refused", "mode.refused"]
        assert ledger.set_mode("live", actor="ops", reason="ok", gates=GATES) == "live"


def test_kill_switch_stops_all_sends(ledger):
    item = _approved(ledger)
    ledger.engage_kill_switch(actor="ops", reason="bad drafts going out")
    assert ledger.sends_allowed() == (False, "kill switch engaged by ops: bad drafts going out")
    with pytest.raises(SendsHalted, match="kill switch engaged"):
        ledger.claim_delivery(item.item_id, "rep_slack", "k-1")
    ledger.release_kill_switch(actor="ops", reason="fixed")
    assert ledger.claim_delivery(item.item_id, "rep_slack", "k-1").acquired


def test_approved_undelivered_items(ledger):
    a = _approved(ledger, flag="f-1")
    b = _approved(ledger, flag="f-2", action="edit")
    _approved(ledger, flag="f-3", action="dismiss")
    owed = {x.item.item_id: x.owed for x in ledger.approved_undelivered_items()}
    assert owed == {a.item_id: ("rep_slack", "crm_note"), b.item_id: ("rep_slack", "crm_note")}
    assert [x.edited_text for x in ledger.approved_undelivered_items() if x.item.item_id == b.item_id] == ["edited"]
    for channel in ("rep_slack", "crm_note"):
        key = Ledger.delivery_key(a.item_id, channel)
        ledger.claim_delivery(a.item_id, channel, key)
        ledger.mark_sent(key, "ref")
    key = Ledger.delivery_key(b.item_id, "rep_slack")
    ledger.claim_delivery(b.item_id, "rep_slack", key)
    ledger.mark_sent(key, "ref")
    assert {x.item.item_id: x.owed for x in ledger.approved_undelivered_items()} == {b.item_id: ("crm_note",)}
    key = Ledger.delivery_key(b.item_id, "crm_note")
    for _ in range(2):
        ledger.claim_delivery(b.item_id, "crm_note", key)
        ledger.mark_failed(key, "CRM 500")
    assert ledger.approved_undelivered_items(max_attempts=2) == []  # dead-lettered: left for a person
    assert len(ledger.approved_undelivered_items(max_attempts=3)) == 1
