"""Microsoft Teams: the digest card, Bot Framework JWT validation against a local OpenID/JWKS server with
self-signed keys, decisions through the ledger (RBAC, audit), and posting exactly once against a local server
speaking the Bot Framework connector REST format."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest

from agents.ledger import open_ledger
from agents.review import build_digests
from agents.review.posting import record_digest
from agents.review.teams import ConversationStore, TeamsApp, TeamsSettings, make_server
from agents.review.teams_cards import ADAPTIVE_CARD_TYPE, SUBMIT_KIND
from tests.fakes.teams_server import FakeBotFramework, new_key
from tests.test_review_fixtures import AS_OF, MANAGERS, REPS, Clock, pairs

MANAGER_AAD = "aad-manager-1"
OTHER_AAD = "aad-manager-2"
DELEGATE_AAD = "aad-delegate-1"


@pytest.fixture
def bf():
    with FakeBotFramework() as server:
        yield server


@pytest.fixture
def ledger(tmp_path):
    with open_ledger(home=tmp_path / "home", clock=Clock(), delegates={"mgr-1": ["dlg-1"]}) as ledger:
        yield ledger


@pytest.fixture
def digest_id(ledger):
    digest = build_digests(pairs(), REPS, MANAGERS, AS_OF, 5)[0]
    assert digest.manager_id == "mgr-1"
    return record_digest(ledger, digest)


def settings_for(bf: FakeBotFramework, tmp_path) -> TeamsSettings:
    return TeamsSettings(
        app_id=bf.app_id, app_password=bf.app_password,
        approvers={MANAGER_AAD: "mgr-1", OTHER_AAD: "mgr-2", DELEGATE_AAD: "dlg-1"},
        openid_metadata_url=bf.base_url + "/openid", token_url=bf.base_url + "/token",
        conversations_path=tmp_path / "teams" / "conversations.json", timeout_s=5,
    )


@pytest.fixture
def app(bf, ledger, tmp_path):
    return TeamsApp(ledger, settings_for(bf, tmp_path))


def activity(bf, *, aad=MANAGER_AAD, value=None, text=None, kind="message", reply_to="act-1", conversation="a:conv-mgr-1"):
    act = {
        "type": kind, "id": "inbound-1", "channelId": "msteams", "serviceUrl": bf.service_url,
        "from": {"id": f"29:{aad}", "aadObjectId": aad, "name": aad},
        "recipient": {"id": f"28:{bf.app_id}", "name": "Sales Supervisor"},
        "conversation": {"id": conversation, "conversationType": "personal"},
        "timestamp": "2026-10-01T08:00:00Z",
    }
    if value is not None:
        act["value"] = value
    if text is not None:
        act["text"] = text
    if reply_to:
        act["replyToId"] = reply_to
    return act


def submit(action, item_id, **inputs):
    return {"kind": SUBMIT_KIND, "action": action, "item_id": item_id,
            **{f"{k}:{item_id}": v for k, v in inputs.items()}}


def post(app, body, auth):
    return app.handle(json.dumps(body).encode(), auth)


# -- JWT validation -------------------------------------------------------------------------------

def test_a_valid_bot_framework_token_is_accepted(app, bf):
    assert post(app, activity(bf, kind="conversationUpdate"), bf.auth()) == (200, None)
    assert any(r.path == "/keys" for r in bf.requests)  # the signature was checked against the published keys


@pytest.mark.parametrize("forgery", [
    "no header", "not bearer", "signed by another key", "another app's audience", "expired",
    "another issuer", "another service url", "unknown key id", "garbage",
])
def test_forged_or_misdirected_tokens_are_refused_before_anything_is_decided(app, bf, ledger, digest_id, forgery):
    item_id = ledger.items_for_digest(digest_id)[0].item_id
    body = activity(bf, value=submit("approve", item_id))
    auth = {
        "no header": "",
        "not bearer": "Basic " + bf.token(),
        "signed by another key": bf.auth(key=new_key()),
        "another app's audience": bf.auth(aud="someone-elses-bot"),
        "expired": bf.auth(expires_in=-3600),
        "another issuer": bf.auth(iss="https://evil.example"),
        "another service url": bf.auth(service_url="https://evil.example/"),
        "unknown key id": bf.auth(kid="nope"),
        "garbage": "Bearer not.a.jwt",
    }[forgery]
    status, _ = post(app, body, auth)
    assert status == 401
    assert ledger.get_decision(item_id) is None
    assert bf.posts() == []


def test_a_key_not_endorsed_for_teams_is_refused(ledger, digest_id, tmp_path):
    with FakeBotFramework(endorsements=("slack",)) as other:
        app = TeamsApp(ledger, settings_for(other, tmp_path))
        assert post(app, activity(other, kind="conversationUpdate"), other.auth())[0] == 401


def test_the_app_refuses_to_run_without_credentials():
    with pytest.raises(ValueError, match="TEAMS_APP_ID and TEAMS_APP_PASSWORD"):
        TeamsSettings.from_env({})


def test_malformed_activities_are_a_400(app, bf):
    assert app.handle(b"{not json", bf.auth())[0] == 400
    assert app.handle(b"[]", bf.auth())[0] == 400
    assert post(app, activity(bf, value={"kind": "something else"}), bf.auth())[0] == 400


# -- decisions ------------------------------------------------------------------------------------

def test_the_manager_approves_from_the_card_and_it_is_recorded_audited_and_shown(app, bf, ledger, digest_id):
    # The manager installs the app: the bot learns their chat, and posts the digest there.
    assert post(app, activity(bf, kind="conversationUpdate"), bf.auth())[0] == 200
    assert app.post_digest(digest_id)[0] == "sent"
    card_activity = bf.activities["a:conv-mgr-1"][0]
    item_id = ledger.items_for_digest(digest_id)[0].item_id

    status, _ = post(app, activity(bf, value=submit("approve", item_id), reply_to=card_activity["id"]), bf.auth())
    assert status == 200
    decision = ledger.get_decision(item_id)
    assert (decision.action, decision.approver_id, decision.approver_channel) == ("approve", "mgr-1", "teams")
    assert any(r.subject_id == item_id and r.action.startswith("decision") and "teams" in r.payload for r in ledger.audit_rows())
    # The card now shows the decision instead of the buttons, and the manager got a confirmation.
    (put,) = bf.puts()
    assert put.path.endswith("/" + card_activity["id"])
    updated = json.dumps(put.body)
    assert "Approved by mgr-1" in updated
    replies = [a for a in bf.activities["a:conv-mgr-1"] if a.get("text")]
    assert replies and "Approved by mgr-1" in replies[-1]["text"]
    assert ledger.verify_audit().ok


def test_edit_and_dismiss_carry_the_text_and_reason(app, bf, ledger, digest_id):
    first, second = [it.item_id for it in ledger.items_for_digest(digest_id)[:2]]
    post(app, activity(bf, value=submit("edit", first, edited_text="Call the CFO on Tuesday about the budget.")), bf.auth())
    post(app, activity(bf, value=submit("dismiss", second, reason="Already on it")), bf.auth())
    assert ledger.get_decision(first).edited_text == "Call the CFO on Tuesday about the budget."
    assert (ledger.get_decision(second).action, ledger.get_decision(second).reason) == ("dismiss", "Already on it")


def test_another_manager_is_refused_and_the_refusal_audited(app, bf, ledger, digest_id):
    item_id = ledger.items_for_digest(digest_id)[0].item_id
    assert post(app, activity(bf, aad=OTHER_AAD, value=submit("approve", item_id), conversation="a:conv-2"), bf.auth())[0] == 200
    assert ledger.get_decision(item_id) is None
    refused = [r for r in ledger.audit_rows() if r.action == "decision.refused" and r.subject_id == item_id]
    assert refused and refused[0].actor == "mgr-2"
    assert "not authorised" in bf.activities["a:conv-2"][-1]["text"]
    # An unmapped Teams user is teams:<id>, refused the same way.
    post(app, activity(bf, aad="aad-stranger", value=submit("dismiss", item_id), conversation="a:conv-3"), bf.auth())
    assert ledger.get_decision(item_id) is None
    assert any(r.actor == "teams:aad-stranger" for r in ledger.audit_rows() if r.action == "decision.refused")


def test_a_delegate_may_decide_and_decisions_are_final(app, bf, ledger, digest_id):
    item_id = ledger.items_for_digest(digest_id)[0].item_id
    post(app, activity(bf, aad=DELEGATE_AAD, value=submit("dismiss", item_id, reason="dup"), conversation="a:d"), bf.auth())
    assert ledger.get_decision(item_id).approver_id == "dlg-1"
    post(app, activity(bf, value=submit("approve", item_id)), bf.auth())
    assert ledger.get_decision(item_id).action == "dismiss"
    assert "Already decided" in bf.activities["a:conv-mgr-1"][-1]["text"]


# -- posting exactly once -------------------------------------------------------------------------

def remember_manager(app, bf):
    assert post(app, activity(bf, kind="conversationUpdate"), bf.auth())[0] == 200


def test_the_digest_card_is_posted_once_with_the_bot_token(app, bf, ledger, digest_id):
    assert app.post_digest(digest_id)[0] == "no chat"
    remember_manager(app, bf)
    status, ref = app.post_digest(digest_id)
    assert status == "sent" and ref.startswith("a:conv-mgr-1:act-")
    assert app.post_digest(digest_id)[0] == "already sent"
    (sent,) = bf.posts()
    assert sent.headers["authorization"] == "Bearer bot-token-1"
    assert bf.token_requests[0]["grant_type"] == ["client_credentials"]
    (attachment,) = sent.body["attachments"]
    assert attachment["contentType"] == ADAPTIVE_CARD_TYPE
    card = attachment["content"]
    items = ledger.items_for_digest(digest_id)
    submits = [a["data"] for block in card["body"] if block.get("type") == "Container"
               for el in block["items"] if el.get("type") == "ActionSet" for a in el["actions"]]
    assert {(s["action"], s["item_id"]) for s in submits} == {(a, it.item_id) for it in items for a in ("approve", "edit", "dismiss")}
    subject = items[0].evidence["subject_label"]
    assert subject in json.dumps(card)
    digest = ledger.get_digest(digest_id)
    assert (digest.status, digest.channel) == ("posted", "teams")


def test_a_refused_post_is_not_sent_and_retried(app, bf, ledger, digest_id):
    remember_manager(app, bf)
    bf.fail_next.append(429)
    assert app.post_digest(digest_id)[0] == "not sent"
    assert app.post_digest(digest_id)[0] == "sent"
    assert len(bf.posts()) == 2


@pytest.mark.parametrize("failure", [500, "drop"])
def test_an_unknown_outcome_is_never_retried_until_a_person_resolves_it(app, bf, ledger, digest_id, failure):
    remember_manager(app, bf)
    bf.fail_next.append(failure)
    assert app.post_digest(digest_id)[0] == "unknown"
    status, detail = app.post_digest(digest_id)
    assert status == "unknown" and "teams resolve" in detail
    assert len(bf.posts()) == 1  # no second post
    assert app.resolve(digest_id, sent=False, resolver="ops-1") == "not sent"
    assert app.post_digest(digest_id)[0] == "sent"
    assert len(bf.posts()) == 2


def test_a_crash_between_the_attempt_and_its_outcome_is_unknown(app, bf, ledger, digest_id):
    remember_manager(app, bf)
    ledger.record_event("pipeline", "teams.post_started", "digest", digest_id, {})  # as if the process died here
    assert app.post_digest(digest_id)[0] == "unknown"
    assert bf.posts() == []
    assert app.resolve(digest_id, sent=True, resolver="ops-1") == "sent"
    assert app.post_digest(digest_id)[0] == "already sent"


def test_no_connection_is_not_sent(ledger, digest_id, tmp_path):
    with FakeBotFramework() as bf:
        app = TeamsApp(ledger, settings_for(bf, tmp_path))
        remember_manager(app, bf)
        assert ConversationStore(tmp_path / "teams" / "conversations.json").get("mgr-1")["service_url"] == bf.service_url
        app.credentials.get_access_token()  # the token is cached; the connector is what goes away
    assert app.post_digest(digest_id)[0] == "not sent"
    assert ledger.get_digest(digest_id).error.startswith("teams: not sent")


# -- over real HTTP -------------------------------------------------------------------------------

def test_over_real_http(app, bf, ledger, digest_id):
    item_id = ledger.items_for_digest(digest_id)[0].item_id
    httpd = make_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/api/messages"

        def send(headers):
            req = urllib.request.Request(url, data=json.dumps(activity(bf, value=submit("approve", item_id))).encode(),
                                         headers={"Content-Type": "application/json", **headers}, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    return resp.status
            except urllib.error.HTTPError as exc:
                return exc.code

        assert send({}) == 401
        assert ledger.get_decision(item_id) is None
        assert send({"Authorization": bf.auth()}) == 200
        assert ledger.get_decision(item_id).approver_channel == "teams"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_teams_post_command_posts_once(bf, tmp_path):
    from typer.testing import CliRunner

    from sales_supervisor.cli import app as cli

    home = tmp_path / "state"
    with open_ledger(home=home) as ledger:
        record_digest(ledger, build_digests(pairs(), REPS, MANAGERS, AS_OF, 5)[0])
    ConversationStore(home / "teams" / "conversations.json").put(
        "mgr-1", {"service_url": bf.service_url, "conversation_id": "a:conv-mgr-1", "user_id": MANAGER_AAD})
    env = {"TEAMS_APP_ID": bf.app_id, "TEAMS_APP_PASSWORD": bf.app_password, "TEAMS_TOKEN_URL": bf.base_url + "/token",
           "TEAMS_OPENID_METADATA_URL": bf.base_url + "/openid", "SALES_SUPERVISOR_HOME": str(home), "COLUMNS": "200"}
    runner = CliRunner()
    first = runner.invoke(cli, ["teams", "post", "--home", str(home)], env=env)
    assert first.exit_code == 0, first.output
    assert "mgr-1" in first.output and "sent" in first.output
    again = runner.invoke(cli, ["teams", "post", "--home", str(home)], env=env)
    assert again.exit_code == 0 and "already sent" in again.output
    assert len(bf.posts()) == 1
    missing = runner.invoke(cli, ["teams", "post", "--home", str(home)], env={"SALES_SUPERVISOR_HOME": str(home), "TEAMS_APP_ID": ""})
    assert missing.exit_code == 2 and "TEAMS_APP_ID" in missing.output


def test_a_refused_bot_token_is_not_sent(bf, ledger, digest_id, tmp_path):
    good = TeamsApp(ledger, settings_for(bf, tmp_path))
    remember_manager(good, bf)
    wrong = TeamsSettings(**{**settings_for(bf, tmp_path).__dict__, "app_password": "wrong"})
    status, detail = TeamsApp(ledger, wrong).post_digest(digest_id)
    assert status == "not sent" and "token endpoint: HTTP 401" in detail
    assert bf.posts() == []
    assert good.post_digest(digest_id)[0] == "sent"


def test_teams_manifest_names_the_bot():
    from typer.testing import CliRunner

    from sales_supervisor.cli import app as cli

    res = CliRunner().invoke(cli, ["teams", "manifest", "--app-id", "11111111-2222-3333-4444-555555555555"])
    assert res.exit_code == 0, res.output
    manifest = json.loads(res.output)
    assert manifest["id"] == manifest["bots"][0]["botId"] == "11111111-2222-3333-4444-555555555555"
    assert manifest["bots"][0]["scopes"] == ["personal"]
    assert CliRunner().invoke(cli, ["teams", "manifest"], env={"TEAMS_APP_ID": ""}).exit_code == 2


def test_card_text_from_the_crm_carries_no_live_links():
    import datetime as dt
    from types import SimpleNamespace

    from agents.review.teams_cards import digest_card

    item = SimpleNamespace(
        item_id="it-1", rep_id="rep-1", rule_id="stalled_in_stage", severity="high", opportunity_id="opp-1",
        draft={"action": "Click [here](https://evil.example/reset) now", "rationale": "see https://evil.example"},
        evidence={"subject_label": "Acme [login](https://evil.example)", "rep": {"rep_name": "Ann"},
                  "links": {"crm": [{"label": "opportunity opp-1", "url": "javascript:alert(1)"}]}},
    )
    card = digest_card("Maria", dt.date(2026, 10, 1), [item])
    blocks = [el for b in card["body"] for el in ([b] + b.get("items", []))]
    text = json.dumps([el for el in blocks if el.get("type") == "TextBlock"])  # what Teams renders as Markdown
    assert "https://evil" not in text and "javascript:" not in text
    assert "hxxps://evil[.]example" in text
    # The edit box starts from the draft as written (an input is not rendered, and edits must not alter it).
    (edit,) = [el for el in blocks if el.get("id") == "edited_text:it-1"]
    assert edit["value"].startswith("Click [here](https://evil.example/reset)")


def test_a_question_written_to_the_bot_is_answered_privately_within_the_team(bf, ledger, tmp_path):
    import datetime as dt

    from agents.ask import Catalog, answer, scope_for
    from sales_supervisor.dbt import prepare_dbt_project
    from sales_supervisor.settings import DBT_PROJECT_DIR
    from tests.test_ask import RecordingLayer

    prepare_dbt_project()
    catalog = Catalog.from_manifest_file(DBT_PROJECT_DIR / "target" / "semantic_manifest.json")
    layer = RecordingLayer(catalog)

    def ask(question, approver):
        return answer(question, layer=layer, as_of=dt.date(2026, 10, 1), catalog=catalog, ledger=ledger,
                      scope=scope_for(approver, {}, is_manager=not approver.startswith("teams:")))

    app = TeamsApp(ledger, settings_for(bf, tmp_path), ask=ask)
    assert post(app, activity(bf, text="How did the enterprise team do last quarter?", reply_to=None), bf.auth())[0] == 200
    app.wait_for_answers()
    reply = bf.activities["a:conv-mgr-1"][-1]["text"]
    assert "Win rate: 25.0%" in reply and "query mfq_" in reply and "SELECT 1" in reply
    assert "IN ('mgr-1')" in layer.calls[-1].where[-1]
    # Unauthenticated: no answer, no query.
    n = len(layer.calls)
    assert post(app, activity(bf, text="win rate", reply_to=None), "")[0] == 401
    app.wait_for_answers()
    assert len(layer.calls) == n
