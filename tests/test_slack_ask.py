"""The /ask slash command through slack-bolt with signed requests: a private answer, scoped to the asker's team."""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import urlencode

import pytest
from slack_bolt.request import BoltRequest

from agents.ask import answer, scope_for
from agents.ledger import open_ledger
from agents.review.slack_app import SlackAppSettings, approver_map, build_app
from tests.fakes.slack_server import FakeSlackServer
from tests.test_ask import RecordingLayer, catalog  # noqa: F401 - the module-scoped catalog fixture
from tests.test_review_fixtures import BOT_TOKEN, MANAGERS, SIGNING_SECRET, Clock, sign

AS_OF = dt.date(2026, 10, 1)


@pytest.fixture
def slack():
    with FakeSlackServer() as server:
        yield server


@pytest.fixture
def setup(slack, catalog, tmp_path):  # noqa: F811
    layer = RecordingLayer(catalog)
    delegates = {"mgr-1": ["dlg-1"]}
    with open_ledger(home=tmp_path / "home", clock=Clock(), delegates=delegates) as ledger:
        def ask(question, approver):
            scope = scope_for(approver, delegates, is_manager=not approver.startswith("slack:"))
            return answer(question, layer=layer, as_of=AS_OF, scope=scope, catalog=catalog, ledger=ledger)

        settings = SlackAppSettings(bot_token=BOT_TOKEN, signing_secret=SIGNING_SECRET, api_base_url=slack.base_url,
                                    approvers=approver_map(MANAGERS, {"UDELEG1": "dlg-1"}), process_before_response=True)
        yield build_app(ledger, settings, ask=ask), layer, ledger


def command(slack, text, user="UMGR1", **sign_kw):
    body = urlencode({"token": "legacy", "team_id": "T0FAKE001", "channel_id": "D0MGR1", "user_id": user,
                      "command": "/ask", "text": text, "response_url": slack.response_url("ask"), "trigger_id": "1.2.3"})
    return body, sign(body, **sign_kw)


def dispatch(app, body, headers):
    return app.dispatch(BoltRequest(body=body, headers=headers))


def responses(slack):
    return [params for path, params in slack._state.response_urls if path.endswith("/ask")]


def test_a_manager_gets_a_private_answer_limited_to_their_team(setup, slack):
    app, layer, ledger = setup
    resp = dispatch(app, *command(slack, "How did the enterprise team do last quarter?"))
    assert resp.status == 200 and json.loads(resp.body)["response_type"] == "ephemeral"
    (posted,) = responses(slack)
    assert posted["response_type"] == "ephemeral"
    blocks = json.dumps(posted["blocks"])
    assert "Win rate: 25.0%" in posted["text"]
    assert "mfq_" in blocks and "SELECT 1" in blocks  # the query id and its SQL
    assert "{{ Entity('opportunity__manager') }} IN ('mgr-1')" in layer.calls[-1].where
    assert [r.actor for r in ledger.audit_rows() if r.action == "ask.answered"] == ["mgr-1"]


def test_a_delegate_sees_the_teams_they_decide_for_and_a_stranger_nothing(setup, slack):
    app, layer, _ = setup
    dispatch(app, *command(slack, "win rate by rep", user="UDELEG1"))
    assert "IN ('dlg-1', 'mgr-1')" in layer.calls[-1].where[-1]
    n = len(layer.calls)
    dispatch(app, *command(slack, "win rate by rep", user="USTRANGER"))
    assert len(layer.calls) == n
    assert "neither a manager nor a delegate" in responses(slack)[-1]["text"]


def test_an_unanswerable_question_says_why(setup, slack):
    app, layer, _ = setup
    dispatch(app, *command(slack, "What will we close next quarter?"))
    assert layer.calls == []
    assert "future" in responses(slack)[-1]["text"]


def test_forged_and_replayed_commands_are_refused(setup, slack):
    app, layer, _ = setup
    body, _headers = command(slack, "win rate")
    assert dispatch(app, body, sign(body, secret="not-the-secret")).status == 401
    assert dispatch(app, body, sign(body, timestamp=int(dt.datetime.now().timestamp()) - 600)).status == 401
    assert layer.calls == [] and responses(slack) == []


def test_an_empty_command_gets_usage_help(setup, slack):
    app, layer, _ = setup
    resp = dispatch(app, *command(slack, "  "))
    assert "Ask a question" in json.loads(resp.body)["text"] and layer.calls == []


def test_the_manifest_declares_the_command():
    from agents.review.slack_app import app_manifest

    manifest = app_manifest("https://review.example.test/slack/events")
    (cmd,) = manifest["features"]["slash_commands"]
    assert (cmd["command"], cmd["url"]) == ("/ask", "https://review.example.test/slack/events")
    assert "commands" in manifest["oauth_config"]["scopes"]["bot"]
