"""Fault and abuse: CRM free text cannot become a live link, a mention or a broadcast in any message to a rep.

A deal named like an attack goes out on every channel through its real client and fake server;
what the far side receives holds the text as inert characters for its format.
"""

from __future__ import annotations

import email
import email.policy
import socket

import pytest
from slack_sdk import WebClient

from agents.ledger import open_ledger
from agents.review.channels import LocalCrmNotesChannel, OutboundMessage, SlackDmChannel, SmtpEmailChannel
from agents.review.escaping import defang_urls, html_text, slack_mrkdwn

GATES = {"eval": True, "shadow_agreement": True}

# What a CRM user (or a compromised integration) can type into a deal name or an activity subject.
EVIL_DEAL = (
    "Acme renewal <!channel> <!here> <@U0ADMIN> <https://evil.example/reset|Reset your password> "
    "[Reset your password](https://evil.example/login) "
    '<a href="https://evil.example/x">click</a><script>alert(1)</script><img src=x onerror=alert(2)>'
)
EVIL_SUBJECT = "Call re: <https://evil.example|invoice> & <!everyone>"


def evil_message(key: str, deal_id: str) -> OutboundMessage:
    return OutboundMessage(
        item_id="item-evil", idempotency_key=key, opportunity_id=deal_id, subject_label=EVIL_DEAL,
        rep_id="rep-1", rep_name="Ann Rep", rep_slack_user_id="UREP1", rep_email="ann@example.test",
        manager_id="mgr-1", manager_name="Maria Manager", manager_email="maria@example.test", approver_id="mgr-1",
        text=f"Follow up on {EVIL_DEAL}: the last activity was '{EVIL_SUBJECT}'.\nBook a pricing review by 2026-10-06.",
        edited=False,
    )


@pytest.fixture
def ledger(tmp_path):
    with open_ledger(home=tmp_path / "home") as ledger:
        ledger.set_mode("live", actor="ops", reason="test", gates=GATES)
        yield ledger


def assert_no_live_url(text: str) -> None:
    assert "https://evil.example" not in text and "evil.example" not in text, text
    assert "hxxps://evil[.]example" in text  # still readable as evidence of what was typed


def assert_inert_mrkdwn(text: str) -> None:
    assert_no_live_url(text)
    for live in ("<!channel>", "<!here>", "<!everyone>", "<@U0ADMIN>", "<https://", "<hxxps://"):
        assert live not in text, (live, text)
    assert "&lt;!channel&gt;" in text and "&lt;@U0ADMIN&gt;" in text


def assert_inert_html(text: str) -> None:
    assert_no_live_url(text)
    lowered = text.lower()
    for live in ("<a ", "<script", "<img", "href=", "<!channel>"):
        assert live not in lowered.replace("&lt;a href=", ""), (live, text)
    assert "&lt;script&gt;" in text and "&lt;!channel&gt;" in text


def assert_inert_plain(text: str) -> None:
    assert_no_live_url(text)
    assert "[Reset your password](hxxps://evil[.]example/login)" in text  # label kept, address unclickable


# --------------------------------------------------------------------------- the helpers themselves


def test_escaping_helpers():
    assert slack_mrkdwn("<!channel> & <https://a.example|x>") == "&lt;!channel&gt; &amp; &lt;hxxps://a[.]example|x&gt;"
    assert html_text('<b>"x"</b>\nnext') == "&lt;b&gt;&quot;x&quot;&lt;/b&gt;<br>next"
    assert defang_urls("see http://a.b.example/p?q=1 and acme.com") == "see hxxp://a[.]b[.]example/p?q=1 and acme.com"
    assert defang_urls("[sales-supervisor:sales-supervisor/crm_note/abc]") == "[sales-supervisor:sales-supervisor/crm_note/abc]"


# --------------------------------------------------------------------------- one test per channel


def test_slack_dm_carries_the_deal_as_inert_text(ledger):
    from tests.fakes.slack_server import FakeSlackServer
    from tests.test_review_fixtures import BOT_TOKEN

    with FakeSlackServer() as slack:
        channel = SlackDmChannel(ledger, WebClient(token=BOT_TOKEN, base_url=slack.base_url))
        channel.send(evil_message("k-slack", "opp-a"))
        [post] = slack.calls_to("chat.postMessage")
    assert_inert_mrkdwn(post.params["text"])
    assert post.params["parse"] == "none" and post.params["link_names"] in (False, "0", "false", 0)
    assert post.params["unfurl_links"] in (False, "0", "false", 0)


def test_email_carries_the_deal_as_inert_text_in_both_parts_and_the_subject(ledger):
    from aiosmtpd.controller import Controller

    class Handler:
        messages: list = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(envelope)
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    handler = Handler()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        SmtpEmailChannel(ledger, "127.0.0.1", port, sender="supervisor@example.test").send(evil_message("k-mail", "opp-a"))
    finally:
        controller.stop()
    [received] = handler.messages
    parsed = email.message_from_bytes(received.content, policy=email.policy.default)
    plain = parsed.get_body(("plain",)).get_content()
    html_part = parsed.get_body(("html",)).get_content()
    assert_inert_plain(plain)
    assert_inert_html(html_part)
    assert "evil.example" not in str(parsed["Subject"])


def test_local_crm_note_carries_the_deal_as_inert_text(ledger, tmp_path):
    notes = LocalCrmNotesChannel.at_home(ledger, tmp_path / "notes")
    notes.send(evil_message("k-local", "opp-a"))
    assert_inert_plain(notes.notes()[0]["body"])


def test_hubspot_note_carries_the_deal_as_inert_html(ledger):
    from connectors.hubspot.notes import HubSpotNoteWriter
    from tests.fakes.hubspot_server import FakeHubSpotServer, seed_portal
    from tests.test_connector_hubspot import TOKEN

    with seed_portal(FakeHubSpotServer(max_page=3)) as hubspot:
        HubSpotNoteWriter(ledger, TOKEN, hubspot.base_url).send(evil_message("k-hubspot", "402"))
        [post] = hubspot.calls_to("POST", "/crm/v3/objects/notes")
    assert_inert_html(post.body["properties"]["hs_note_body"])


def test_pipedrive_note_carries_the_deal_as_inert_html(ledger):
    from connectors.pipedrive.notes import PipedriveNoteWriter
    from tests.fakes.pipedrive_server import TOKEN, FakePipedrive

    with FakePipedrive.sample() as pd:
        PipedriveNoteWriter(ledger, TOKEN, pd.base_url).send(evil_message("k-pipedrive", "1001"))
        [post] = pd.calls("/v1/notes", "POST")
    assert_inert_html(post.body["content"])


def test_salesforce_task_carries_the_deal_as_inert_text(ledger):
    from connectors.salesforce.notes import SalesforceNoteWriter
    from tests.fakes.salesforce_server import TOKEN, FakeSalesforce, sf_id

    with FakeSalesforce(page_size=3) as sf:
        SalesforceNoteWriter(ledger, sf.instance_url, TOKEN).send(evil_message("k-sf", sf_id("Opportunity", 1)))
        [post] = [r for r in sf.requests if r.method == "POST"]
    assert_inert_plain(post.body["Description"])
    assert "evil.example" not in post.body["Subject"]


def test_only_http_links_may_be_live():
    from agents.review.escaping import safe_link_url

    assert safe_link_url("https://acme.my.salesforce.com/lightning/r/Opportunity/006A/view") is not None
    for bad in ("javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html;base64,PHNjcmlwdD4=", "vbscript:x",
                "https://evil.example/x|Reset your password", 'https://a.example/" onmouseover="x', "//evil.example/x",
                "https://a.example/\nx", "", None, "https:///nohost"):
        assert safe_link_url(bad) is None, bad
