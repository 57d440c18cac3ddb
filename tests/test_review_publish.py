"""Outbound channels and the publisher: shadow sends nothing, live sends exactly once across crashes, the kill switch stops sends."""

from __future__ import annotations

import email
import email.policy
import socket
import time

import pytest
from slack_sdk import WebClient

from agents.ledger import ApprovedItem, SendsHalted, open_ledger
from agents.review import build_digests, post_digest, publish_approved
from agents.review.channels import LocalCrmNotesChannel, OutboundMessage, SlackDmChannel, SmtpEmailChannel
from agents.review.publisher import OUTCOME_UNKNOWN
from tests.fakes.slack_server import FakeSlackServer
from tests.test_review_fixtures import AS_OF, BOT_TOKEN, MANAGERS, REPS, Clock, pairs

GATES = {"eval": True, "shadow_agreement": True}


class SimulatedCrash(BaseException):
    """Not an Exception: the publisher must not catch it, just as it cannot catch a killed process."""


class CrashAfterSend:
    def __init__(self, inner):
        self.inner, self.name, self.checkable, self.sends = inner, inner.name, inner.checkable, 0

    def send(self, message):
        ref = self.inner.send(message)
        self.sends += 1
        raise SimulatedCrash(ref)

    def find_delivered(self, message, since=None):
        return self.inner.find_delivered(message, since)


class CrashBeforeSend(CrashAfterSend):
    def send(self, message):
        raise SimulatedCrash("before send")


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def slack(clock):
    with FakeSlackServer(clock=lambda: clock().timestamp()) as server:
        yield server


@pytest.fixture
def client(slack):
    return WebClient(token=BOT_TOKEN, base_url=slack.base_url)


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


@pytest.fixture
def ledger(home, clock):
    with open_ledger(home=home, clock=clock) as ledger:
        yield ledger


def _post_and_approve(ledger, home, n=2, mode="live"):
    if mode == "live":
        ledger.set_mode("live", actor="ops", reason="test", gates=GATES)
    digest = build_digests(pairs(), REPS, MANAGERS, AS_OF, 5)[0]
    result = post_digest(ledger, digest, None, home / "outbox")
    for item_id in result.item_ids[:n]:
        ledger.record_decision(item_id, "approve", "mgr-1", "slack")
    return result.item_ids[:n]


@pytest.fixture
def smtp():
    from aiosmtpd.controller import Controller

    class Handler:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(envelope)
            return "250 Message accepted for delivery"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    handler = Handler()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


# --------------------------------------------------------------------------- shadow and gates


def test_shadow_mode_sends_nothing_and_counts_what_would_have_gone(ledger, home, client, slack):
    items = _post_and_approve(ledger, home, n=2, mode="shadow")
    notes = LocalCrmNotesChannel.at_home(ledger, home)
    channels = {"rep_slack": SlackDmChannel(ledger, client), "crm_note": notes}
    report = publish_approved(ledger, channels, "shadow", outbox_dir=home / "outbox")
    assert report.mode == "shadow" and len(report.would_send) == 4 and not report.sent
    assert not slack.calls  # not even a conversations.open
    assert notes.notes() == []
    assert (home / "outbox" / "messages" / "shadow" / "crm_note" / f"{items[0]}.json").exists()
    # A caller claiming "live" cannot override a ledger in shadow mode.
    assert publish_approved(ledger, channels, "live").mode == "shadow"
    approved = ApprovedItem(item=ledger.get_item(items[0]), decision=ledger.get_decision(items[0]), owed=("crm_note",))
    with pytest.raises(SendsHalted):  # and the channel itself refuses, even when called directly
        notes.send(OutboundMessage.from_approved(approved, "k"))
    assert notes.notes() == []


def test_live_publish_sends_each_item_once_per_channel(ledger, home, client, slack, smtp):
    handler, port = smtp
    items = _post_and_approve(ledger, home, n=2)
    notes = LocalCrmNotesChannel.at_home(ledger, home)
    channels = {
        "rep_slack": SlackDmChannel(ledger, client),
        "rep_email": SmtpEmailChannel(ledger, "127.0.0.1", port, sender="supervisor@example.test"),
        "crm_note": notes,
    }
    report = publish_approved(ledger, channels, "live", outbox_dir=home / "outbox")
    assert len(report.sent) == 6 and not report.failed, report.counts
    dms = [c for c in slack.calls_to("chat.postMessage")]
    assert len(dms) == 2
    assert dms[0].params["channel"] == slack.dm_channel_for("UREP1")
    assert dms[0].params["metadata"]["event_payload"]["idempotency_key"] == f"sales-supervisor/rep_slack/{items[0]}"
    assert "Book a pricing review" in dms[0].params["text"]
    assert len(handler.messages) == 2
    parsed = email.message_from_bytes(handler.messages[0].content, policy=email.policy.default)
    assert parsed["X-Sales-Supervisor-Key"] == f"sales-supervisor/rep_email/{items[0]}"
    assert parsed["Message-ID"] == SmtpEmailChannel.message_id(parsed["X-Sales-Supervisor-Key"])
    assert handler.messages[0].rcpt_tos == ["ann@example.test"]
    assert [n["opportunity_id"] for n in notes.notes()] == ["opp-b", "opp-a"]
    assert f"[sales-supervisor:sales-supervisor/crm_note/{items[0]}]" in notes.notes()[0]["body"]
    assert all(d.status == "sent" for i in items for d in ledger.deliveries_for(i))
    assert (home / "outbox" / "messages" / "live" / "rep_slack" / f"{items[0]}.json").exists()

    again = publish_approved(ledger, channels, "live")
    assert not again.sent and len(slack.calls_to("chat.postMessage")) == 2 and len(handler.messages) == 2
    assert ledger.verify_audit().ok


def test_edited_text_is_what_the_rep_receives(ledger, home):
    ledger.set_mode("live", actor="ops", reason="test", gates=GATES)
    digest = build_digests(pairs(), REPS, MANAGERS, AS_OF, 5)[0]
    item_id = post_digest(ledger, digest, None, home / "outbox").item_ids[0]
    ledger.record_decision(item_id, "edit", "mgr-1", "slack", edited_text="Call the CFO today.")
    notes = LocalCrmNotesChannel.at_home(ledger, home)
    publish_approved(ledger, {"crm_note": notes}, "live")
    body = notes.notes()[0]["body"]
    assert "Call the CFO today." in body and "Book a pricing review" not in body


# --------------------------------------------------------------------------- exactly once across crashes


def test_crash_after_crm_note_written_then_retry_writes_once(ledger, home, clock):
    [item_id] = _post_and_approve(ledger, home, n=1)
    notes = LocalCrmNotesChannel.at_home(ledger, home)
    crashing = CrashAfterSend(notes)
    with pytest.raises(SimulatedCrash):
        publish_approved(ledger, {"crm_note": crashing}, "live")
    assert crashing.sends == 1 and len(notes.notes()) == 1
    assert ledger.get_delivery(f"sales-supervisor/crm_note/{item_id}").status == "pending"

    busy = publish_approved(ledger, {"crm_note": notes}, "live")  # lease still held: hands off
    assert busy.in_flight == 1 and not busy.sent
    clock.advance(minutes=6)
    report = publish_approved(ledger, {"crm_note": notes}, "live")
    assert [r[1] for r in report.recovered] == ["crm_note"] and not report.sent
    assert len(notes.notes()) == 1
    delivery = ledger.get_delivery(f"sales-supervisor/crm_note/{item_id}")
    assert delivery.status == "sent" and delivery.external_ref == f"note:{notes.notes()[0]['note_id']}"


def test_crash_after_claim_before_send_then_retry_sends_once(ledger, home, clock):
    [item_id] = _post_and_approve(ledger, home, n=1)
    notes = LocalCrmNotesChannel.at_home(ledger, home)
    with pytest.raises(SimulatedCrash):
        publish_approved(ledger, {"crm_note": CrashBeforeSend(notes)}, "live")
    assert notes.notes() == []
    clock.advance(minutes=6)
    report = publish_approved(ledger, {"crm_note": notes}, "live")
    assert len(report.sent) == 1 and len(notes.notes()) == 1


def test_crash_after_slack_dm_then_retry_finds_it_by_metadata(ledger, home, clock, client, slack):
    [item_id] = _post_and_approve(ledger, home, n=1)
    dm = SlackDmChannel(ledger, client)
    with pytest.raises(SimulatedCrash):
        publish_approved(ledger, {"rep_slack": CrashAfterSend(dm)}, "live")
    clock.advance(minutes=6)
    report = publish_approved(ledger, {"rep_slack": dm}, "live")
    assert len(report.recovered) == 1 and not report.sent
    assert len(slack.calls_to("chat.postMessage")) == 1
    [history] = slack.calls_to("conversations.history")
    assert history.params["include_all_metadata"] in (True, "1", "true")


def test_unreadable_slack_history_marks_outcome_unknown_not_resent(ledger, home, clock, client, slack):
    _post_and_approve(ledger, home, n=1)
    dm = SlackDmChannel(ledger, client)
    with pytest.raises(SimulatedCrash):
        publish_approved(ledger, {"rep_slack": CrashAfterSend(dm)}, "live")
    clock.advance(minutes=6)
    slack.fail_next("conversations.history", "missing_scope")
    report = publish_approved(ledger, {"rep_slack": dm}, "live")
    assert len(report.needs_attention) == 1 and OUTCOME_UNKNOWN in report.needs_attention[0][2]
    clock.advance(minutes=6)
    slack.fail_next("conversations.history", "missing_scope")
    still = publish_approved(ledger, {"rep_slack": dm}, "live")  # still unreadable: still listed, not resent
    assert len(still.needs_attention) == 1 and not still.sent
    later = publish_approved(ledger, {"rep_slack": dm}, "live")  # readable again: found by its key, recorded as sent
    assert len(later.recovered) == 1 and not later.sent and not later.needs_attention
    assert len(slack.calls_to("chat.postMessage")) == 1


def test_email_crash_is_at_most_once(ledger, home, clock, smtp):
    handler, port = smtp
    _post_and_approve(ledger, home, n=1)
    email = SmtpEmailChannel(ledger, "127.0.0.1", port, sender="supervisor@example.test")
    with pytest.raises(SimulatedCrash):
        publish_approved(ledger, {"rep_email": CrashAfterSend(email)}, "live")
    clock.advance(minutes=6)
    for _ in range(2):
        report = publish_approved(ledger, {"rep_email": email}, "live")
        assert len(report.needs_attention) == 1 and not report.sent
    assert len(handler.messages) == 1


def test_known_send_failure_is_retried(ledger, home, client, slack):
    _post_and_approve(ledger, home, n=1)
    dm = SlackDmChannel(ledger, client)
    slack.fail_next("chat.postMessage", "ratelimited")
    first = publish_approved(ledger, {"rep_slack": dm}, "live")
    assert len(first.failed) == 1 and "ratelimited" in first.failed[0][2]
    second = publish_approved(ledger, {"rep_slack": dm}, "live")
    assert len(second.sent) == 1
    assert len([m for m in slack.all_messages()]) == 1


# --------------------------------------------------------------------------- the kill switch


def test_kill_switch_stops_all_sends(ledger, home, client, slack):
    _post_and_approve(ledger, home, n=2)
    notes = LocalCrmNotesChannel.at_home(ledger, home)
    channels = {"rep_slack": SlackDmChannel(ledger, client), "crm_note": notes}
    ledger.engage_kill_switch(actor="ops", reason="incident")
    report = publish_approved(ledger, channels, "live")
    assert report.halted and "kill switch" in report.halted and not report.sent
    assert not slack.calls_to("chat.postMessage") and notes.notes() == []
    ledger.release_kill_switch(actor="ops", reason="resolved")
    assert len(publish_approved(ledger, channels, "live").sent) == 4


def test_kill_switch_engaged_mid_run_is_checked_right_before_sending(ledger, home):
    _post_and_approve(ledger, home, n=2)
    notes = LocalCrmNotesChannel.at_home(ledger, home)

    class EngageThenSend:
        name, checkable = "crm_note", True

        def send(self, message):
            ledger.engage_kill_switch(actor="ops", reason="pulled mid-run")
            return notes.send(message)

        def find_delivered(self, message, since=None):
            return notes.find_delivered(message, since)

    report = publish_approved(ledger, {"crm_note": EngageThenSend()}, "live")
    assert report.halted and "pulled mid-run" in report.halted
    assert notes.notes() == [] and not report.sent
    ledger.release_kill_switch(actor="ops", reason="ok")
    assert len(publish_approved(ledger, {"crm_note": notes}, "live").sent) == 2
    assert len(notes.notes()) == 2
