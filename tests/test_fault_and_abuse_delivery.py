"""Fault and abuse: exactly once per channel, including email, with a person deciding every unknown outcome.

Each channel is driven by its real client (smtplib, slack-sdk, the HubSpot / Pipedrive /
Salesforce note writers) against a local fake that fails at one point of the exchange:

* before the far side accepted anything (connection refused, a 4xx, a 429 with Retry-After):
  ``NotSent`` (retried by a later run) or ``PermanentSendError``, and nothing exists there;
* after the far side acted (5xx after the write, the connection dropped mid-response, no answer
  before the timeout): ``OutcomeUnknown``, and the note or message *does* exist there, which is
  why it must never be resent blindly;
* email: 250 after DATA is sent, whatever QUIT answers.
"""

from __future__ import annotations

import asyncio
import getpass
import socket

import pytest
from slack_sdk import WebClient
from typer.testing import CliRunner

from agents.ledger import open_ledger
from agents.review import build_digests, post_digest, publish_approved
from agents.review.channels import (
    LocalCrmNotesChannel,
    NotSent,
    OutboundMessage,
    OutcomeUnknown,
    PermanentSendError,
    SlackDmChannel,
    SmtpEmailChannel,
)
from sales_supervisor.cli import app
from tests.fakes.fault_proxy import FaultProxy, closed_port_url
from tests.fakes.slack_server import FakeSlackServer
from tests.test_review_fixtures import AS_OF, BOT_TOKEN, MANAGERS, REPS, Clock, pairs

GATES = {"eval": True, "shadow_agreement": True}
runner = CliRunner()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


@pytest.fixture
def ledger(home, clock):
    with open_ledger(home=home, clock=clock) as ledger:
        yield ledger


def approve(ledger, home, n=1):
    ledger.set_mode("live", actor="ops", reason="test", gates=GATES)
    digest = build_digests(pairs(), REPS, MANAGERS, AS_OF, 5)[0]
    ids = post_digest(ledger, digest, None, home / "outbox").item_ids[:n]
    for item_id in ids:
        ledger.record_decision(item_id, "approve", "mgr-1", "slack")
    return ids


# --------------------------------------------------------------------------- a scripted SMTP server (aiosmtpd)


class ScriptedSmtp:
    """aiosmtpd with hooks: ``quit_reply``, ``rcpt_replies`` (consumed in order), ``data_reply``, ``data_stall_s``."""

    def __init__(self):
        self.messages = []
        self.quit_reply: str | None = None
        self.rcpt_replies: list[str] = []
        self.data_reply = "250 Message accepted for delivery"
        self.data_stall_s = 0.0
        self.drop_after_data = False

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_replies:
            return self.rcpt_replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply.startswith("250"):
            self.messages.append(envelope)
        if self.data_stall_s:
            await asyncio.sleep(self.data_stall_s)
        if self.drop_after_data:  # the message is kept, the connection drops before the reply
            server.transport.abort()
        return self.data_reply

    async def handle_QUIT(self, server, session, envelope):
        return self.quit_reply or "221 Bye"


@pytest.fixture
def smtp():
    from aiosmtpd.controller import Controller

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    handler = ScriptedSmtp()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def email_channel(ledger, port, timeout=5.0):
    return SmtpEmailChannel(ledger, "127.0.0.1", port, sender="supervisor@example.test", timeout=timeout)


def test_email_accepted_then_quit_fails_421_is_sent_once(ledger, home, smtp):
    """Today's bug: 250 after DATA, then 421 at QUIT, was retried until five copies arrived."""
    handler, port = smtp
    handler.quit_reply = "421 Service not available, closing transmission channel"
    [item_id] = approve(ledger, home)
    channel = email_channel(ledger, port)
    reports = [publish_approved(ledger, {"rep_email": channel}, "live") for _ in range(5)]
    assert len(handler.messages) == 1
    assert len(reports[0].sent) == 1 and not reports[0].failed and not reports[0].needs_attention
    assert all(not r.sent and not r.failed for r in reports[1:])
    assert ledger.get_delivery(f"sales-supervisor/rep_email/{item_id}").status == "sent"


def test_email_data_sent_without_an_answer_is_unknown_never_resent_until_a_person_resolves(ledger, home, smtp, clock):
    handler, port = smtp
    handler.data_stall_s = 1.5  # the server takes the message, then answers after the client gave up
    [item_id] = approve(ledger, home)
    channel = email_channel(ledger, port, timeout=0.4)
    first = publish_approved(ledger, {"rep_email": channel}, "live")
    assert len(first.needs_attention) == 1 and not first.sent and not first.failed
    assert "no answer came back" in first.needs_attention[0][2]
    handler.data_stall_s = 0
    for _ in range(3):
        clock.advance(minutes=10)
        again = publish_approved(ledger, {"rep_email": channel}, "live")
        assert len(again.needs_attention) == 1 and not again.sent
    assert len(handler.messages) == 1  # the copy the server kept; never a second

    key = f"sales-supervisor/rep_email/{item_id}"
    delivery = ledger.get_delivery(key)
    assert delivery.status == "unknown"
    listed = runner.invoke(app, ["publish", "attention", "--home", str(home)])
    assert listed.exit_code == 1 and f"{delivery.delivery_id}  rep_email" in listed.output, listed.output
    # a person checked the rep's inbox and found nothing: recorded under their established identity, sent once more
    (home / "identities.yaml").write_text(f"users:\n  {getpass.getuser()}: ops-ana\n")
    resolve = ["publish", "resolve", str(delivery.delivery_id), "--not-sent", "--note", "not in the inbox", "--home", str(home)]
    assert runner.invoke(app, [*resolve, "--as", "mgr-1"]).exit_code == 3  # nobody resolves as someone else
    done = runner.invoke(app, [*resolve, "--as", "ops-ana"])
    assert done.exit_code == 0, done.output
    assert runner.invoke(app, resolve).exit_code == 4  # already resolved: refused
    resent = publish_approved(ledger, {"rep_email": channel}, "live")
    assert len(resent.sent) == 1 and len(handler.messages) == 2
    assert runner.invoke(app, ["publish", "attention", "--home", str(home)]).exit_code == 0
    [resolved] = [r for r in ledger.audit_rows() if r.action == "delivery.resolved"]
    assert resolved.actor == "ops-ana" and '"verdict":"not_sent"' in resolved.payload.replace(" ", "")
    assert ledger.verify_audit().ok


def test_email_connection_dropped_after_data_is_unknown_not_resent(ledger, home, smtp):
    handler, port = smtp
    handler.drop_after_data = True
    approve(ledger, home)
    channel = email_channel(ledger, port)
    first = publish_approved(ledger, {"rep_email": channel}, "live")
    assert len(first.needs_attention) == 1 and not first.sent and not first.failed
    handler.drop_after_data = False
    again = publish_approved(ledger, {"rep_email": channel}, "live")
    assert len(again.needs_attention) == 1 and not again.sent
    assert len(handler.messages) == 1


def test_email_refused_before_data_is_not_sent_and_retried_once_accepted(ledger, home, smtp):
    handler, port = smtp
    [item_id] = approve(ledger, home)
    channel = email_channel(ledger, port)
    handler.rcpt_replies = ["450 Mailbox busy, try later"]
    first = publish_approved(ledger, {"rep_email": channel}, "live")
    assert len(first.failed) == 1 and "not sent" in first.failed[0][2] and not handler.messages
    second = publish_approved(ledger, {"rep_email": channel}, "live")
    assert len(second.sent) == 1 and len(handler.messages) == 1


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (lambda h: setattr(h, "rcpt_replies", ["550 No such user"]), PermanentSendError),
        (lambda h: setattr(h, "data_reply", "554 Message rejected as spam"), PermanentSendError),
        (lambda h: setattr(h, "data_reply", "451 Local error in processing"), NotSent),
    ],
    ids=["rcpt-550", "data-554", "data-451"],
)
def test_email_refusals_are_not_sent(ledger, home, smtp, script, expected):
    handler, port = smtp
    approve(ledger, home)
    script(handler)
    message = _any_message(ledger)
    with pytest.raises(expected):
        email_channel(ledger, port).send(message)
    assert not handler.messages


def test_email_connection_refused_is_not_sent(ledger, home):
    approve(ledger, home)
    port = int(closed_port_url().rsplit(":", 1)[1])
    with pytest.raises(NotSent):
        email_channel(ledger, port, timeout=2).send(_any_message(ledger))


def _any_message(ledger, channel="rep_email") -> OutboundMessage:
    [approved] = ledger.approved_undelivered_items((channel,))
    return OutboundMessage.from_approved(approved, f"sales-supervisor/{channel}/{approved.item.item_id}")


# --------------------------------------------------------------------------- Slack DM (slack-sdk through a fault proxy)


@pytest.fixture
def slack(clock):
    with FakeSlackServer(clock=lambda: clock().timestamp()) as server:
        yield server


def slack_client(url: str, timeout: int = 5) -> WebClient:
    return WebClient(token=BOT_TOKEN, base_url=url.rstrip("/") + "/", timeout=timeout)


@pytest.mark.parametrize(
    ("fault", "expected", "posted"),
    [
        (lambda p: p.refuse_before("POST", "chat.postMessage", 429, {"Retry-After": "30"}), NotSent, 0),
        (lambda p: p.refuse_before("POST", "chat.postMessage", 400), NotSent, 0),
        (lambda p: p.status_after("POST", "chat.postMessage", 500), OutcomeUnknown, 1),
        (lambda p: p.drop_after("POST", "chat.postMessage"), OutcomeUnknown, 1),
        (lambda p: p.stall_after("POST", "chat.postMessage", 2.5), OutcomeUnknown, 1),
    ],
    ids=["429-before", "400-before", "500-after-post", "reset-after-post", "timeout-after-post"],
)
def test_slack_dm_outcome_at_each_failure_point(ledger, home, slack, fault, expected, posted):
    approve(ledger, home)
    with FaultProxy(slack.base_url) as proxy:
        fault(proxy)
        channel = SlackDmChannel(ledger, slack_client(proxy.base_url, timeout=1))
        with pytest.raises(expected):
            channel.send(_any_message(ledger, "rep_slack"))
        assert proxy.faults_fired
    # exactly what the far side holds: nothing for a refusal, one message (never two: no blind retry) otherwise
    assert len(slack.calls_to("chat.postMessage")) == posted
    assert len(slack.all_messages()) == posted


def test_slack_refusals_in_the_body_and_no_connection_are_not_sent(ledger, home, slack):
    approve(ledger, home)
    message = _any_message(ledger, "rep_slack")
    slack.fail_next("chat.postMessage", "ratelimited")
    with pytest.raises(NotSent):
        SlackDmChannel(ledger, slack_client(slack.base_url)).send(message)
    slack.fail_next("chat.postMessage", "channel_not_found")
    with pytest.raises(PermanentSendError):
        SlackDmChannel(ledger, slack_client(slack.base_url)).send(message)
    slack.fail_next("chat.postMessage", "internal_error")  # Slack: "some aspect of the operation may have succeeded"
    with pytest.raises(OutcomeUnknown):
        SlackDmChannel(ledger, slack_client(slack.base_url)).send(message)
    with pytest.raises(NotSent):
        SlackDmChannel(ledger, slack_client(closed_port_url("/api/"))).send(message)


def test_slack_reset_after_post_is_recorded_once_by_the_publisher(ledger, home, slack, clock):
    """The lost answer parks the delivery; the next run finds the key in the DM history and records it sent."""
    [item_id] = approve(ledger, home)
    with FaultProxy(slack.base_url) as proxy:
        proxy.drop_after("POST", "chat.postMessage")
        channel = SlackDmChannel(ledger, slack_client(proxy.base_url, timeout=2))
        first = publish_approved(ledger, {"rep_slack": channel}, "live")
        assert len(first.needs_attention) == 1 and not first.sent
        second = publish_approved(ledger, {"rep_slack": channel}, "live")
    assert len(second.recovered) == 1 and not second.sent and not second.needs_attention
    assert len(slack.all_messages()) == 1
    assert ledger.get_delivery(f"sales-supervisor/rep_slack/{item_id}").status == "sent"


# --------------------------------------------------------------------------- the publisher's rules, any channel


class _Flaky:
    """Wraps a checkable local channel; ``mode``: 'unknown-before' (raises OutcomeUnknown, wrote nothing),
    'weird-after' (writes, then raises an exception no channel classified)."""

    def __init__(self, inner, mode, checkable=True):
        self.inner, self.mode, self.name, self.checkable = inner, mode, inner.name, checkable
        self.sends = 0

    def send(self, message):
        self.sends += 1
        if self.mode == "unknown-before":
            raise OutcomeUnknown("timeout after sending (simulated)")
        ref = self.inner.send(message)
        if self.mode == "weird-after":
            raise RuntimeError("an error nobody classified")
        return ref

    def find_delivered(self, message, since=None):
        return self.inner.find_delivered(message, since)


def test_unknown_outcome_not_found_waits_for_a_person_then_resolve_sent_closes_it(ledger, home, clock):
    [item_id] = approve(ledger, home)
    notes = LocalCrmNotesChannel.at_home(ledger, home)
    flaky = _Flaky(notes, "unknown-before")
    assert len(publish_approved(ledger, {"crm_note": flaky}, "live").needs_attention) == 1
    for _ in range(3):
        clock.advance(minutes=10)
        report = publish_approved(ledger, {"crm_note": notes}, "live")
        assert len(report.needs_attention) == 1 and not report.sent and not report.recovered
    assert flaky.sends == 1 and notes.notes() == []
    key = f"sales-supervisor/crm_note/{item_id}"
    claim = ledger.claim_delivery(item_id, "crm_note", key)
    assert not claim.acquired and claim.needs_attention  # even a direct claim cannot send it
    ledger.resolve_delivery(key, sent=True, resolver="mgr-1", note="seen in the CRM")
    assert ledger.get_delivery(key).status == "sent"
    assert not publish_approved(ledger, {"crm_note": notes}, "live").needs_attention
    assert notes.notes() == []
    with pytest.raises(Exception, match="not waiting for a person"):
        ledger.resolve_delivery(key, sent=False, resolver="mgr-1")


def test_an_unclassified_error_after_writing_is_never_retried(ledger, home):
    """Before: any exception was 'a known failure' and retried, so a write that then failed was written again."""
    approve(ledger, home)
    notes = LocalCrmNotesChannel.at_home(ledger, home)
    flaky = _Flaky(notes, "weird-after", checkable=False)
    for _ in range(4):
        report = publish_approved(ledger, {"crm_note": flaky}, "live")
        assert len(report.needs_attention) == 1 and not report.failed
    assert flaky.sends == 1 and len(notes.notes()) == 1


# --------------------------------------------------------------------------- the CRM note writers (through a fault proxy)


def _hubspot():
    from connectors.hubspot.config import RetrySettings
    from connectors.hubspot.notes import HubSpotNoteWriter
    from tests.fakes.hubspot_server import FakeHubSpotServer, seed_portal
    from tests.test_connector_hubspot import TOKEN

    def writer(ledger, url):
        return HubSpotNoteWriter(ledger, TOKEN, url, retry=RetrySettings(max_attempts=2, backoff_factor=0.01, max_delay_s=0.1, timeout_s=1))

    return seed_portal(FakeHubSpotServer(max_page=3)), (lambda s: s.base_url), writer, "402", "/crm/v3/objects/notes"


def _pipedrive():
    from connectors.pipedrive.notes import PipedriveNoteWriter
    from tests.fakes.pipedrive_server import TOKEN, FakePipedrive

    def writer(ledger, url):
        return PipedriveNoteWriter(ledger, TOKEN, url, timeout_s=1, max_attempts=2, backoff_factor=0.01, max_retry_delay_s=0.1)

    return FakePipedrive.sample(), (lambda s: s.base_url), writer, "1001", "/v1/notes"


def _salesforce():
    from connectors.salesforce.config import SalesforceConfig
    from connectors.salesforce.notes import SalesforceNoteWriter
    from tests.fakes.salesforce_server import TOKEN, FakeSalesforce, sf_id

    def writer(ledger, url):
        config = SalesforceConfig(backoff_factor=0.01, max_retry_delay=0.1, max_attempts=2, timeout_seconds=1)
        return SalesforceNoteWriter(ledger, url, TOKEN, config=config)

    return FakeSalesforce(page_size=3), (lambda s: s.instance_url), writer, sf_id("Opportunity", 1), "/sobjects/Task"


CRMS = {"hubspot": _hubspot, "pipedrive": _pipedrive, "salesforce": _salesforce}
FAULTS = {
    "429-before": (lambda p, path: [p.refuse_before("POST", path, 429, {"Retry-After": "0"}) for _ in range(3)], NotSent, False),
    "400-before": (lambda p, path: p.refuse_before("POST", path, 400, body=b'{"errorCode": "INVALID", "message": "bad"}'), PermanentSendError, False),
    "500-after-write": (lambda p, path: p.status_after("POST", path, 500), OutcomeUnknown, True),
    "503-after-write": (lambda p, path: p.status_after("POST", path, 503), OutcomeUnknown, True),
    "reset-after-write": (lambda p, path: p.drop_after("POST", path), OutcomeUnknown, True),
    "timeout-after-write": (lambda p, path: p.stall_after("POST", path, 2.5), OutcomeUnknown, True),
}


def _crm_message(deal: str, key: str) -> OutboundMessage:
    return OutboundMessage(
        item_id="item-1", idempotency_key=key, opportunity_id=deal, subject_label="Acme expansion", rep_id="2",
        rep_name="Rita Rep", rep_slack_user_id=None, rep_email="rita@acme.test", manager_id="1",
        manager_name="Mia Manager", manager_email="mia@acme.test", approver_id="1", text="Book the security review.", edited=False,
    )


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("crm", list(CRMS))
def test_crm_note_outcome_at_each_failure_point(ledger, crm, fault):
    ledger.set_mode("live", actor="ops", reason="test", gates=GATES)
    server, base_url, make_writer, deal, path = CRMS[crm]()
    script, expected, written = FAULTS[fault]
    message = _crm_message(deal, f"fault-{crm}-{fault}")
    with server, FaultProxy(base_url(server)) as proxy:
        script(proxy, path)
        with pytest.raises(expected):
            make_writer(ledger, proxy.base_url).send(message)
        assert proxy.faults_fired
        found = make_writer(ledger, base_url(server)).find_delivered(message)
        # an unknown outcome is honest: the note is there; a refusal left nothing
        assert (found is not None) is written, found
        assert proxy.forwarded_to("POST", path) == (1 if written else 0)  # never a blind second write


@pytest.mark.parametrize("crm", list(CRMS))
def test_crm_note_without_a_connection_is_not_sent(ledger, crm):
    ledger.set_mode("live", actor="ops", reason="test", gates=GATES)
    _, _, make_writer, deal, _ = CRMS[crm]()
    with pytest.raises(NotSent):
        make_writer(ledger, closed_port_url()).send(_crm_message(deal, f"refused-{crm}"))


# --------------------------------------------------------------------------- the ledger migration


def test_an_existing_ledger_gains_the_unknown_status_and_keeps_its_deliveries(tmp_path):
    from alembic import command
    from sqlalchemy import text

    from agents.ledger import create_ledger_engine, ledger_url
    from agents.ledger.migrations import alembic_config

    url = ledger_url(tmp_path)
    engine = create_ledger_engine(url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(connection=conn), "0001_initial")
        conn.execute(text("INSERT INTO digests (digest_id, run_id, manager_id, as_of, created_at, status) "
                          "VALUES ('d1', 'r1', 'mgr-1', '2026-10-01', '2026-10-01 08:00:00', 'created')"))
        conn.execute(text("INSERT INTO items (item_id, digest_id, manager_id, rule_id, severity, priority, draft, evidence, "
                          "flag_id, created_at) VALUES ('i1', 'd1', 'mgr-1', 'r', 'high', 0, '{}', '{}', 'f1', '2026-10-01 08:00:00')"))
        conn.execute(text("INSERT INTO deliveries (item_id, channel, idempotency_key, status, attempts, created_at) "
                          "VALUES ('i1', 'rep_email', 'k1', 'pending', 1, '2026-10-01 08:00:00')"))
        with pytest.raises(Exception):  # the old schema refuses the new status
            with conn.begin_nested():
                conn.execute(text("UPDATE deliveries SET status = 'unknown' WHERE idempotency_key = 'k1'"))
    engine.dispose()
    with open_ledger(url) as ledger:  # migrates to the head
        ledger.mark_unknown("k1", "outcome unknown, not resent: test")
        assert [d.idempotency_key for d in ledger.deliveries_needing_attention()] == ["k1"]
        assert ledger.resolve_delivery("k1", sent=True, resolver="ops-ana").status == "sent"
