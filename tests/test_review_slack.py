"""Posting digests through a local Slack Web API fake, and the bolt app handling signed interactivity payloads."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient

from agents.ledger import open_ledger
from agents.review import build_digests, post_digest
from agents.review.blocks import ACTION_APPROVE, ACTION_DISMISS, ACTION_EDIT, EDIT_BLOCK_ID, EDIT_CALLBACK_ID, EDIT_INPUT_ACTION_ID
from agents.review.slack_app import SlackAppSettings, approver_map, build_app, wsgi_app
from tests.fakes.slack_server import FakeSlackServer
from tests.test_review_fixtures import AS_OF, BOT_TOKEN, MANAGERS, REPS, SIGNING_SECRET, Clock, form_body, pairs, sign


@pytest.fixture
def slack():
    with FakeSlackServer() as server:
        yield server


@pytest.fixture
def client(slack):
    return WebClient(token=BOT_TOKEN, base_url=slack.base_url)


@pytest.fixture
def ledger(tmp_path):
    with open_ledger(home=tmp_path / "home", clock=Clock(), delegates={"mgr-1": ["dlg-1", "slack:UDELEG2"]}) as ledger:
        yield ledger


@pytest.fixture
def digests():
    return build_digests(pairs(), REPS, MANAGERS, AS_OF, 5)


# --------------------------------------------------------------------------- posting


def test_post_digest_via_slack_dm(ledger, digests, client, slack, tmp_path):
    d = digests[0]
    result = post_digest(ledger, d, client, tmp_path / "outbox")
    assert result.ok and result.channel == "slack"
    [opened] = slack.calls_to("conversations.open")
    assert opened.params["users"] == "UMGR1"
    [posted] = slack.calls_to("chat.postMessage")
    channel = slack.dm_channel_for("UMGR1")
    assert posted.params["channel"] == channel
    actions = [b for b in posted.params["blocks"] if b["type"] == "actions"]
    assert [a["elements"][0]["value"] for a in actions] == list(result.item_ids)
    row = ledger.get_digest(result.digest_id)
    assert row.status == "posted" and row.external_ref == f"{channel}:{slack.messages(channel)[0].ts}"
    items = ledger.items_for_digest(result.digest_id)
    assert [i.priority for i in items] == [1, 2, 3, 4]
    assert items[0].evidence["manager"]["slack_user_id"] == "UMGR1"
    assert items[0].evidence["rep"]["slack_user_id"] == "UREP1"
    assert result.outbox_paths[0].exists()  # the outbox copy is always written

    again = post_digest(ledger, build_digests(pairs(), REPS, MANAGERS, AS_OF, 5)[0], client, tmp_path / "outbox")
    assert again.already_posted and again.item_ids == result.item_ids
    assert len(slack.calls_to("chat.postMessage")) == 1  # a retried run does not post twice


def test_post_digest_without_slack_writes_the_outbox(ledger, digests, tmp_path):
    result = post_digest(ledger, digests[1], None, tmp_path / "outbox")
    assert result.channel == "outbox" and result.ok
    assert (tmp_path / "outbox" / "digests" / "2026-10-01" / "mgr-2.md").exists()
    assert ledger.get_digest(result.digest_id).status == "posted"
    assert len(ledger.pending_items("mgr-2")) == 1


def test_slack_error_marks_the_digest_failed(ledger, digests, client, slack, tmp_path):
    slack.fail_next("chat.postMessage", "channel_not_found")
    result = post_digest(ledger, digests[0], client, tmp_path / "outbox")
    assert result.error == "slack: channel_not_found"
    assert ledger.get_digest(result.digest_id).status == "post_failed"
    assert result.outbox_paths[0].exists()


# --------------------------------------------------------------------------- the bolt app


@pytest.fixture
def posted(ledger, digests, client, tmp_path):
    return post_digest(ledger, digests[0], client, tmp_path / "outbox")


@pytest.fixture
def app(ledger, slack, posted):
    settings = SlackAppSettings(
        bot_token=BOT_TOKEN, signing_secret=SIGNING_SECRET, api_base_url=slack.base_url,
        approvers=approver_map(MANAGERS, {"UDELEG1": "dlg-1"}),
    )
    return build_app(ledger, settings)


def _message(slack):
    channel = slack.dm_channel_for("UMGR1")
    return channel, slack.messages(channel)[0]


def _block_action(slack, item_id, action_id, user):
    channel, msg = _message(slack)
    return {
        "type": "block_actions",
        "team": {"id": "T0FAKE001", "domain": "fake"},
        "user": {"id": user, "username": user.lower(), "team_id": "T0FAKE001"},
        "api_app_id": "A0FAKE",
        "token": "legacy-unused",
        "trigger_id": "1234.5678.abcd",
        "container": {"type": "message", "message_ts": msg.ts, "channel_id": channel, "is_ephemeral": False},
        "channel": {"id": channel, "name": "directmessage"},
        "message": {"type": "message", "ts": msg.ts, "text": msg.text, "blocks": msg.blocks},
        "response_url": slack.response_url(),
        "actions": [{"type": "button", "action_id": action_id, "block_id": f"actions:{item_id}", "value": item_id, "action_ts": "1.0"}],
    }


def _dispatch(app, payload, **sign_kw):
    body = form_body(payload)
    return app.dispatch(BoltRequest(body=body, headers=sign(body, **sign_kw)))


def test_signed_approve_stores_the_decision_then_updates_the_message(app, ledger, slack, posted):
    item_id = posted.item_ids[0]
    response = _dispatch(app, _block_action(slack, item_id, ACTION_APPROVE, "UMGR1"))
    assert response.status == 200
    decision = ledger.get_decision(item_id)  # stored before the request returned
    assert (decision.action, decision.approver_id, decision.approver_channel) == ("approve", "mgr-1", "slack")
    [update] = slack.wait_for("chat.update")
    channel, msg = _message(slack)
    assert update.params["channel"] == channel and update.params["ts"] == msg.ts
    ids = [b.get("block_id") for b in msg.blocks]
    assert f"decision:{item_id}" in ids and f"actions:{item_id}" not in ids
    assert f"actions:{posted.item_ids[1]}" in ids  # the other items keep their buttons

    # A double click returns the same decision; a different one is refused as final.
    assert _dispatch(app, _block_action(slack, item_id, ACTION_APPROVE, "UMGR1")).status == 200
    assert _dispatch(app, _block_action(slack, item_id, ACTION_DISMISS, "UMGR1")).status == 200
    assert ledger.get_decision(item_id).action == "approve"
    [eph] = slack.wait_for("chat.postEphemeral")
    assert "Already decided" in eph.params["text"]


def test_delegate_may_dismiss(app, ledger, slack, posted):
    item_id = posted.item_ids[1]
    assert _dispatch(app, _block_action(slack, item_id, ACTION_DISMISS, "UDELEG1")).status == 200
    assert (ledger.get_decision(item_id).action, ledger.get_decision(item_id).approver_id) == ("dismiss", "dlg-1")
    # An allow-listed delegate named by Slack id alone (no approver mapping) works too.
    other = posted.item_ids[2]
    assert _dispatch(app, _block_action(slack, other, ACTION_APPROVE, "UDELEG2")).status == 200
    assert ledger.get_decision(other).approver_id == "slack:UDELEG2"


def test_forged_signature_is_refused(app, ledger, slack, posted):
    item_id = posted.item_ids[0]
    response = _dispatch(app, _block_action(slack, item_id, ACTION_APPROVE, "UMGR1"), secret="not-the-secret")
    assert response.status == 401
    assert ledger.get_decision(item_id) is None


def test_replayed_request_older_than_five_minutes_is_refused(app, ledger, slack, posted):
    item_id = posted.item_ids[0]
    stale = int(time.time()) - 5 * 60 - 10
    response = _dispatch(app, _block_action(slack, item_id, ACTION_APPROVE, "UMGR1"), timestamp=stale)
    assert response.status == 401
    assert ledger.get_decision(item_id) is None
    fresh = int(time.time()) - 4 * 60  # inside the window: accepted
    assert _dispatch(app, _block_action(slack, item_id, ACTION_APPROVE, "UMGR1"), timestamp=fresh).status == 200


def test_wrong_user_gets_an_ephemeral_refusal_and_an_audit_row(app, ledger, slack, posted):
    item_id = posted.item_ids[0]
    response = _dispatch(app, _block_action(slack, item_id, ACTION_APPROVE, "UMGR2"))  # another team's manager
    assert response.status == 200
    assert ledger.get_decision(item_id) is None
    [eph] = slack.wait_for("chat.postEphemeral")
    assert eph.params["user"] == "UMGR2" and "not authorised" in eph.params["text"]
    refused = [r for r in ledger.audit_rows(subject_type="item", subject_id=item_id) if r.action == "decision.refused"]
    assert len(refused) == 1 and refused[0].actor == "mgr-2"
    assert json.loads(refused[0].payload)["refusal"] == "not_authorised"
    assert not slack.calls_to("chat.update")
    assert ledger.verify_audit().ok


def test_edit_opens_a_modal_and_the_submission_stores_the_edited_text(app, ledger, slack, posted):
    item_id = posted.item_ids[0]
    assert _dispatch(app, _block_action(slack, item_id, ACTION_EDIT, "UMGR1")).status == 200
    [opened] = slack.wait_for("views.open")
    view = opened.params["view"]
    assert opened.params["trigger_id"] == "1234.5678.abcd" and view["callback_id"] == EDIT_CALLBACK_ID
    assert "Book a pricing review" in view["blocks"][1]["element"]["initial_value"]
    assert ledger.get_decision(item_id) is None

    submission = {
        "type": "view_submission",
        "team": {"id": "T0FAKE001", "domain": "fake"},
        "user": {"id": "UMGR1", "username": "maria", "team_id": "T0FAKE001"},
        "api_app_id": "A0FAKE",
        "token": "legacy-unused",
        "trigger_id": "2222.3333.efgh",
        "view": {
            **view, "id": "V000001", "team_id": "T0FAKE001", "app_id": "A0FAKE",
            "state": {"values": {EDIT_BLOCK_ID: {EDIT_INPUT_ACTION_ID: {"type": "plain_text_input", "value": "Call the CFO on Monday and agree a pricing path."}}}},
        },
    }
    response = _dispatch(app, submission)
    assert response.status == 200 and not response.body  # an empty ack closes the modal
    decision = ledger.get_decision(item_id)
    assert (decision.action, decision.edited_text) == ("edit", "Call the CFO on Monday and agree a pricing path.")
    slack.wait_for("chat.update")
    _, msg = _message(slack)
    assert "Call the CFO on Monday" in json.dumps(msg.blocks)


def test_edit_by_wrong_user_is_refused_without_a_modal(app, ledger, slack, posted):
    item_id = posted.item_ids[0]
    assert _dispatch(app, _block_action(slack, item_id, ACTION_EDIT, "UNOBODY")).status == 200
    slack.wait_for("chat.postEphemeral")
    assert not slack.calls_to("views.open")
    rows = [r for r in ledger.audit_rows(subject_type="item", subject_id=item_id) if r.action == "decision.refused"]
    assert rows and rows[0].actor == "slack:UNOBODY"


def test_edit_submission_by_wrong_user_returns_modal_errors(app, ledger, slack, posted):
    item_id = posted.item_ids[0]
    submission = {
        "type": "view_submission",
        "team": {"id": "T0FAKE001"}, "user": {"id": "UNOBODY", "team_id": "T0FAKE001"}, "api_app_id": "A0FAKE", "token": "x",
        "view": {"id": "V2", "type": "modal", "callback_id": EDIT_CALLBACK_ID, "team_id": "T0FAKE001", "app_id": "A0FAKE",
                 "private_metadata": json.dumps({"item_id": item_id, "channel": None, "ts": None}),
                 "state": {"values": {EDIT_BLOCK_ID: {EDIT_INPUT_ACTION_ID: {"type": "plain_text_input", "value": "sneaky"}}}}},
    }
    response = _dispatch(app, submission)
    assert response.status == 200
    body = json.loads(response.body)
    assert body["response_action"] == "errors" and "not authorised" in body["errors"][EDIT_BLOCK_ID]
    assert ledger.get_decision(item_id) is None


def test_over_real_http(app, ledger, slack, posted):
    """The WSGI adapter that ``serve`` uses, on a real socket."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, *a):
            pass

    httpd = make_server("127.0.0.1", 0, wsgi_app(app), handler_class=Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/slack/events"
        item_id = posted.item_ids[0]
        body = form_body(_block_action(slack, item_id, ACTION_APPROVE, "UMGR1"))

        def post(headers):
            req = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    return resp.status
            except urllib.error.HTTPError as exc:
                return exc.code

        assert post(sign(body, secret="forged")) == 401
        assert ledger.get_decision(item_id) is None
        assert post(sign(body)) == 200
        assert ledger.get_decision(item_id).action == "approve"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_settings_from_env_and_manifest():
    from agents.review.slack_app import app_manifest

    with pytest.raises(ValueError, match="SLACK_BOT_TOKEN"):
        SlackAppSettings.from_env({})
    with pytest.raises(ValueError, match="SLACK_SIGNING_SECRET"):
        SlackAppSettings.from_env({"SLACK_BOT_TOKEN": "xoxb-1"})
    socket_mode = SlackAppSettings.from_env({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"})
    assert socket_mode.app_token == "xapp-1"
    manifest = app_manifest("https://review.example.test/slack/events")
    assert set(manifest["oauth_config"]["scopes"]["bot"]) >= {"chat:write", "im:write", "im:history"}
    assert manifest["settings"]["interactivity"]["request_url"].endswith("/slack/events")
    assert app_manifest(None)["settings"]["socket_mode_enabled"] is True


def test_review_package_knows_no_dagster():
    """Invariant 2: the domain layer imports nothing from orchestration/ or Dagster (the CLI and Slack app share it)."""
    import ast
    from pathlib import Path

    import agents.review

    for path in Path(agents.review.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert not name.startswith(("dagster", "orchestration", "sales_supervisor")), f"{path.name} imports {name}"
