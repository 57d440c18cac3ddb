"""A local stand-in for the Anthropic API (Messages and Message Batches wire formats).

The real `anthropic.Anthropic(base_url=server.base_url, api_key="test-key-not-real")`
client talks to it over HTTP on 127.0.0.1, so the SDK's request building,
retries, response parsing and JSONL streaming are all exercised without a
network or a key.

Scripting:
* `server.enqueue(Reply...)` queues replies for `POST /v1/messages`, consumed in order;
* when the queue is empty, `responder(body) -> dict | Reply` answers (a dict is the
  tool input of a `submit_coaching_draft` call);
* batch items are answered by `batch_overrides[custom_id]` or the responder;
  a batch reports `in_progress` for `batch_polls` retrieves, then `ended`.

Every request is recorded in `server.requests` (method, path, headers, JSON body).
Usage blocks mimic prompt caching: the first request with a given system prompt
writes the cache, later ones read it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes.local_http import serve_locally, shut_down

TOOL_NAME = "submit_coaching_draft"
_ids = itertools.count(1)


@dataclass
class Reply:
    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    tool_input: dict[str, Any] | None = None
    usage: dict[str, int] | None = None

    @classmethod
    def tool(cls, tool_input: dict[str, Any], usage: dict[str, int] | None = None) -> Reply:
        return cls(tool_input=tool_input, usage=usage)

    @classmethod
    def text(cls, text: str) -> Reply:
        return cls(body={"content": [{"type": "text", "text": text}], "stop_reason": "end_turn"})

    @classmethod
    def error(cls, status: int, err_type: str, message: str, headers: dict[str, str] | None = None) -> Reply:
        hdrs = {"retry-after-ms": "5", **(headers or {})}
        return cls(status=status, body={"type": "error", "error": {"type": err_type, "message": message}}, headers=hdrs)

    @classmethod
    def rate_limited(cls) -> Reply:
        # retry-after (seconds) as the real API sends it; retry-after-ms (read first by the SDK) keeps tests fast.
        return cls.error(429, "rate_limit_error", "Number of requests has exceeded your rate limit", {"retry-after": "1"})

    @classmethod
    def overloaded(cls) -> Reply:
        return cls.error(529, "overloaded_error", "Overloaded")

    @classmethod
    def server_error(cls) -> Reply:
        return cls.error(500, "api_error", "Internal server error")


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class FakeAnthropicServer:
    def __init__(
        self,
        responder: Callable[[dict[str, Any]], dict[str, Any] | Reply] | None = None,
        *,
        batch_polls: int = 1,
        system_tokens: int = 1400,
    ) -> None:
        self.responder = responder
        self.batch_polls = batch_polls
        self.system_tokens = system_tokens
        self.queue: deque[Reply] = deque()
        self.batch_overrides: dict[str, Reply] = {}
        self.requests: list[RecordedRequest] = []
        self.batches: dict[str, dict[str, Any]] = {}
        self._cached_prefixes: set[str] = set()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------
    def __enter__(self) -> FakeAnthropicServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def do_POST(self) -> None:
                server._handle(self, "POST")

            def do_GET(self) -> None:
                server._handle(self, "GET")

        self._httpd, self._thread = serve_locally(Handler, "fake-anthropic")

    def stop(self) -> None:
        shut_down(self._httpd)
        self._httpd = None

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def enqueue(self, *replies: Reply) -> None:
        self.queue.extend(replies)

    # -- helpers for assertions ------------------------------------------------------------------------
    def message_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path == "/v1/messages"]

    # -- wire format ----------------------------------------------------------------------------------
    def _usage_for(self, body: dict[str, Any], override: dict[str, int] | None) -> dict[str, int]:
        if override is not None:
            return {"cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, **override}
        system = body.get("system")
        cached = isinstance(system, list) and any(b.get("cache_control") for b in system if isinstance(b, dict))
        user_chars = sum(len(m.get("content", "")) for m in body.get("messages", []) if isinstance(m.get("content"), str))
        usage = {"input_tokens": max(user_chars // 4, 1), "output_tokens": 160,
                 "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        if cached:
            key = hashlib.sha256(json.dumps([body.get("tools"), system], sort_keys=True).encode()).hexdigest()
            with self._lock:
                hit = key in self._cached_prefixes
                self._cached_prefixes.add(key)
            usage["cache_read_input_tokens" if hit else "cache_creation_input_tokens"] = self.system_tokens
        else:
            usage["input_tokens"] += self.system_tokens
        return usage

    def message_json(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "id": f"msg_fake{next(_ids):06d}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "unknown"),
            "content": [],
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": self._usage_for(body, reply.usage),
        }
        if reply.tool_input is not None:
            msg["content"] = [
                {"type": "tool_use", "id": f"toolu_fake{next(_ids):06d}", "name": TOOL_NAME, "input": reply.tool_input}
            ]
        if reply.body:
            msg.update(reply.body)
        return msg

    def _answer(self, body: dict[str, Any]) -> Reply:
        if self.responder is None:
            raise AssertionError("no scripted reply and no responder")
        out = self.responder(body)
        return out if isinstance(out, Reply) else Reply.tool(out)

    def _batch_json(self, batch: dict[str, Any]) -> dict[str, Any]:
        ended = batch["polls_left"] <= 0
        n = len(batch["requests"])
        return {
            "id": batch["id"],
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": {
                "processing": 0 if ended else n,
                "succeeded": batch["succeeded"] if ended else 0,
                "errored": (n - batch["succeeded"]) if ended else 0,
                "canceled": 0,
                "expired": 0,
            },
            "created_at": batch["created_at"],
            "expires_at": batch["expires_at"],
            "ended_at": batch["created_at"] if ended else None,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": f"{self.base_url}/v1/messages/batches/{batch['id']}/results" if ended else None,
        }

    def _run_batch(self, batch: dict[str, Any]) -> None:
        lines = []
        succeeded = 0
        for req in batch["requests"]:
            cid, params = req["custom_id"], req["params"]
            reply = self.batch_overrides.get(cid) or self._answer(params)
            if reply.status == 200:
                result = {"type": "succeeded", "message": self.message_json(params, reply)}
                succeeded += 1
            else:
                result = {"type": "errored", "error": {"type": "error", **(reply.body or {}), "request_id": None}}
            lines.append(json.dumps({"custom_id": cid, "result": result}))
        batch["results"] = "\n".join(lines) + "\n"
        batch["succeeded"] = succeeded

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        path = h.path.split("?", 1)[0]
        length = int(h.headers.get("content-length") or 0)
        raw = h.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        with self._lock:
            self.requests.append(RecordedRequest(method, path, {k.lower(): v for k, v in h.headers.items()}, body))

        if method == "POST" and path == "/v1/messages":
            with self._lock:
                reply = self.queue.popleft() if self.queue else None
            reply = reply or self._answer(body)
            if reply.status != 200:
                return self._send(h, reply.status, reply.body or {}, reply.headers)
            return self._send(h, 200, self.message_json(body, reply), reply.headers)

        if method == "POST" and path == "/v1/messages/batches":
            now = dt.datetime.now(dt.timezone.utc)
            batch = {
                "id": f"msgbatch_fake{next(_ids):06d}",
                "requests": body["requests"],
                "polls_left": self.batch_polls,
                "created_at": now.isoformat().replace("+00:00", "Z"),
                "expires_at": (now + dt.timedelta(hours=24)).isoformat().replace("+00:00", "Z"),
                "succeeded": 0,
            }
            self._run_batch(batch)
            self.batches[batch["id"]] = batch
            return self._send(h, 200, self._batch_json(batch))

        parts = path.strip("/").split("/")
        if len(parts) >= 4 and parts[:3] == ["v1", "messages", "batches"] and parts[3] in self.batches:
            batch = self.batches[parts[3]]
            if method == "GET" and len(parts) == 4:
                batch["polls_left"] -= 1
                return self._send(h, 200, self._batch_json(batch))
            if method == "GET" and len(parts) == 5 and parts[4] == "results":
                data = batch["results"].encode()
                h.send_response(200)
                h.send_header("content-type", "application/binary")
                h.send_header("content-length", str(len(data)))
                h.end_headers()
                h.wfile.write(data)
                return None
            if method == "POST" and len(parts) == 5 and parts[4] == "cancel":
                return self._send(h, 200, self._batch_json(batch))
        return self._send(h, 404, {"type": "error", "error": {"type": "not_found_error", "message": path}})

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("content-type", "application/json")
        h.send_header("request-id", f"req_fake{next(_ids):06d}")
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("content-length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
