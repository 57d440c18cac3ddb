"""A local HTTP proxy that fails one request at a chosen point, in front of any fake service.

Put it between a real client and a fake (``FaultProxy(upstream_base_url)``; point the client at
``proxy.base_url``) and script the next matching request:

* ``refuse_before(status, headers)``: answer ``status`` without forwarding (the service never saw it);
* ``status_after(status)``: forward (the service acts, e.g. creates the note), then answer ``status``
  instead of the service's reply (a 5xx after the write);
* ``drop_after()``: forward, then close the connection without a reply (reset mid-response);
* ``stall_after(seconds)``: forward, then hold the reply longer than the client's timeout.

Everything else passes through. ``forwarded`` counts what reached the service.
"""

from __future__ import annotations

import dataclasses
import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from tests.fakes.local_http import serve_locally, shut_down


@dataclasses.dataclass
class _Fault:
    method: str
    path: str  # a substring of the request path
    kind: str  # refuse_before | status_after | drop_after | stall_after
    status: int = 0
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0


class FaultProxy:
    def __init__(self, upstream: str):
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or "127.0.0.1", parts.port or 80
        self.prefix = parts.path.rstrip("/")  # e.g. Slack's /api
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self.forwarded: list[tuple[str, str]] = []
        self.faults_fired: list[str] = []
        self._httpd = None

    # -- scripting
    def _add(self, method: str, path: str, kind: str, **kw) -> FaultProxy:
        with self._lock:
            self._faults.append(_Fault(method.upper(), path, kind, **kw))
        return self

    def refuse_before(self, method: str, path: str, status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> FaultProxy:
        return self._add(method, path, "refuse_before", status=status, headers={**(headers or {}), "X-Body": body.decode()})

    def status_after(self, method: str, path: str, status: int) -> FaultProxy:
        return self._add(method, path, "status_after", status=status)

    def drop_after(self, method: str, path: str) -> FaultProxy:
        return self._add(method, path, "drop_after")

    def stall_after(self, method: str, path: str, seconds: float) -> FaultProxy:
        return self._add(method, path, "stall_after", seconds=seconds)

    def forwarded_to(self, method: str, path: str) -> int:
        return sum(1 for m, p in self.forwarded if m == method.upper() and path in p)

    # -- lifecycle
    def __enter__(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _take(self) -> _Fault | None:
                with proxy._lock:
                    for f in proxy._faults:
                        if f.method == self.command and f.path in self.path:
                            proxy._faults.remove(f)
                            proxy.faults_fired.append(f.kind)
                            return f
                return None

            def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "x-body"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def _forward(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
                conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection", "accept-encoding")}
                conn.request(self.command, proxy.prefix + self.path if not self.path.startswith(proxy.prefix) else self.path, body, headers)
                resp = conn.getresponse()
                data = resp.read()
                out = {k: v for k, v in resp.getheaders()}
                conn.close()
                with proxy._lock:
                    proxy.forwarded.append((self.command, self.path))
                return resp.status, out, data

            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = self._take()
                if fault is not None and fault.kind == "refuse_before":
                    payload = fault.headers.get("X-Body", "").encode() or b'{"error": "refused by the fault proxy"}'
                    self._reply(fault.status, {"Content-Type": "application/json", **fault.headers}, payload)
                    return
                status, headers, data = self._forward(body)
                if fault is None:
                    self._reply(status, headers, data)
                elif fault.kind == "status_after":
                    self._reply(fault.status, {"Content-Type": "text/plain"}, b"upstream error")
                elif fault.kind == "drop_after":
                    self.close_connection = True  # no status line at all: the client sees the connection end
                elif fault.kind == "stall_after":
                    time.sleep(fault.seconds)
                    self.close_connection = True

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = handle_one

        self._httpd, _ = serve_locally(Handler, "fault-proxy")
        return self

    def __exit__(self, *exc) -> None:
        shut_down(self._httpd)

    @property
    def base_url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{self.prefix}"


def closed_port_url(path: str = "") -> str:
    """A URL on 127.0.0.1 where nothing listens: every connection is refused."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
