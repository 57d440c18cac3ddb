"""Fault-and-abuse (issue 11 item 8): the smaller holes.

Edited text has a length limit; malformed Slack payloads get a 400; an empty
``--as`` is a clear error; a snooze's end date is inclusive in the ledger and
the engine alike; approving a decided item says by whom and when, for a full
id and a prefix alike.
"""

from __future__ import annotations

import datetime as dt
import getpass
import io
import json
from urllib.parse import urlencode

import pytest
from slack_bolt.request import BoltRequest
from typer.testing import CliRunner

from agents.ledger import EditTooLong, open_ledger
from agents.review.blocks import ACTION_APPROVE, EDIT_BLOCK_ID, EDIT_CALLBACK_ID, EDIT_INPUT_ACTION_ID
from agents.review.slack_app import wsgi_app
from agents.risk.engine import Snooze as EngineSnooze
from sales_supervisor.cli import app
from tests.test_review_fixtures import AS_OF, form_body, make_flag, sign
from tests.test_review_slack import _dispatch, app as slack_app, client, digests, ledger, posted, slack  # noqa: F401

runner = CliRunner()


@pytest.fixture
def home(tmp_path):
    with open_ledger(home=tmp_path) as led:
        digest = led.create_digest("run-1", "mgr-0001", dt.date(2026, 10, 1))
        item = led.add_item(digest.digest_id, flag_id="flag_1", rule_id="stalled_in_stage", severity="high",
                            draft={"action": "Book the call."}, evidence={}, opportunity_id="opp-000001", rep_id="rep-0001")
    (tmp_path / "identities.yaml").write_text(f"users:\n  {getpass.getuser()}: mgr-0001\n")
    return tmp_path, item.item_id


def _cli(home, *args, env=None):
    return runner.invoke(app, [*args, "--home", str(home)], env={"SALES_SUPERVISOR_TOKEN": "", **(env or {})})


# -- edited text length


def test_edited_text_over_the_limit_is_refused_with_a_clear_message(tmp_path):
    with open_ledger(home=tmp_path) as led:
        digest = led.create_digest("run-1", "mgr-1", AS_OF)
        a, b = (led.add_item(digest.digest_id, flag_id=f"f{i}", rule_id="r", severity="low", draft={}, evidence={}) for i in (1, 2))
        with pytest.raises(EditTooLong, match="2,001 characters; the limit is 2,000"):
            led.record_decision(a.item_id, "edit", "mgr-1", "cli", edited_text="x" * 2001)
        assert led.get_decision(a.item_id) is None
        assert led.record_decision(b.item_id, "edit", "mgr-1", "cli", edited_text="y" * 2000).action == "edit"
    with open_ledger(home=tmp_path, max_edited_chars=10) as led:
        with pytest.raises(EditTooLong, match="the limit is 10"):
            led.record_decision(a.item_id, "edit", "mgr-1", "cli", edited_text="eleven char")


def test_cli_edit_limit_is_configurable(home):
    home, item_id = home
    result = _cli(home, "review", "edit", item_id, "--text", "A" * 60, env={"SALES_SUPERVISOR_MAX_EDITED_CHARS": "50"})
    assert result.exit_code == 2 and "--text is too long" in result.output and "limit is 50" in result.output


def test_slack_edit_over_the_limit_gets_a_modal_error(slack_app, ledger, posted):  # noqa: F811
    item_id = posted.item_ids[0]
    submission = {
        "type": "view_submission", "team": {"id": "T0FAKE001"}, "user": {"id": "UMGR1", "team_id": "T0FAKE001"},
        "api_app_id": "A0FAKE", "token": "x",
        "view": {"id": "V3", "type": "modal", "callback_id": EDIT_CALLBACK_ID, "team_id": "T0FAKE001", "app_id": "A0FAKE",
                 "private_metadata": json.dumps({"item_id": item_id, "channel": None, "ts": None}),
                 "state": {"values": {EDIT_BLOCK_ID: {EDIT_INPUT_ACTION_ID: {"type": "plain_text_input", "value": "z" * 2500}}}}},
    }
    response = _dispatch(slack_app, submission)
    body = json.loads(response.body)
    assert response.status == 200 and body["response_action"] == "errors" and "limit is 2,000" in body["errors"][EDIT_BLOCK_ID]
    assert ledger.get_decision(item_id) is None


# -- malformed Slack payloads


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "block_actions", "actions": [{"action_id": ACTION_APPROVE, "value": "x"}]},  # no user
        {"type": "block_actions", "user": "UMGR1", "actions": [{"action_id": ACTION_APPROVE, "value": "x"}]},
        {"type": "block_actions", "user": {"id": "UMGR1"}, "actions": "approve"},
        {"type": "block_actions", "user": {"id": "UMGR1"}, "actions": [{"action_id": ACTION_APPROVE, "value": 7}]},
        {"type": "view_submission", "user": {"id": "UMGR1"}, "view": {"callback_id": EDIT_CALLBACK_ID, "private_metadata": "{oops"}},
        {"type": "view_submission", "user": {"id": "UMGR1"}},
    ],
)
def test_signed_malformed_payloads_get_400(slack_app, ledger, posted, payload):  # noqa: F811
    response = _dispatch(slack_app, payload)
    assert response.status == 400 and "malformed Slack payload" in response.body
    assert all(ledger.get_decision(i) is None for i in posted.item_ids)


def test_unsigned_malformed_payload_is_still_401(slack_app):  # noqa: F811
    body = form_body({"type": "block_actions", "actions": "x"})
    response = slack_app.dispatch(BoltRequest(body=body, headers=sign(body, secret="wrong")))
    assert response.status == 401


@pytest.mark.parametrize("body", ["payload=%7Bnot-json", urlencode({"payload": "[1, 2]"}), urlencode({"payload": "\"text\""})])
def test_unparseable_bodies_get_400_over_wsgi(slack_app, body):  # noqa: F811
    raw = body.encode()
    headers = sign(body)
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/slack/events", "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "3030", "wsgi.input": io.BytesIO(raw), "CONTENT_LENGTH": str(len(raw)),
        "CONTENT_TYPE": headers["content-type"], "wsgi.url_scheme": "http",
        "HTTP_X_SLACK_REQUEST_TIMESTAMP": headers["x-slack-request-timestamp"], "HTTP_X_SLACK_SIGNATURE": headers["x-slack-signature"],
    }
    seen = {}
    out = wsgi_app(slack_app)(environ, lambda status, hdrs: seen.setdefault("status", status))
    assert seen["status"].startswith("400") and b"malformed Slack payload" in b"".join(out)


# -- --as ""


@pytest.mark.parametrize("command", [["review", "approve", "ITEM"], ["risk", "snooze", "opp-000001", "--until", "2026-10-20", "--reason", "x"]])
def test_empty_as_is_a_clear_error(home, command):
    home, item_id = home
    args = [item_id if a == "ITEM" else a for a in command]
    result = _cli(home, *args, "--as", "")
    assert result.exit_code == 2 and "--as is empty" in result.output
    with open_ledger(home=home) as led:
        assert led.get_decision(item_id) is None and led.active_snoozes(dt.date(2026, 10, 2)) == []


# -- snooze end date: inclusive in the ledger and the engine


def test_snooze_end_date_is_inclusive_in_ledger_and_engine(tmp_path):
    until = AS_OF + dt.timedelta(days=7)
    with open_ledger(home=tmp_path) as led:
        led.add_snooze("opp-1", until, by="mgr-1", reason="holiday")
        on_until, after = led.active_snoozes(until), led.active_snoozes(until + dt.timedelta(days=1))
    assert [s.opportunity_id for s in on_until] == ["opp-1"] and after == []
    engine = EngineSnooze(opportunity_id="opp-1", until=until)
    flag = make_flag("opp-1", "rep-1")
    assert engine.covers(flag, until) and not engine.covers(flag, until + dt.timedelta(days=1))


# -- already decided: by whom and when, for a full id and a prefix


def test_approving_a_decided_item_says_by_whom_and_when_for_id_and_prefix(home):
    home, item_id = home
    assert _cli(home, "review", "dismiss", item_id).exit_code == 0
    full = _cli(home, "review", "approve", item_id)
    prefix = _cli(home, "review", "approve", item_id[:8])
    assert full.exit_code == prefix.exit_code == 4
    assert "dismissd" not in full.output
    for result in (full, prefix):
        text = " ".join(result.output.split())
        assert f"item {item_id} was dismissed by mgr-0001 at " in text and "decisions are final" in text
    assert " ".join(full.output.split()) == " ".join(prefix.output.split())
