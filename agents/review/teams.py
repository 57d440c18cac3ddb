"""Microsoft Teams as a second manager channel: the digest as an Adaptive Card, decisions from its buttons.

Through the Bot Framework library (botbuilder / botframework-connector):

* Inbound: every activity POSTed to ``/api/messages`` carries a JWT the Bot
  Framework signs; ``JwtTokenValidation.authenticate_request`` checks its
  signature against the keys published at the OpenID metadata address, its
  issuer, audience (our app id), expiry, the key's endorsement for the
  channel, and that its serviceUrl claim is the activity's. Anything else is a
  401 before any handler runs. Without an app id and password the app refuses
  to start (the library would otherwise accept unauthenticated requests).
* Decisions go through the same domain layer as Slack: the Teams user is
  mapped to an approver id (``users`` in the Teams file; anyone unmapped is
  ``teams:<user id>``, which a delegates list may name), and
  ``Ledger.record_decision`` authorises, refuses and audits.
* Outbound: the digest card is posted with the connector client
  (``POST {serviceUrl}/v3/conversations/{id}/activities``) exactly once. The
  attempt is recorded in the audit trail before the request; the outcome is
  sent, not sent (nothing reached Teams: retried on the next post) or unknown
  (the request may have been accepted: never retried automatically; a person
  checks the chat and runs ``sales-supervisor teams resolve``), classified as
  agents.review.channels classifies sends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests
from botbuilder.schema import Activity, ActivityTypes, Attachment, ChannelAccount, ConversationAccount
from botframework.connector import ConnectorClient
from botframework.connector.auth import (
    AppCredentials,
    AuthenticationConstants,
    ChannelValidation,
    JwtTokenValidation,
    SimpleCredentialProvider,
)

from agents.ledger import AlreadyDecided, EditTooLong, Ledger, NotAuthorised
from agents.review.channels import NotSent, OutcomeUnknown, never_connected
from agents.review.teams_cards import digest_card, submitted

log = logging.getLogger(__name__)

MESSAGES_PATH = "/api/messages"
DEFAULT_TOKEN_URL = "https://login.microsoftonline.com/botframework.com/oauth2/v2.0/token"
DEFAULT_OAUTH_SCOPE = "https://api.botframework.com/.default"
CHANNEL = "teams"
STATUS_SENT, STATUS_NOT_SENT, STATUS_UNKNOWN = "sent", "not sent", "unknown"
_UNKNOWN_PREFIX = "teams: outcome unknown"
_NOT_SENT_PREFIX = "teams: not sent"


@dataclasses.dataclass(frozen=True)
class TeamsSettings:
    """What the Teams app needs. ``from_env`` reads TEAMS_APP_ID, TEAMS_APP_PASSWORD and the Teams file."""

    app_id: str
    app_password: str
    approvers: Mapping[str, str] = dataclasses.field(default_factory=dict)  # Teams user (AAD object id or 29:...) -> approver id
    openid_metadata_url: str = AuthenticationConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL
    token_url: str = DEFAULT_TOKEN_URL
    oauth_scope: str = DEFAULT_OAUTH_SCOPE
    conversations_path: Path | None = None  # manager id -> the chat the bot posts their digest to
    timeout_s: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, home: Path | None = None) -> TeamsSettings:
        """TEAMS_APP_ID and TEAMS_APP_PASSWORD (the Azure Bot's app registration); TEAMS_FILE (YAML, default
        <home>/teams.yaml: ``users`` Teams user id -> approver id); TEAMS_OPENID_METADATA_URL and TEAMS_TOKEN_URL
        (tests and sovereign clouds only)."""
        env = os.environ if env is None else env
        missing = [k for k in ("TEAMS_APP_ID", "TEAMS_APP_PASSWORD") if not (env.get(k) or "").strip()]
        if missing:
            raise ValueError(f"the Teams app needs {' and '.join(missing)} (see the README's Teams section); "
                             "without them the Bot Framework would accept unauthenticated requests")
        home = Path(home or env.get("SALES_SUPERVISOR_HOME") or "var")
        teams_file = Path(env.get("TEAMS_FILE") or home / "teams.yaml")
        approvers: dict[str, str] = {}
        if teams_file.exists():
            import yaml

            data = yaml.safe_load(teams_file.read_text()) or {}
            users = data.get("users") or {}
            if not isinstance(users, Mapping):
                raise ValueError(f"{teams_file}: 'users' must map Teams user ids to approver ids")
            approvers = {str(k): str(v) for k, v in users.items()}
        return cls(
            app_id=env["TEAMS_APP_ID"].strip(),
            app_password=env["TEAMS_APP_PASSWORD"],
            approvers=approvers,
            openid_metadata_url=env.get("TEAMS_OPENID_METADATA_URL") or AuthenticationConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL,
            token_url=env.get("TEAMS_TOKEN_URL") or DEFAULT_TOKEN_URL,
            conversations_path=home / "teams" / "conversations.json",
        )


class ClientCredentials(AppCredentials):
    """The bot's outbound token: OAuth 2.0 client credentials at the token endpoint (the Bot Framework's
    app-registration flow), cached until a minute before it expires."""

    def __init__(self, app_id: str, password: str, token_url: str = DEFAULT_TOKEN_URL, scope: str = DEFAULT_OAUTH_SCOPE,
                 timeout_s: float = 30.0) -> None:
        super().__init__(app_id=app_id, oauth_scope=scope)
        self._password = password
        self._token_url = token_url
        self._timeout = timeout_s
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()

    def get_access_token(self, force_refresh: bool = False) -> str:
        with self._lock:
            if self._token and not force_refresh and self._token[1] > time.monotonic() + 60:
                return self._token[0]
            resp = requests.post(self._token_url, data={
                "grant_type": "client_credentials", "client_id": self.microsoft_app_id,
                "client_secret": self._password, "scope": self.oauth_scope,
            }, timeout=self._timeout)
            if resp.status_code != 200:
                raise NotSent(f"Teams token endpoint: HTTP {resp.status_code}: {resp.text[:200]}")
            data = resp.json()
            self._token = (data["access_token"], time.monotonic() + float(data.get("expires_in", 3600)))
            return self._token[0]


class ConversationStore:
    """manager id -> {service_url, conversation_id, user_id}: where each manager's digest goes. The bot fills it
    when a mapped manager installs the app or writes to it (a JSON file under the state folder)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()

    def all(self) -> dict[str, dict[str, str]]:
        if self.path is None or not self.path.exists():
            return {}
        return json.loads(self.path.read_text() or "{}")

    def get(self, manager_id: str) -> dict[str, str] | None:
        return self.all().get(manager_id)

    def put(self, manager_id: str, ref: Mapping[str, str]) -> bool:
        """True when the reference is new or changed."""
        if self.path is None:
            return False
        with self._lock:
            data = self.all()
            if data.get(manager_id) == dict(ref):
                return False
            data[manager_id] = dict(ref)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
            tmp.replace(self.path)
            return True


def authenticate(settings: TeamsSettings, activity: Activity, auth_header: str) -> Any:
    """The caller's claims, or PermissionError: the Bot Framework's own JWT validation."""
    if not settings.app_id or not settings.app_password:
        raise PermissionError("the Teams app has no app id/password configured")
    if not auth_header:
        raise PermissionError("Required Authorization token was not supplied")
    ChannelValidation.open_id_metadata_endpoint = settings.openid_metadata_url
    credentials = SimpleCredentialProvider(settings.app_id, settings.app_password)
    try:
        return asyncio.run(JwtTokenValidation.authenticate_request(activity, auth_header, credentials, ""))
    except PermissionError:
        raise
    except Exception as exc:  # bad signature, unknown key, expired, wrong endorsement...: all unauthorised
        raise PermissionError(f"{type(exc).__name__}: {exc}") from exc


def teams_user_id(activity: Activity) -> str:
    sender = activity.from_property or ChannelAccount()
    return str(getattr(sender, "aad_object_id", None) or sender.id or "")


def resolve_approver(approvers: Mapping[str, str], activity: Activity) -> str:
    sender = activity.from_property or ChannelAccount()
    for key in (getattr(sender, "aad_object_id", None), sender.id):
        if key and key in approvers:
            return approvers[key]
    return f"teams:{teams_user_id(activity)}"


def classify_connector_failure(exc: BaseException, what: str) -> Exception:
    """sent / not sent / unknown for a failed connector write (msrest raises HttpOperationError or ClientRequestError)."""
    if isinstance(exc, (NotSent, OutcomeUnknown)):
        return exc
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status is not None:
        detail = f"Teams {what}: HTTP {status}"
        if status >= 500:
            return OutcomeUnknown(f"{detail} after the request was sent: the card may have been posted")
        return NotSent(f"{detail}: refused, nothing posted")
    if never_connected(exc):
        return NotSent(f"Teams {what}: could not connect ({type(exc).__name__})")
    return OutcomeUnknown(f"Teams {what}: {type(exc).__name__} after the request was sent ({exc})")


ConnectorFactory = Callable[[str], ConnectorClient]


class TeamsApp:
    """Handles Bot Framework activities (``handle``) and posts digests (``post_digest``)."""

    def __init__(self, ledger: Ledger, settings: TeamsSettings, *, conversations: ConversationStore | None = None,
                 ask: Callable[[str, str], Any] | None = None) -> None:
        """``ask(question, approver_id) -> agents.ask.Answer``: answer questions written to the bot (as Slack's /ask)."""
        self.ledger = ledger
        self.ask = ask
        self._workers: list[threading.Thread] = []
        self.settings = settings
        self.conversations = conversations or ConversationStore(settings.conversations_path)
        self.credentials = ClientCredentials(settings.app_id, settings.app_password, settings.token_url,
                                             settings.oauth_scope, settings.timeout_s)

    def connector(self, service_url: str) -> ConnectorClient:
        client = ConnectorClient(self.credentials, base_url=service_url)
        client.config.retry_policy.retries = 0  # a retried POST could post twice; the outcome is classified instead
        client.config.connection.timeout = self.settings.timeout_s
        return client

    # -- inbound ---------------------------------------------------------------------------------

    def handle(self, body: bytes, auth_header: str) -> tuple[int, dict[str, Any] | None]:
        """(HTTP status, JSON body) for one POST to /api/messages."""
        try:
            data = json.loads(body.decode("utf-8"))
            if not isinstance(data, dict) or not isinstance(data.get("type"), str):
                raise ValueError("not an activity")
            activity = Activity().deserialize(data)
        except (ValueError, UnicodeDecodeError, TypeError, AttributeError) as exc:
            return 400, {"error": f"malformed activity: {exc}"}
        try:
            authenticate(self.settings, activity, auth_header)
        except PermissionError as exc:
            log.warning("Teams request refused: %s", exc)
            return 401, {"error": "unauthorized"}
        if activity.type in (ActivityTypes.conversation_update, ActivityTypes.installation_update):
            self._remember(activity)
            return 200, None
        if activity.type == ActivityTypes.message:
            self._remember(activity)
            choice = submitted(activity.value)
            if choice is not None:
                self._decide(activity, *choice)
            elif activity.value is not None:
                return 400, {"error": "malformed card submission"}
            elif self.ask is not None and (activity.text or "").strip():
                # Answered after the 200: a first question may take longer than the channel waits for.
                worker = threading.Thread(target=self._answer, args=(activity,), daemon=True, name="teams-ask")
                self._workers.append(worker)
                worker.start()
            else:
                self._reply(activity, "I post your pipeline review digest here each morning; decide each item with "
                                      "its buttons (approve, approve edited, dismiss)"
                                      + (", and answer questions about the governed metrics." if self.ask else "."))
            return 200, None
        return 200, None

    def _remember(self, activity: Activity) -> None:
        """Keep where to reach a mapped manager (their 1:1 chat with the bot)."""
        approver = resolve_approver(self.settings.approvers, activity)
        conversation = activity.conversation or ConversationAccount()
        if approver.startswith("teams:") or getattr(conversation, "conversation_type", None) not in (None, "personal"):
            return
        ref = {"service_url": activity.service_url, "conversation_id": conversation.id, "user_id": teams_user_id(activity)}
        if self.conversations.put(approver, ref):
            self.ledger.record_event(approver, "teams.conversation_recorded", "manager", approver, ref)

    def _decide(self, activity: Activity, action: str, item_id: str, edited: str | None, reason: str | None) -> None:
        item = self.ledger.get_item(item_id)
        if item is None:
            self._reply(activity, "That item is no longer in the review ledger.")
            return
        approver = resolve_approver(self.settings.approvers, activity)
        from agents.review.digests import coaching_text

        if action == "edit" and (not edited or edited.strip() == coaching_text(item.draft or {}).strip()):
            self._reply(activity, "Nothing was edited: change the coaching text, or use Approve.")
            return
        try:
            decision = self.ledger.record_decision(
                item_id, action, approver, CHANNEL, edited_text=edited if action == "edit" else None,
                reason=reason if action == "dismiss" else None,
            )
        except NotAuthorised:
            self._reply(activity, "You are not authorised to decide this item: only the rep's manager or an "
                                  "allow-listed delegate can. The attempt was logged.")
            return
        except AlreadyDecided as exc:
            prev = exc.decision
            self._reply(activity, f"Already decided: {prev.action} by {prev.approver_id} at "
                                  f"{prev.decided_at:%Y-%m-%d %H:%M}Z. Decisions are final.")
            return
        except EditTooLong as exc:
            self._reply(activity, f"Not recorded: {exc}")
            return
        from agents.review.teams_cards import decision_line

        self._refresh_card(activity, item.digest_id)
        self._reply(activity, decision_line(decision))

    def _answer(self, activity: Activity) -> None:
        approver = resolve_approver(self.settings.approvers, activity)
        try:
            result = self.ask((activity.text or "").strip(), approver)
        except Exception as exc:  # noqa: BLE001 - the asker gets a reason, the log the detail
            log.exception("Teams question failed")
            self._reply(activity, f"Could not answer ({type(exc).__name__}); the warehouse may be busy with a run.")
            return
        self._reply(activity, answer_markdown(result))

    def wait_for_answers(self, timeout: float = 30.0) -> None:
        for worker in list(self._workers):
            worker.join(timeout)

    def _refresh_card(self, activity: Activity, digest_id: str) -> None:
        """Show the decision in the card (best effort: the decision is already durable)."""
        if not activity.reply_to_id:
            return
        try:
            card = self.card_for(digest_id)
            update = Activity(type=ActivityTypes.message, id=activity.reply_to_id,
                              attachments=[_card(card)])
            self.connector(activity.service_url).conversations.update_activity(
                activity.conversation.id, activity.reply_to_id, update)
        except Exception as exc:  # noqa: BLE001 - logged; the card catches up on the next post
            log.warning("could not update the Teams card %s: %s", activity.reply_to_id, exc)

    def _reply(self, activity: Activity, text: str) -> None:
        try:
            reply = Activity(type=ActivityTypes.message, text=text, reply_to_id=activity.id,
                             from_property=activity.recipient, recipient=activity.from_property)
            self.connector(activity.service_url).conversations.send_to_conversation(activity.conversation.id, reply)
        except Exception as exc:  # noqa: BLE001 - a lost confirmation loses nothing: the ledger has the decision
            log.warning("could not reply in Teams: %s", exc)

    # -- outbound --------------------------------------------------------------------------------

    def card_for(self, digest_id: str) -> dict[str, Any]:
        digest = self.ledger.get_digest(digest_id)
        items = self.ledger.items_for_digest(digest_id)
        decisions = {it.item_id: d for it in items if (d := self.ledger.get_decision(it.item_id)) is not None}
        manager = ((items[0].evidence or {}).get("manager") or {}).get("manager_name") if items else None
        return digest_card(manager or digest.manager_id, digest.as_of, items, decisions)

    def post_status(self, digest_id: str) -> str | None:
        """sent / not sent / unknown for this digest's Teams post (None: never attempted)."""
        digest = self.ledger.get_digest(digest_id)
        if digest is None:
            return None
        if digest.status == "posted" and digest.channel == CHANNEL:
            return STATUS_SENT
        rows = [r for r in self.ledger.audit_rows(subject_type="digest", subject_id=digest_id)
                if r.action in ("teams.post_started", "digest.posted", "digest.post_failed")]
        if not rows:
            return None
        last = rows[-1]
        if last.action == "teams.post_started":
            return STATUS_UNKNOWN  # started and never finished: it may have been posted
        if digest.status == "post_failed" and (digest.error or "").startswith(_UNKNOWN_PREFIX):
            return STATUS_UNKNOWN
        if digest.status == "post_failed" and (digest.error or "").startswith(_NOT_SENT_PREFIX):
            return STATUS_NOT_SENT
        return None

    def post_digest(self, digest_id: str, *, actor: str = "pipeline") -> tuple[str, str]:
        """Post the digest card to its manager's Teams chat, at most once. Returns (status, detail):
        sent, already sent, not sent (retried next time), unknown (needs a person), no chat."""
        digest = self.ledger.get_digest(digest_id)
        if digest is None:
            raise KeyError(digest_id)
        status = self.post_status(digest_id)
        if status == STATUS_SENT:
            return "already sent", digest.external_ref or ""
        if status == STATUS_UNKNOWN:
            return STATUS_UNKNOWN, (f"an earlier post may have reached Teams ({digest.error or 'interrupted'}); check "
                                    f"the chat, then `sales-supervisor teams resolve {digest_id} --sent|--not-sent`")
        ref = self.conversations.get(digest.manager_id)
        if ref is None:
            return "no chat", f"{digest.manager_id} has not installed the Teams app (or is not in the Teams file's users)"
        card = self.card_for(digest_id)
        self.ledger.record_event(actor, "teams.post_started", "digest", digest_id,
                                 {"conversation_id": ref["conversation_id"], "service_url": ref["service_url"]})
        try:
            activity = Activity(type=ActivityTypes.message, attachments=[_card(card)],
                                summary=f"Pipeline review for {digest.as_of}")
            resp = self.connector(ref["service_url"]).conversations.send_to_conversation(ref["conversation_id"], activity)
        except Exception as exc:  # noqa: BLE001 - every failure is classified below
            outcome = classify_connector_failure(exc, "post digest")
            if isinstance(outcome, NotSent):
                self.ledger.mark_digest_failed(digest_id, f"{_NOT_SENT_PREFIX}: {outcome}", channel=CHANNEL, actor=actor)
                return STATUS_NOT_SENT, str(outcome)
            self.ledger.mark_digest_failed(digest_id, f"{_UNKNOWN_PREFIX}: {outcome}", channel=CHANNEL, actor=actor)
            return STATUS_UNKNOWN, str(outcome)
        external = f"{ref['conversation_id']}:{getattr(resp, 'id', '') or ''}"
        self.ledger.mark_digest_posted(digest_id, channel=CHANNEL, external_ref=external, actor=actor)
        return STATUS_SENT, external

    def resolve(self, digest_id: str, *, sent: bool, resolver: str) -> str:
        """A person checked the chat: record the post as sent, or as not sent (the next post retries)."""
        if self.post_status(digest_id) != STATUS_UNKNOWN:
            raise ValueError(f"digest {digest_id}'s Teams post is not waiting on a person")
        if sent:
            self.ledger.mark_digest_posted(digest_id, channel=CHANNEL, external_ref=f"resolved by {resolver}", actor=resolver)
            return STATUS_SENT
        self.ledger.mark_digest_failed(digest_id, f"{_NOT_SENT_PREFIX} (resolved by {resolver})", channel=CHANNEL, actor=resolver)
        return STATUS_NOT_SENT

    def post_latest(self, *, actor: str = "pipeline") -> list[tuple[str, str, str, str]]:
        """Post each known manager's latest digest with undecided items: [(manager, digest, status, detail)]."""
        out = []
        for manager_id in sorted(self.conversations.all()):
            pending = self.ledger.pending_items(manager_id, latest_only=True)
            if not pending:
                out.append((manager_id, "", "nothing to post", "no undecided items"))
                continue
            digest_id = pending[-1].digest_id
            status, detail = self.post_digest(digest_id, actor=actor)
            out.append((manager_id, digest_id, status, detail))
        return out


def answer_markdown(answer: Any, *, rows: int = 10) -> str:
    """An agents.ask Answer as a Teams message (Markdown): the answer, then each query's id, SQL and first rows.
    Only the asker's 1:1 chat with the bot sees it."""
    from agents.ask.answer import format_value
    from agents.review.escaping import defang_urls

    out = [("" if answer.answered else "⚠ ") + defang_urls(answer.text)]
    for q in answer.queries[:3]:
        out.append(f"**query {q.query_id}**: {defang_urls(q.description)} ({q.row_count} row{'s' if q.row_count != 1 else ''})")
        out.append("```\n" + q.sql.strip()[:2500] + "\n```")
        if q.rows:
            head = " | ".join(q.columns)
            body = "\n".join(" | ".join(format_value(c, r.get(c)) for c in q.columns) for r in q.rows[:rows])
            more = f"\n... {q.row_count - rows} more rows" if q.row_count > rows else ""
            out.append("```\n" + defang_urls(head + "\n" + body) + more + "\n```")
    out.append(f"_{answer.engine}, as of {answer.as_of}" + (f", limited to {', '.join(answer.scope)}" if answer.scope else "") + "_")
    return "\n\n".join(out)


def _card(card: Mapping[str, Any]) -> Attachment:
    from botbuilder.core import CardFactory

    return CardFactory.adaptive_card(dict(card))


def app_manifest(app_id: str, *, name: str = "Sales Supervisor", developer_url: str = "https://example.com",
                 version: str = "1.0.0") -> dict[str, Any]:
    """The Teams app manifest (manifest.json; zip it with two icons, color.png 192x192 and outline.png 32x32,
    and upload it in Teams: Apps -> Manage your apps -> Upload an app). Personal scope: the 1:1 chat each
    manager's digest goes to."""
    return {
        "$schema": "https://developer.microsoft.com/en-us/json-schemas/teams/v1.16/MicrosoftTeams.schema.json",
        "manifestVersion": "1.16",
        "version": version,
        "id": app_id,
        "developer": {"name": name, "websiteUrl": developer_url, "privacyUrl": developer_url, "termsOfUseUrl": developer_url},
        "name": {"short": name, "full": f"{name}: pipeline review digests"},
        "description": {
            "short": "Approve, edit or dismiss coaching before it reaches a rep.",
            "full": "Each morning's pipeline review digest as a card: approve, edit or dismiss each coaching item. "
                    "Nothing reaches a rep until the manager approves it.",
        },
        "icons": {"color": "color.png", "outline": "outline.png"},
        "accentColor": "#2E5E8C",
        "bots": [{"botId": app_id, "scopes": ["personal"], "supportsFiles": False, "isNotificationOnly": False}],
        "permissions": ["identity", "messageTeamMembers"],
        "validDomains": [],
    }


# -- HTTP ------------------------------------------------------------------------------------------

def wsgi_app(app: TeamsApp) -> Callable:
    """POST /api/messages -> TeamsApp.handle; anything else 404/405."""

    def application(environ, start_response):
        if environ.get("PATH_INFO") != MESSAGES_PATH:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        if environ.get("REQUEST_METHOD") != "POST":
            start_response("405 Method Not Allowed", [("Content-Type", "text/plain"), ("Allow", "POST")])
            return [b"POST only"]
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > 1_000_000:
            start_response("413 Payload Too Large", [("Content-Type", "text/plain")])
            return [b"too large"]
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        status, payload = app.handle(body, environ.get("HTTP_AUTHORIZATION") or "")
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized"}.get(status, "Error")
        data = json.dumps(payload).encode() if payload is not None else b""
        start_response(f"{status} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    return application


def make_server(app: TeamsApp, host: str = "127.0.0.1", port: int = 3978):
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server as _make
    from socketserver import ThreadingMixIn

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args) -> None:
            log.info("%s - %s", self.address_string(), format % args)

    class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    return _make(host, port, wsgi_app(app), server_class=ThreadingWSGIServer, handler_class=QuietHandler)


def serve(port: int = 3978, *, ledger: Ledger, settings: TeamsSettings, host: str = "127.0.0.1",
          ask: Callable[[str, str], Any] | None = None) -> None:
    """Run until interrupted. The Azure Bot's messaging endpoint is https://<public host>/api/messages
    (a TLS-terminating proxy or tunnel in front of this port)."""
    with make_server(TeamsApp(ledger, settings, ask=ask), host, port) as httpd:
        log.info("Teams app listening on http://%s:%d%s", host, port, MESSAGES_PATH)
        httpd.serve_forever()
