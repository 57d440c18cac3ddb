"""A local stand-in for the Bot Framework side of Microsoft Teams, on 127.0.0.1:

* OpenID metadata and JWKS (``/openid``, ``/keys``) with self-signed RSA keys, and ``token()`` minting
  channel-to-bot JWTs as the Bot Framework signs them (issuer https://api.botframework.com, audience the
  bot's app id, a serviceurl claim, kid of a key endorsed for "msteams");
* the bot's token endpoint (``POST /token``, OAuth 2.0 client credentials, form-encoded);
* the connector REST API the bot posts to (``POST /v3/conversations/{id}/activities``, ``PUT .../{activity id}``).

Failures are scripted: ``fail_next.append(500 | 429 | "drop")`` answers the next connector write with that
status, or closes the connection after reading the request (the outcome is then unknown to the bot).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.fakes.local_http import serve_locally, shut_down

ISSUER = "https://api.botframework.com"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class FakeBotFramework:
    def __init__(self, app_id: str = "app-id-123", app_password: str = "app-secret", *, endorsements=("msteams",)) -> None:
        self.app_id = app_id
        self.app_password = app_password
        self.key = new_key()
        self.kid = "test-key-1"
        self.endorsements = list(endorsements)
        self.requests: list[Recorded] = []
        self.fail_next: list[int | str] = []
        self.token_requests: list[dict[str, list[str]]] = []
        self.activities: dict[str, list[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._httpd = None

    # -- lifecycle
    def __enter__(self) -> FakeBotFramework:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server._handle(self, "GET")

            def do_POST(self) -> None:
                server._handle(self, "POST")

            def do_PUT(self) -> None:
                server._handle(self, "PUT")

        self._httpd, _ = serve_locally(Handler, "fake-bot-framework")
        return self

    def __exit__(self, *exc: object) -> None:
        shut_down(self._httpd)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def service_url(self) -> str:
        return self.base_url + "/"

    # -- tokens the channel sends the bot
    def token(self, *, key=None, kid: str | None = None, aud: str | None = None, iss: str = ISSUER,
              service_url: str | None = None, expires_in: int = 600) -> str:
        now = dt.datetime.now(dt.timezone.utc)
        claims = {"iss": iss, "aud": aud or self.app_id, "serviceurl": service_url or self.service_url,
                  "nbf": now - dt.timedelta(seconds=30), "exp": now + dt.timedelta(seconds=expires_in)}
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid})

    def auth(self, **kw: Any) -> str:
        return "Bearer " + self.token(**kw)

    # -- wire
    def _send(self, h: BaseHTTPRequestHandler, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        path = h.path.split("?", 1)[0]
        length = int(h.headers.get("content-length") or 0)
        raw = h.rfile.read(length) if length else b""
        ctype = h.headers.get("content-type") or ""
        if "json" in ctype and raw:
            body: Any = json.loads(raw)
        elif raw:
            body = urllib.parse.parse_qs(raw.decode())
        else:
            body = None
        with self._lock:
            self.requests.append(Recorded(method, path, {k.lower(): v for k, v in h.headers.items()}, body))
        if method == "GET" and path == "/openid":
            return self._send(h, 200, {"issuer": ISSUER, "jwks_uri": self.base_url + "/keys",
                                       "id_token_signing_alg_values_supported": ["RS256"]})
        if method == "GET" and path == "/keys":
            jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
            jwk.update({"kid": self.kid, "use": "sig", "endorsements": self.endorsements})
            return self._send(h, 200, {"keys": [jwk]})
        if method == "POST" and path == "/token":
            self.token_requests.append(body)
            ok = body.get("client_id") == [self.app_id] and body.get("client_secret") == [self.app_password]
            if not ok:
                return self._send(h, 401, {"error": "invalid_client"})
            return self._send(h, 200, {"token_type": "Bearer", "expires_in": 3600, "access_token": "bot-token-1"})
        if path.startswith("/v3/conversations/"):
            if h.headers.get("authorization") != "Bearer bot-token-1":
                return self._send(h, 401, {"error": {"code": "Unauthorized", "message": "bad token"}})
            with self._lock:
                failure = self.fail_next.pop(0) if self.fail_next else None
            if failure == "drop":
                h.close_connection = True
                h.connection.shutdown(2)
                return None
            if isinstance(failure, int):
                return self._send(h, failure, {"error": {"code": "ServiceError", "message": "scripted failure"}})
            parts = path.split("/")
            conversation = urllib.parse.unquote(parts[3])
            if method == "POST" and len(parts) == 5 and parts[4] == "activities":
                activity_id = f"act-{next(self._ids)}"
                with self._lock:
                    self.activities.setdefault(conversation, []).append({**body, "id": activity_id})
                return self._send(h, 201, {"id": activity_id})
            if method == "PUT" and len(parts) == 6:
                with self._lock:
                    for i, act in enumerate(self.activities.get(conversation, [])):
                        if act["id"] == parts[5]:
                            self.activities[conversation][i] = {**body, "id": parts[5]}
                return self._send(h, 200, {"id": parts[5]})
        return self._send(h, 404, {"error": {"code": "NotFound", "message": path}})

    # -- assertions
    def posts(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path.startswith("/v3/")]

    def puts(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "PUT"]
