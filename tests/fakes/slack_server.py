"""A local stand-in for Slack's Web API (and response_url hooks) on 127.0.0.1.

The real ``slack_sdk.WebClient(token=..., base_url=server.base_url)`` talks to
it over HTTP, so the SDK's request building (form or JSON bodies, bearer
token) and response parsing are exercised without a network or a token.

Methods: auth.test, conversations.open, conversations.history,
chat.postMessage, chat.update, chat.postEphemeral, views.open; anything else
answers ``{"ok": false, "error": "unknown_method"}``. Posted messages are kept
per channel (with blocks and metadata) so chat.update and
conversations.history behave like Slack's. Every call is recorded in
``server.calls``; ``fail_next(method, error)`` scripts an error reply.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from tests.fakes.local_http import serve_locally, shut_down

BOT_USER_ID = "UBOT00001"
TEAM_ID = "T0FAKE001"


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    headers: dict[str, str]


@dataclass
class StoredMessage:
    channel: str
    ts: str
    text: str | None
    blocks: list[dict[str, Any]] | None
    metadata: dict[str, Any] | None
    updates: int = 0

    def as_api(self, include_metadata: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "message", "ts": self.ts, "user": BOT_USER_ID, "bot_id": "BFAKE0001", "text": self.text or ""}
        if self.blocks is not None:
            out["blocks"] = self.blocks
        if include_metadata and self.metadata is not None:
            out["metadata"] = self.metadata
        return out


@dataclass
class _State:
    calls: list[Call] = field(default_factory=list)
    messages: dict[str, list[StoredMessage]] = field(default_factory=dict)
    deleted: list[StoredMessage] = field(default_factory=list)  # chat.delete
    failures: dict[str, list[str]] = field(default_factory=dict)
    response_urls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def _decode_json_fields(params: dict[str, Any]) -> dict[str, Any]:
    # Form-encoded calls carry structured arguments (blocks, view, metadata) as JSON strings.
    out = dict(params)
    for key in ("blocks", "view", "metadata", "attachments"):
        value = out.get(key)
        if isinstance(value, str):
            try:
                out[key] = json.loads(value)
            except ValueError:
                pass
    return out


def _truthy(value: Any) -> bool:
    return value in (True, 1) or str(value).lower() in ("1", "true")


class FakeSlackServer:
    """Start with ``with FakeSlackServer() as slack:``; point a WebClient at ``slack.base_url``."""

    def __init__(self, *, clock: Callable[[], float] | None = None):
        self._state = _State()
        self._lock = threading.Lock()
        self._clock = clock or time.time
        self._seq = itertools.count(1)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> FakeSlackServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8") if length else ""
                ctype = (self.headers.get("Content-Type") or "").lower()
                if "application/json" in ctype:
                    params = json.loads(raw) if raw else {}
                else:
                    params = dict(parse_qsl(raw, keep_blank_values=True))
                headers = {k.lower(): v for k, v in self.headers.items()}
                path = self.path.split("?", 1)[0]
                if path.startswith("/api/"):
                    body = server._handle(path[len("/api/"):], _decode_json_fields(params), headers)
                    payload = json.dumps(body).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                elif path.startswith("/response/"):
                    with server._lock:
                        server._state.response_urls.append((path, params))
                        server._state.calls.append(Call("response_url", params, headers))
                    payload = b"ok"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                else:
                    payload = b"not found"
                    self.send_response(404)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST

        self._httpd, self._thread = serve_locally(Handler, "fake-slack")
        return self

    def stop(self) -> None:
        shut_down(self._httpd)
        self._httpd = None

    def __enter__(self) -> FakeSlackServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def response_url(self, name: str = "r1") -> str:
        return f"http://127.0.0.1:{self.port}/response/{name}"

    # -- scripting and inspection

    def fail_next(self, method: str, error: str = "internal_error") -> None:
        with self._lock:
            self._state.failures.setdefault(method, []).append(error)

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._state.calls)

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = 5.0) -> list[Call]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.calls_to(method)
            if len(found) >= count:
                return found
            time.sleep(0.01)
        raise AssertionError(f"expected {count} call(s) to {method}, got {len(self.calls_to(method))}")

    def messages(self, channel: str) -> list[StoredMessage]:
        with self._lock:
            return list(self._state.messages.get(channel, []))

    @property
    def deleted(self) -> list[StoredMessage]:
        """Messages removed by chat.delete."""
        with self._lock:
            return list(self._state.deleted)

    def all_messages(self) -> list[StoredMessage]:
        with self._lock:
            return [m for ms in self._state.messages.values() for m in ms]

    @staticmethod
    def dm_channel_for(user: str) -> str:
        return "D" + user.lstrip("U")[:10].upper()

    # -- the Web API

    def _next_ts(self) -> str:
        return f"{self._clock():.0f}.{next(self._seq):06d}"

    def _handle(self, method: str, params: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            self._state.calls.append(Call(method, params, headers))
            if not headers.get("authorization", "").startswith("Bearer "):
                return {"ok": False, "error": "not_authed"}
            queued = self._state.failures.get(method)
            if queued:
                return {"ok": False, "error": queued.pop(0)}
            handler = getattr(self, "_api_" + method.replace(".", "_"), None)
            if handler is None:
                return {"ok": False, "error": "unknown_method"}
            return handler(params)

    def _api_auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True, "url": "https://fake.slack.test/", "team": "Fake", "user": "sales-supervisor",
            "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": "BFAKE0001", "is_enterprise_install": False,
        }

    def _api_conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        users = params.get("users")
        if isinstance(users, list):
            users = ",".join(users)
        if not users:
            return {"ok": False, "error": "users_list_not_supplied"}
        if "," in users:
            return {"ok": True, "channel": {"id": "G" + str(abs(hash(users)))[:10]}}
        if users.startswith("UNKNOWN"):
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "channel": {"id": self.dm_channel_for(users)}}

    def _api_chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not params.get("text") and not params.get("blocks"):
            return {"ok": False, "error": "no_text"}
        blocks = params.get("blocks")
        if blocks is not None and len(blocks) > 50:
            return {"ok": False, "error": "invalid_blocks", "errors": ["must provide an array of no more than 50 items"]}
        msg = StoredMessage(channel, self._next_ts(), params.get("text"), blocks, params.get("metadata"))
        self._state.messages.setdefault(channel, []).append(msg)
        return {"ok": True, "channel": channel, "ts": msg.ts, "message": msg.as_api(True)}

    def _api_chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = params.get("channel"), params.get("ts")
        for msg in self._state.messages.get(channel, []):
            if msg.ts == ts:
                if "text" in params:
                    msg.text = params["text"]
                if "blocks" in params:
                    if params["blocks"] is not None and len(params["blocks"]) > 50:
                        return {"ok": False, "error": "invalid_blocks"}
                    msg.blocks = params["blocks"]
                msg.updates += 1
                return {"ok": True, "channel": channel, "ts": ts, "text": msg.text or "", "message": msg.as_api(False)}
        return {"ok": False, "error": "message_not_found"}

    def _api_chat_delete(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = params.get("channel"), params.get("ts")
        msgs = self._state.messages.get(channel, [])
        for msg in msgs:
            if msg.ts == ts:
                msgs.remove(msg)
                self._state.deleted.append(msg)
                return {"ok": True, "channel": channel, "ts": ts}
        return {"ok": False, "error": "message_not_found"}

    def _api_chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("channel") or not params.get("user"):
            return {"ok": False, "error": "channel_not_found"}
        return {"ok": True, "message_ts": self._next_ts()}

    def _api_views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("trigger_id"):
            return {"ok": False, "error": "invalid_trigger_id"}
        view = params.get("view")
        if not isinstance(view, dict) or view.get("type") != "modal":
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True, "view": {**view, "id": f"V{next(self._seq):08d}", "team_id": TEAM_ID}}

    def _api_conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel")
        msgs = self._state.messages.get(channel)
        if msgs is None:
            return {"ok": True, "messages": [], "has_more": False}
        oldest = float(params.get("oldest") or 0)
        latest = float(params["latest"]) if params.get("latest") else None
        inclusive = _truthy(params.get("inclusive"))
        limit = int(params.get("limit") or 100)

        def keep(m: StoredMessage) -> bool:
            ts = float(m.ts)
            lo = ts >= oldest if inclusive else ts > oldest
            hi = True if latest is None else (ts <= latest if inclusive else ts < latest)
            return lo and hi

        include_metadata = _truthy(params.get("include_all_metadata"))
        selected = sorted((m for m in msgs if keep(m)), key=lambda m: float(m.ts), reverse=True)
        return {
            "ok": True,
            "messages": [m.as_api(include_metadata) for m in selected[:limit]],
            "has_more": len(selected) > limit,
        }
