"""The Slack app managers decide in: approve / edit / dismiss on each digest item.

slack-bolt in HTTP mode (Socket Mode when an app-level token is configured).
Bolt verifies every request's ``X-Slack-Signature`` (v0 HMAC-SHA256 of
``v0:<timestamp>:<body>`` with the signing secret) and refuses a
``X-Slack-Request-Timestamp`` more than five minutes from now (replays), with
401, before any handler runs.

Who may decide is the ledger's call, not this module's: the Slack user is
mapped to an approver id (the managers' Slack ids and a configured map for
delegates; anyone unmapped becomes ``slack:<user id>``, which a delegates
list may also name), and ``Ledger.record_decision`` refuses and audits
everyone else. The decision is stored before ``ack()``, so by the time Slack
gets its 200 the decision is durable; the message update follows.

The Snooze button goes through ``Ledger.snooze`` (the same rules and audited
refusals as the CLI). A signed payload of the wrong shape gets a 400 (the
``_RefuseMalformed`` middleware, after the signature check), and a body bolt
cannot even parse gets a 400 from ``wsgi_app``'s guard, never a 500.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from slack_bolt import App, BoltResponse
from slack_bolt.middleware import Middleware
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from agents.ledger import AlreadyDecided, ConfirmationRequired, EditTooLong, Ledger, NotAuthorised, SnoozeRefused, UnknownItem
from agents.review.blocks import (
    ACTION_APPROVE,
    ACTION_APPROVE_CONFIRMED,
    ACTION_DISMISS,
    ACTION_EDIT,
    ACTION_SNOOZE,
    EDIT_BLOCK_ID,
    EDIT_CALLBACK_ID,
    EDIT_INPUT_ACTION_ID,
    apply_decision,
    decision_text,
    edit_modal,
)
from agents.review.digests import coaching_text

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"


@dataclasses.dataclass(frozen=True)
class SlackAppSettings:
    """What the Slack app needs; ``from_env`` reads the usual Slack variable names."""

    bot_token: str
    signing_secret: str
    app_token: str | None = None  # xapp-...: Socket Mode instead of a public HTTP endpoint
    api_base_url: str | None = None  # tests point this at a local fake
    approvers: Mapping[str, str] = dataclasses.field(default_factory=dict)  # Slack user id -> approver id
    process_before_response: bool = False
    token_verification_enabled: bool = True
    snooze_days: int = 14  # the Snooze button silences the item's rule on its deal through the digest date + this

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, approvers: Mapping[str, str] | None = None) -> SlackAppSettings:
        """SLACK_BOT_TOKEN (xoxb-), SLACK_SIGNING_SECRET (HTTP mode), SLACK_APP_TOKEN (xapp-: Socket Mode),
        SLACK_API_BASE_URL (tests and proxies only)."""
        env = os.environ if env is None else env
        app_token = env.get("SLACK_APP_TOKEN") or None
        missing = ["SLACK_BOT_TOKEN"] if not env.get("SLACK_BOT_TOKEN") else []
        if not app_token and not env.get("SLACK_SIGNING_SECRET"):
            missing.append("SLACK_SIGNING_SECRET (or SLACK_APP_TOKEN for Socket Mode)")
        if missing:
            raise ValueError(f"the Slack app needs {', '.join(missing)} (see the README's Slack section)")
        return cls(
            bot_token=env["SLACK_BOT_TOKEN"],
            signing_secret=env.get("SLACK_SIGNING_SECRET", ""),
            app_token=app_token,
            api_base_url=env.get("SLACK_API_BASE_URL") or None,
            approvers=dict(approvers or {}),
        )

    def client(self) -> WebClient:
        if self.api_base_url:
            return WebClient(token=self.bot_token, base_url=self.api_base_url)
        return WebClient(token=self.bot_token)


# Least privilege: post and update messages, open DMs, read DM history (check-before-write). Nothing calls users.*.
BOT_SCOPES = ("chat:write", "im:write", "im:history")


def app_manifest(request_url: str | None = "https://YOUR-HOST/slack/events", *, name: str = "Sales Supervisor") -> dict[str, Any]:
    """The Slack app manifest (paste as YAML or JSON at api.slack.com/apps -> Create -> From a manifest).

    ``request_url=None``: Socket Mode (no public endpoint; needs an app-level
    token with ``connections:write``).
    """
    interactivity: dict[str, Any] = {"is_enabled": True}
    if request_url:
        interactivity["request_url"] = request_url
    # The /ask slash command (agents/review/slack_ask.py) is answered at the same endpoint; it needs the commands scope.
    ask_command: dict[str, Any] = {"command": "/ask", "description": "Ask the governed pipeline metrics a question",
                                   "usage_hint": "win rate by segment last quarter", "should_escape": False}
    if request_url:
        ask_command["url"] = request_url
    manifest = {
        "display_information": {"name": name, "description": "Pipeline review digests: approve, edit or dismiss coaching before it reaches a rep."},
        "features": {"bot_user": {"display_name": name, "always_online": False}, "slash_commands": [ask_command]},
        "oauth_config": {"scopes": {"bot": [*BOT_SCOPES, "commands"]}},
        "settings": {
            "interactivity": interactivity,
            "org_deploy_enabled": False,
            "socket_mode_enabled": request_url is None,
            "token_rotation_enabled": False,
        },
    }
    from agents.coach.slack import add_brief_command  # the deal coach's /brief (issue 16)

    return add_brief_command(manifest, request_url)


def approver_map(
    managers: Sequence[Mapping[str, Any]] = (), delegate_slack_ids: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Slack user id -> approver id: each manager's ``slack_user_id``, then the delegates' map."""
    out = {str(m["slack_user_id"]): str(m["manager_id"]) for m in managers if m.get("slack_user_id")}
    out.update({str(k): str(v) for k, v in (delegate_slack_ids or {}).items()})
    return out


def resolve_approver(approvers: Mapping[str, str], slack_user_id: str, item: Any | None = None) -> str:
    """The approver id the ledger judges; the item's own manager is recognised from its stored Slack id."""
    if slack_user_id in approvers:
        return approvers[slack_user_id]
    evidence = getattr(item, "evidence", None) or {}
    manager = evidence.get("manager") or {}
    if manager.get("slack_user_id") and manager.get("slack_user_id") == slack_user_id:
        return str(manager.get("manager_id") or getattr(item, "manager_id"))
    return f"slack:{slack_user_id}"


def _message_ref(body: Mapping[str, Any]) -> tuple[str | None, str | None]:
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
    ts = (body.get("message") or {}).get("ts") or (body.get("container") or {}).get("message_ts")
    return channel, ts


def _is_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def payload_problem(body: Any) -> str | None:
    """Why an interactivity payload cannot be handled (a 400), or None. Checked after the signature."""
    if not isinstance(body, Mapping):
        return "the payload is not a JSON object"
    kind = body.get("type")
    if kind not in ("block_actions", "view_submission", "view_closed"):
        return None  # events, url_verification, ssl_check...: bolt answers these itself
    user = body.get("user")
    if not isinstance(user, Mapping) or not _is_str(user.get("id")):
        return "user.id is missing"
    if kind == "block_actions":
        actions = body.get("actions")
        if not isinstance(actions, list) or not actions or not all(isinstance(a, Mapping) for a in actions):
            return "actions must be a non-empty list of objects"
        for a in actions:
            if not _is_str(a.get("action_id")) or not isinstance(a.get("value", ""), str):
                return "each action needs a string action_id and value"
        for key in ("channel", "container", "message"):
            if key in body and not isinstance(body[key], Mapping):
                return f"{key} must be an object"
        return None
    view = body.get("view")
    if not isinstance(view, Mapping):
        return "view is missing"
    meta = view.get("private_metadata") or "{}"
    try:
        if not isinstance(json.loads(meta), Mapping):
            return "view.private_metadata is not a JSON object"
    except (TypeError, ValueError):
        return "view.private_metadata is not JSON"
    state = view.get("state", {})
    if not isinstance(state, Mapping) or not isinstance(state.get("values", {}), Mapping):
        return "view.state.values must be an object"
    return None


class _RefuseMalformed(Middleware):
    """After bolt's signature check: a signed but malformed payload is a 400, never a 500.

    A class (not a function) middleware, so bolt does not build its injected
    arguments from the malformed body first.
    """

    def process(self, *, req, resp, next):
        problem = payload_problem(req.body)
        if problem is not None:
            log.warning("malformed Slack payload refused: %s", problem)
            return BoltResponse(status=400, body=f"malformed Slack payload: {problem}")
        return next()


def build_app(ledger: Ledger, settings: SlackAppSettings, *, client: WebClient | None = None, ask: Any = None) -> App:
    """The bolt App with the review handlers; serve it with ``serve`` or any bolt adapter.

    ``ask(question, approver_id) -> agents.ask.Answer``: also answer the ``/ask`` slash command (agents/review/slack_ask.py)."""
    client = client or settings.client()
    app = App(
        client=client,
        signing_secret=settings.signing_secret,
        process_before_response=settings.process_before_response,
        token_verification_enabled=settings.token_verification_enabled,
        # Socket Mode has no signature (the socket is authenticated); HTTP always verifies.
        request_verification_enabled=True,
    )

    app.use(_RefuseMalformed())
    if ask is not None:
        from agents.review.slack_ask import register_ask_command

        register_ask_command(app, settings.approvers, ask)

    def ephemeral(channel: str | None, user: str, text: str) -> None:
        if not channel:
            return
        try:
            client.chat_postEphemeral(channel=channel, user=user, text=text)
        except SlackApiError as exc:
            log.warning("could not post an ephemeral message to %s: %s", user, exc.response.get("error"))

    def update_message(channel: str | None, ts: str | None, blocks: list[dict[str, Any]] | None, item_id: str, text: str, edited: str | None) -> bool:
        if not channel or not ts:
            return False
        try:
            if blocks is None:
                history = client.conversations_history(channel=channel, latest=ts, inclusive=True, limit=1)
                found = [m for m in history.get("messages", []) if m.get("ts") == ts]
                if not found:
                    return False
                blocks = found[0].get("blocks") or []
            client.chat_update(
                channel=channel, ts=ts, blocks=apply_decision(blocks, item_id, text=text, edited_text=edited), text=text
            )
            return True
        except SlackApiError as exc:
            log.warning("could not update the digest message %s/%s: %s", channel, ts, exc.response.get("error"))
            return False

    def decide(ack, body: Mapping[str, Any], action: Mapping[str, Any], verb: str, confirmed: bool = False) -> None:
        item_id = str(action.get("value") or "")
        user = body["user"]["id"]
        channel, ts = _message_ref(body)
        item = ledger.get_item(item_id)
        if item is None:
            ack()
            ephemeral(channel, user, "That item is no longer in the review ledger.")
            return
        approver = resolve_approver(settings.approvers, user, item)
        try:
            decision = ledger.record_decision(item_id, verb, approver, "slack", confirmed=confirmed)
        except ConfirmationRequired:
            ack()
            ephemeral(channel, user, "This verdict stays with you and needs a second confirmation: use its Record verdict button.")
            return
        except NotAuthorised:
            ack()
            ephemeral(channel, user, "You are not authorised to decide this item: only the rep's manager or an allow-listed delegate can. The attempt was logged.")
            return
        except AlreadyDecided as exc:
            ack()
            previous = exc.decision
            ephemeral(
                channel, user,
                f"Already decided: {previous.action} by {previous.approver_id} at {previous.decided_at:%Y-%m-%d %H:%M}Z. Decisions are final.",
            )
            return
        ack()
        text = decision_text(decision.action, user, decision.approver_id, decision.decided_at, decision.mode)
        blocks = (body.get("message") or {}).get("blocks")
        update_message(channel, ts, blocks, item_id, text, decision.edited_text)

    @app.action(ACTION_APPROVE)
    def on_approve(ack, body, action):
        decide(ack, body, action, "approve")

    @app.action(ACTION_APPROVE_CONFIRMED)
    def on_approve_confirmed(ack, body, action):
        # Slack showed the button's confirm dialog and the manager confirmed: the second confirmation.
        decide(ack, body, action, "approve", confirmed=True)

    @app.action(ACTION_DISMISS)
    def on_dismiss(ack, body, action):
        decide(ack, body, action, "dismiss")

    @app.action(ACTION_SNOOZE)
    def on_snooze(ack, body, action):
        ack()
        item_id = str(action.get("value") or "")
        user = body["user"]["id"]
        channel, _ts = _message_ref(body)
        item = ledger.get_item(item_id)
        if item is None or not item.opportunity_id:
            ephemeral(channel, user, "That item is no longer in the review ledger (or is not about one deal).")
            return
        digest = ledger.get_digest(item.digest_id)
        until = (digest.as_of if digest else dt.date.today()) + dt.timedelta(days=settings.snooze_days)
        approver = resolve_approver(settings.approvers, user, item)
        try:
            ledger.snooze(
                item.opportunity_id, until, by=approver, rule_id=item.rule_id, channel="slack",
                reason=f"snoozed from Slack for {settings.snooze_days} days",
            )
        except NotAuthorised:
            ephemeral(channel, user, "You are not authorised to snooze this deal: only the rep's manager or an allow-listed delegate can. The attempt was logged.")
            return
        except SnoozeRefused as exc:
            ephemeral(channel, user, f"Not snoozed: {exc}")
            return
        ephemeral(channel, user, f"Snoozed {item.rule_id} on this deal through {until.isoformat()} (inclusive). The flag can return after that.")

    @app.action(ACTION_EDIT)
    def on_edit(ack, body, action):
        ack()
        item_id = str(action.get("value") or "")
        user = body["user"]["id"]
        channel, ts = _message_ref(body)
        item = ledger.get_item(item_id)
        if item is None:
            ephemeral(channel, user, "That item is no longer in the review ledger.")
            return
        approver = resolve_approver(settings.approvers, user, item)
        if not ledger.is_authorised(approver, item.manager_id):
            # No decision is attempted yet, so the ledger has nothing to refuse: audit the attempt here.
            ledger.record_event(
                approver, "decision.refused", "item", item_id,
                {"action": "edit", "stage": "open_editor", "channel": "slack", "slack_user_id": user,
                 "refusal": "not_authorised", "manager_id": item.manager_id},
            )
            ephemeral(channel, user, "You are not authorised to edit this item: only the rep's manager or an allow-listed delegate can. The attempt was logged.")
            return
        existing = ledger.get_decision(item_id)
        if existing is not None:
            ephemeral(channel, user, f"Already decided: {existing.action} by {existing.approver_id}. Decisions are final.")
            return
        subject = (item.evidence or {}).get("subject_label") or item.opportunity_id or item_id
        client.views_open(
            trigger_id=body["trigger_id"],
            view=edit_modal(item_id, coaching_text(item.draft or {}), subject=str(subject), channel=channel, message_ts=ts),
        )

    @app.view(EDIT_CALLBACK_ID)
    def on_edit_submit(ack, body, view):
        meta = json.loads(view.get("private_metadata") or "{}")
        item_id = str(meta.get("item_id") or "")
        user = body["user"]["id"]
        text = (((view.get("state") or {}).get("values") or {}).get(EDIT_BLOCK_ID) or {}).get(EDIT_INPUT_ACTION_ID, {}).get("value")
        if not text or not text.strip():
            ack(response_action="errors", errors={EDIT_BLOCK_ID: "The edited action cannot be empty."})
            return
        item = ledger.get_item(item_id)
        approver = resolve_approver(settings.approvers, user, item)
        try:
            decision = ledger.record_decision(item_id, "edit", approver, "slack", edited_text=text.strip())
        except UnknownItem:
            ack(response_action="errors", errors={EDIT_BLOCK_ID: "That item is no longer in the review ledger."})
            return
        except NotAuthorised:
            ack(response_action="errors", errors={EDIT_BLOCK_ID: "You are not authorised to decide this item. The attempt was logged."})
            return
        except AlreadyDecided as exc:
            ack(response_action="errors", errors={EDIT_BLOCK_ID: f"Already decided ({exc.decision.action}); decisions are final."})
            return
        except EditTooLong as exc:
            ack(response_action="errors", errors={EDIT_BLOCK_ID: str(exc)})
            return
        except ConfirmationRequired:  # a manager-only verdict is recorded with its Record verdict button, not edited
            ack(response_action="errors", errors={EDIT_BLOCK_ID: "This verdict stays with you: use its Record verdict button."})
            return
        ack()
        note = decision_text(decision.action, user, decision.approver_id, decision.decided_at, decision.mode)
        if not update_message(meta.get("channel"), meta.get("ts"), None, item_id, note, decision.edited_text):
            ephemeral(meta.get("channel"), user, note)

    from agents.coach.slack import register_brief_command  # the deal coach's /brief (issue 16): private, audited

    register_brief_command(app, ledger, settings.approvers)
    return app


def wsgi_app(app: App):
    """A WSGI callable serving bolt at ``/slack/events`` (interactivity and events)."""
    from slack_bolt.adapter.wsgi import SlackRequestHandler

    handler = SlackRequestHandler(app, path=EVENTS_PATH)

    def guarded(environ, start_response):
        # bolt parses the form's ``payload`` JSON before any middleware runs; garbage there must be a 400, not a 500.
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        raw = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(raw)
        problem = _form_problem(raw, environ.get("CONTENT_TYPE") or "")
        if problem is not None:
            start_response("400 Bad Request", [("Content-Type", "text/plain; charset=utf-8")])
            return [f"malformed Slack payload: {problem}".encode()]
        return handler(environ, start_response)

    return guarded


def _form_problem(raw: bytes, content_type: str) -> str | None:
    from urllib.parse import parse_qs

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "the body is not UTF-8"
    if "application/x-www-form-urlencoded" not in content_type:
        if "json" in content_type and text:
            try:
                json.loads(text)
            except ValueError:
                return "the body is not JSON"
        return None
    payload = parse_qs(text).get("payload")
    if not payload:
        return None
    try:
        parsed = json.loads(payload[0])
    except ValueError:
        return "the payload field is not JSON"
    return None if isinstance(parsed, Mapping) else "the payload is not a JSON object"


def serve(port: int = 3000, *, ledger: Ledger, settings: SlackAppSettings, host: str = "127.0.0.1", ask: Any = None) -> None:
    """Run the app until interrupted: Socket Mode when ``settings.app_token`` is set, else HTTP on ``host:port``.

    In HTTP mode Slack's Interactivity Request URL is ``https://<public host>/slack/events``
    (put a TLS-terminating proxy or tunnel in front of this port).
    """
    app = build_app(ledger, settings, ask=ask)
    if settings.app_token:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        SocketModeHandler(app, settings.app_token).start()
        return
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args) -> None:
            log.info("%s - %s", self.address_string(), format % args)

    with make_server(host, port, wsgi_app(app), handler_class=QuietHandler) as httpd:
        log.info("Slack app listening on http://%s:%d%s", host, port, EVENTS_PATH)
        httpd.serve_forever()
