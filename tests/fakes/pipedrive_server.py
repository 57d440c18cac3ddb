"""A local stand-in for Pipedrive's REST API (v1 and v2) on 127.0.0.1.

Speaks Pipedrive's JSON envelope (``{"success": true, "data": [...],
"additional_data": {...}}``): v2 lists page by ``cursor``/``limit`` with
``additional_data.next_cursor`` and filter by ``updated_since`` (inclusive),
v1 lists page by ``start``/``limit`` with ``additional_data.pagination``. The
token is accepted in the ``x-api-token`` header or the ``api_token`` query
parameter; anything else gets Pipedrive's 401.

Every request is recorded (``server.requests``); ``fail(path, status, ...)``
scripts an error (a 429 with Retry-After, a 500, ...) for the nth matching call.
``FakePipedrive.sample()`` holds a small company: two pipelines, users, orgs,
persons, deals (won, lost, deleted, one with a negative value, one in an
unknown stage, one with a field the others lack), change logs and activities.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fakes.local_http import serve_locally, shut_down

TOKEN = "pd-test-token-5f2c9a41e7b3d8c6"
COMPANY = "acme-test"
EMP_FIELD = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"  # an organization custom field: employees
ROLE_FIELD = "f0e1d2c3b4a5968778695a4b3c2d1e0f98765432"  # a person custom field: buying role (enum)


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None
    status: int = 0


@dataclass
class _Failure:
    method: str
    path: str
    status: int
    headers: dict[str, str]
    after: int
    times: int
    seen: int = 0


def _parse_ts(value: str) -> dt.datetime:
    ts = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return ts if ts.tzinfo else ts.replace(tzinfo=dt.timezone.utc)


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _decode_cursor(cursor: str) -> int:
    return int(json.loads(base64.urlsafe_b64decode(cursor.encode()))["offset"])


@dataclass
class _Data:
    pipelines: list[dict[str, Any]] = field(default_factory=list)
    stages: list[dict[str, Any]] = field(default_factory=list)
    users: list[dict[str, Any]] = field(default_factory=list)
    organizations: list[dict[str, Any]] = field(default_factory=list)
    persons: list[dict[str, Any]] = field(default_factory=list)
    deals: list[dict[str, Any]] = field(default_factory=list)
    activities: list[dict[str, Any]] = field(default_factory=list)
    changelogs: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    notes: list[dict[str, Any]] = field(default_factory=list)


class FakePipedrive:
    """``with FakePipedrive.sample() as pd:`` then point a client at ``pd.base_url`` with ``TOKEN``."""

    def __init__(self, data: _Data | None = None, *, token: str = TOKEN):
        self.token = token
        self.data = data or _Data()
        self.requests: list[Recorded] = []
        self._failures: list[_Failure] = []
        self._lock = threading.Lock()
        self._note_ids = itertools.count(5001)
        self._httpd: ThreadingHTTPServer | None = None

    # -- lifecycle

    def start(self) -> FakePipedrive:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8") if length else ""
                body: Any = None
                if raw:
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        body = dict(parse_qsl(raw))
                parts = urlsplit(self.path)
                query = dict(parse_qsl(parts.query, keep_blank_values=True))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, payload, extra = server._handle(self.command, parts.path, query, headers, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-ratelimit-limit", "80")
                self.send_header("x-ratelimit-remaining", "79")
                self.send_header("x-ratelimit-reset", "2")
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        self._httpd, _ = serve_locally(Handler, "fake-pipedrive")
        return self

    def stop(self) -> None:
        shut_down(self._httpd)
        self._httpd = None

    def __enter__(self) -> FakePipedrive:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # -- scripting and inspection

    def fail(self, path: str, status: int, *, headers: dict[str, str] | None = None, after: int = 0,
             times: int = 1, method: str = "GET") -> None:
        """Answer ``status`` to matching calls number after+1 .. after+times (path: exact, or a prefix ending in '*')."""
        with self._lock:
            self._failures.append(_Failure(method, path, status, headers or {}, after, times))

    def calls(self, path: str | None = None, method: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests
                    if (path is None or r.path == path or (path.endswith("*") and r.path.startswith(path[:-1])))
                    and (method is None or r.method == method)]

    def reset_calls(self) -> None:
        with self._lock:
            self.requests.clear()

    @staticmethod
    def now() -> str:
        return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")

    # -- the API

    def _handle(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any):
        with self._lock:
            rec = Recorded(method, path, query, headers, body)
            self.requests.append(rec)
            status, payload, extra = self._route(method, path, query, headers, body)
            rec.status = status
            return status, payload, extra

    def _route(self, method, path, query, headers, body):
        for f in self._failures:
            if f.method == method and (f.path == path or (f.path.endswith("*") and path.startswith(f.path[:-1]))):
                f.seen += 1
                if f.after < f.seen <= f.after + f.times:
                    payload = {"success": False, "error": "Rate limit exceeded" if f.status == 429 else "Internal error",
                               "errorCode": f.status}
                    return f.status, payload, f.headers
        if headers.get("x-api-token") != self.token and query.get("api_token") != self.token:
            return 401, {"success": False, "error": "unauthorized access", "errorCode": 401,
                         "error_info": "Please check developers.pipedrive.com for more information about Pipedrive API."}, {}
        d = self.data
        v2 = {"/api/v2/pipelines": d.pipelines, "/api/v2/stages": d.stages, "/api/v2/organizations": d.organizations,
              "/api/v2/persons": d.persons, "/api/v2/deals": d.deals, "/api/v2/activities": d.activities}
        if method == "GET" and path in v2:
            return self._v2_list(path, v2[path], query)
        if method == "GET" and path == "/v1/users":
            return 200, {"success": True, "data": copy.deepcopy(d.users)}, {}
        if method == "GET" and path == "/v1/users/me":
            return 200, {"success": True, "data": {**copy.deepcopy(d.users[0]), "company_domain": COMPANY}}, {}
        parts = path.strip("/").split("/")
        if method == "GET" and len(parts) == 4 and parts[:2] == ["v1", "deals"] and parts[3] in ("changelog", "flow"):
            deal_id = int(parts[2])
            if not any(x["id"] == deal_id for x in d.deals):
                return 404, {"success": False, "error": "Deal not found", "errorCode": 404}, {}
            entries = copy.deepcopy(d.changelogs.get(deal_id, []))
            if parts[3] == "changelog":
                return self._cursor_page(entries, query, v1=True)
            flow = [{"object": "dealChange", "timestamp": e["time"],
                     "data": {"id": i, "item_id": deal_id, "field_key": e["field_key"], "old_value": e["old_value"],
                              "new_value": e["new_value"], "log_time": e["time"]}} for i, e in enumerate(entries, 1)]
            return self._offset_page(flow, query)
        if path == "/v1/notes" and method == "GET":
            notes = [n for n in d.notes if str(n["deal_id"]) == query.get("deal_id", str(n["deal_id"]))]
            notes.sort(key=lambda n: n["add_time"], reverse="DESC" in query.get("sort", ""))
            return self._offset_page(copy.deepcopy(notes), query)
        if path == "/v1/notes" and method == "POST":
            if not isinstance(body, dict) or not body.get("content"):
                return 400, {"success": False, "error": "Note content is required", "errorCode": 400}, {}
            deal_id = body.get("deal_id")
            if not any(x["id"] == deal_id for x in d.deals):
                return 400, {"success": False, "error": "Deal not found", "errorCode": 400}, {}
            note = {"id": next(self._note_ids), "content": body["content"], "deal_id": deal_id,
                    "add_time": self.now(), "update_time": self.now(), "user_id": 1, "active_flag": True}
            d.notes.append(note)
            return 201, {"success": True, "data": copy.deepcopy(note)}, {}
        return 404, {"success": False, "error": "Unknown method .", "errorCode": 404}, {}

    def _v2_list(self, path: str, records: list[dict[str, Any]], query: dict[str, str]):
        rows = copy.deepcopy(records)
        if path == "/api/v2/deals":
            statuses = set((query.get("status") or "open,won,lost").split(","))
            rows = [r for r in rows if ("deleted" if r.get("is_deleted") else r.get("status")) in statuses]
        if query.get("updated_since"):
            since = _parse_ts(query["updated_since"])
            rows = [r for r in rows if _parse_ts(r["update_time"]) >= since]
        if query.get("sort_by"):
            rows.sort(key=lambda r: (r.get(query["sort_by"]) or "", r["id"]), reverse=query.get("sort_direction") == "desc")
        return self._cursor_page(rows, query)

    @staticmethod
    def _cursor_page(rows: list[dict[str, Any]], query: dict[str, str], v1: bool = False):
        limit = min(int(query.get("limit") or 100), 500)
        try:
            offset = _decode_cursor(query["cursor"]) if query.get("cursor") else 0
        except (ValueError, KeyError):
            return 400, {"success": False, "error": "Invalid cursor", "errorCode": 400}, {}
        page = rows[offset: offset + limit]
        nxt = _encode_cursor(offset + limit) if offset + limit < len(rows) else None
        data: Any = page if (page or not v1) else None  # v1 answers an empty list as null
        return 200, {"success": True, "data": data, "additional_data": {"next_cursor": nxt}}, {}

    @staticmethod
    def _offset_page(rows: list[dict[str, Any]], query: dict[str, str]):
        start, limit = int(query.get("start") or 0), min(int(query.get("limit") or 100), 500)
        page = rows[start: start + limit]
        more = start + limit < len(rows)
        pagination = {"start": start, "limit": limit, "more_items_in_collection": more}
        if more:
            pagination["next_start"] = start + limit
        return 200, {"success": True, "data": page or None, "additional_data": {"pagination": pagination}}, {}

    # -- sample data

    @classmethod
    def sample(cls) -> FakePipedrive:
        d = _Data()
        d.pipelines = [
            {"id": 1, "name": "Sales", "order_nr": 1, "is_deleted": False, "add_time": "2025-01-01T00:00:00Z",
             "update_time": "2025-01-01T00:00:00Z"},
            {"id": 2, "name": "Renewals", "order_nr": 2, "is_deleted": False, "add_time": "2025-01-01T00:00:00Z",
             "update_time": "2025-01-01T00:00:00Z"},
        ]
        d.stages = [
            {"id": sid, "name": name, "order_nr": order, "pipeline_id": pid, "deal_probability": 100, "is_deleted": False,
             "add_time": "2025-01-01T00:00:00Z", "update_time": "2025-01-01T00:00:00Z"}
            for sid, name, order, pid in [(1, "Qualified", 1, 1), (2, "Demo", 2, 1), (3, "Proposal", 3, 1),
                                          (4, "Negotiation", 4, 1), (5, "Renewal Review", 1, 2)]
        ]
        d.users = [
            {"id": 1, "name": "Mia Manager", "email": "mia@acme.test", "is_admin": 1, "active_flag": True,
             "created": "2024-01-15 09:00:00", "modified": "2026-01-01 00:00:00", "role_id": 1, "lang": 1},
            {"id": 2, "name": "Rita Rep", "email": "rita@acme.test", "is_admin": 0, "active_flag": True,
             "created": "2025-03-01 09:00:00", "modified": "2026-01-01 00:00:00", "role_id": 2, "lang": 1},
            {"id": 3, "name": "Ravi Rep", "email": "ravi@acme.test", "is_admin": 0, "active_flag": False,
             "created": "2025-04-01 09:00:00", "modified": "2026-01-01 00:00:00", "role_id": 2, "lang": 1},
        ]
        d.organizations = [
            {"id": 101, "name": "Acme Corp", "owner_id": 2, "add_time": "2026-01-02T00:00:00Z",
             "update_time": "2026-08-01T00:00:00Z", "is_deleted": False, "label_ids": [5],
             "custom_fields": {EMP_FIELD: 50}},
            {"id": 102, "name": "Globex", "owner_id": 2, "add_time": "2026-01-03T00:00:00Z",
             "update_time": "2026-08-02T00:00:00Z", "is_deleted": False, "label_ids": [],
             "custom_fields": {EMP_FIELD: 5000}},
            {"id": 103, "name": "Initech", "owner_id": 3, "add_time": "2026-01-04T00:00:00Z",
             "update_time": "2026-08-03T00:00:00Z", "is_deleted": False, "custom_fields": {EMP_FIELD: None}},
        ]
        d.persons = [
            {"id": 201, "name": "Alice Buyer", "org_id": 101, "owner_id": 2, "job_title": "CFO",
             "emails": [{"value": "alice@acme.test", "primary": True, "label": "work"}],
             "add_time": "2026-01-05T00:00:00Z", "update_time": "2026-08-04T00:00:00Z", "custom_fields": {ROLE_FIELD: 7}},
            {"id": 202, "name": "Bob Fan", "org_id": 101, "owner_id": 2, "job_title": "Head of Ops",
             "emails": [{"value": "bob@home.test", "primary": False}, {"value": "bob@acme.test", "primary": True}],
             "add_time": "2026-01-05T00:00:00Z", "update_time": "2026-08-05T00:00:00Z", "custom_fields": {ROLE_FIELD: 8}},
            {"id": 203, "name": "Carol", "org_id": 102, "owner_id": 2, "emails": [],
             "add_time": "2026-01-06T00:00:00Z", "update_time": "2026-08-06T00:00:00Z", "custom_fields": {ROLE_FIELD: None}},
        ]

        def deal(did, title, status, stage, value, org, update, **kw):
            base = {"id": did, "title": title, "status": status, "stage_id": stage, "pipeline_id": 2 if stage == 5 else 1,
                    "value": value, "currency": "USD", "owner_id": 2, "org_id": org, "person_id": None,
                    "add_time": "2026-08-01T09:00:00Z", "update_time": update, "expected_close_date": "2026-10-15",
                    "won_time": None, "lost_time": None, "close_time": None, "is_deleted": False, "probability": None,
                    "custom_fields": {}}
            base.update(kw)
            return base

        d.deals = [
            deal(1001, "Acme expansion", "open", 2, 12000, 101, "2026-09-01T10:00:00Z"),
            deal(1002, "Globex platform", "won", 4, 50000, 102, "2026-09-03T12:00:00Z",
                 won_time="2026-09-03T12:00:00Z", close_time="2026-09-03T12:00:00Z"),
            deal(1003, "Initech pilot", "lost", 1, 8000, 103, "2026-09-04T08:00:00Z",
                 lost_time="2026-09-04T08:00:00Z", close_time="2026-09-04T08:00:00Z", lost_reason="budget"),
            deal(1004, "Deleted deal", "deleted", 1, 100, 101, "2026-09-05T08:00:00Z", is_deleted=True),
            deal(1005, "Negative value", "open", 1, -5, 101, "2026-09-06T08:00:00Z"),
            deal(1006, "Webinar lead", "open", 3, 3000, 102, "2026-09-07T08:00:00Z", origin_channel="webinar"),
            deal(1007, "Acme renewal", "open", 5, 9000, 101, "2026-09-08T08:00:00Z"),
            deal(1008, "Stage gone", "open", 99, 1000, 101, "2026-09-09T08:00:00Z"),
        ]

        def ch(key, old, new, time):
            return {"field_key": key, "old_value": old, "new_value": new, "actor_user_id": 2, "time": time,
                    "change_source": "app", "change_source_user_agent": None, "is_bulk_update_flag": False}

        d.changelogs = {
            1001: [ch("stage_id", "1", "2", "2026-08-10 10:00:00"), ch("value", "10000", "12000", "2026-08-12 11:00:00"),
                   ch("title", "Acme", "Acme expansion", "2026-08-12 11:00:00"),
                   ch("expected_close_date", "2026-09-30", "2026-10-15", "2026-08-20 09:00:00")],
            1002: [ch("stage_id", "1", "3", "2026-08-05 10:00:00"), ch("stage_id", "3", "4", "2026-08-20 10:00:00"),
                   ch("value", "40000", "50000", "2026-08-25 10:00:00"), ch("status", "open", "won", "2026-09-03 12:00:00")],
            1003: [ch("status", "open", "lost", "2026-09-04 08:00:00")],
        }
        d.activities = [
            {"id": 3001, "subject": "Kickoff", "type": "meeting", "owner_id": 2, "deal_id": 1001, "org_id": 101,
             "person_id": 201, "participants": [{"person_id": 201, "primary": True}, {"person_id": 202, "primary": False}],
             "due_date": "2026-08-15", "due_time": "14:00", "duration": "01:00", "done": True,
             "marked_as_done_time": "2026-08-15T15:10:00Z", "add_time": "2026-08-10T00:00:00Z",
             "update_time": "2026-08-15T15:10:00Z", "is_deleted": False},
            {"id": 3002, "subject": "Pricing call", "type": "call", "owner_id": 2, "deal_id": 1002, "org_id": 102,
             "person_id": 203, "participants": [{"person_id": 203, "primary": True}], "due_date": "2026-08-22",
             "due_time": "", "done": True, "add_time": "2026-08-20T00:00:00Z", "update_time": "2026-08-22T10:00:00Z",
             "is_deleted": False},
            {"id": 3003, "subject": "Follow-up", "type": "email", "owner_id": 2, "deal_id": 1001, "org_id": 101,
             "person_id": None, "participants": [], "due_date": "2026-08-25", "due_time": "09:30", "done": False,
             "add_time": "2026-08-24T00:00:00Z", "update_time": "2026-08-24T00:00:00Z", "is_deleted": False},
            {"id": 3004, "subject": "Product demo", "type": "demo_session", "owner_id": 2, "deal_id": 1001, "org_id": 101,
             "person_id": 201, "participants": [{"person_id": 201, "primary": True}], "due_date": "2026-08-26",
             "due_time": "10:00", "done": True, "add_time": "2026-08-24T00:00:00Z", "update_time": "2026-08-26T11:00:00Z",
             "is_deleted": False},
            {"id": 3005, "subject": "Cancelled", "type": "meeting", "owner_id": 2, "deal_id": 1002, "org_id": 102,
             "person_id": 203, "participants": [{"person_id": 203, "primary": True}], "due_date": "2026-08-27",
             "due_time": "10:00", "done": False, "add_time": "2026-08-24T00:00:00Z",
             "update_time": "2026-08-27T11:00:00Z", "is_deleted": True},
            {"id": 3006, "subject": "No date", "type": "task", "owner_id": 2, "deal_id": 1001, "org_id": 101,
             "person_id": None, "participants": [], "due_date": None, "due_time": None, "done": False,
             "add_time": "2026-08-24T00:00:00Z", "update_time": "2026-08-28T11:00:00Z", "is_deleted": False},
        ]
        return cls(d)
