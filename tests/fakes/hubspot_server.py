"""A local stand-in for HubSpot's CRM v3 API on 127.0.0.1 (stdlib http.server, random port).

Speaks HubSpot's documented JSON: ``{"results": [...], "paging": {"next": {"after": ...}}}``
listings, ``propertiesWithHistory`` and ``associations`` on records, the search endpoint
(``filterGroups``/``sorts``/``after``, ``total``), pipelines, owners (with teams), archived
listings (``archived=true``, ``archivedAt``) and note creation with deal associations.

Like HubSpot, a record carries only the properties asked for (null when empty) plus the
default ones (``hs_object_id``, ``createdate``, the last-modified property) and any property in
``record.default_extra`` (a default property HubSpot started returning: schema drift).

Every request is recorded in ``server.calls`` (method, path, query, JSON body, headers).
``fail_next(method, path, status, retry_after=None, after=None)`` scripts one error reply (to the
request for page ``after`` when given). ``max_page`` caps page sizes so a few records span pages.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.local_http import serve_locally, shut_down

MODIFIED = {"contacts": "lastmodifieddate"}


def iso(ts: dt.datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def _ms(value: Any) -> int | None:
    if value in (None, ""):
        return None
    text = str(value)
    if text.lstrip("-").isdigit():
        return int(text)
    ts = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=dt.UTC)
    return int(ts.timestamp() * 1000)


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]


@dataclass
class Record:
    id: str
    properties: dict[str, Any]
    created: dt.datetime
    updated: dt.datetime
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # newest first, like HubSpot
    associations: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # to -> [(id, type)]
    archived_at: dt.datetime | None = None
    default_extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Failure:
    method: str
    path: str
    status: int
    retry_after: str | None
    after: str | None
    category: str | None = None  # e.g. MISSING_SCOPES on a 403
    message: str | None = None


class FakeHubSpotServer:
    def __init__(self, *, max_page: int = 100):
        self.max_page = max_page
        self.pipelines: list[dict[str, Any]] = []
        self.owners: list[dict[str, Any]] = []
        self.objects: dict[str, dict[str, Record]] = {}
        self.calls: list[Call] = []
        self._failures: list[_Failure] = []
        self._lock = threading.Lock()
        self._next_id = 900_000
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> FakeHubSpotServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                call = Call(self.command, parts.path, query, body, dict(self.headers.items()))
                status, payload, headers = server._dispatch(call)
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _handle

        self._httpd, self._thread = serve_locally(Handler, "fake-hubspot")
        return self

    def stop(self) -> None:
        shut_down(self._httpd)
        self._httpd = None

    def __enter__(self) -> FakeHubSpotServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "start the server first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # -- scripting -----------------------------------------------------------------------
    def fail_next(self, method: str, path: str, status: int, *, retry_after: str | None = None, after: str | None = None,
                  category: str | None = None, message: str | None = None) -> None:
        with self._lock:
            self._failures.append(_Failure(method.upper(), path, status, retry_after, after, category, message))

    def calls_to(self, method: str, path: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method.upper() and c.path == path]

    def add(self, otype: str, rid: str, properties: dict[str, Any], *, created: dt.datetime, updated: dt.datetime | None = None,
            history: dict[str, list[tuple[Any, dt.datetime]]] | None = None,
            associations: dict[str, list[str | tuple[str, str]]] | None = None,
            default_extra: dict[str, Any] | None = None) -> Record:
        updated = updated or created
        props = dict(properties)
        props.setdefault("createdate", iso(created))
        props[MODIFIED.get(otype, "hs_lastmodifieddate")] = iso(updated)
        rec = Record(
            id=rid, properties=props, created=created, updated=updated,
            history={k: [{"value": str(v) if v is not None else None, "timestamp": iso(t), "sourceType": "CRM_UI"}
                         for v, t in sorted(vs, key=lambda x: x[1], reverse=True)] for k, vs in (history or {}).items()},
            associations={k: [a if isinstance(a, tuple) else (a, "") for a in v] for k, v in (associations or {}).items()},
            default_extra=dict(default_extra or {}),
        )
        with self._lock:
            self.objects.setdefault(otype, {})[rid] = rec
        return rec

    def update(self, otype: str, rid: str, when: dt.datetime, **properties: Any) -> None:
        """Change properties at ``when`` (history grows, last-modified moves)."""
        with self._lock:
            rec = self.objects[otype][rid]
            for k, v in properties.items():
                rec.properties[k] = v
                if k in rec.history or k in ("dealstage", "closedate", "amount"):
                    rec.history.setdefault(k, []).insert(0, {"value": None if v is None else str(v), "timestamp": iso(when), "sourceType": "CRM_UI"})
            rec.updated = when
            rec.properties[MODIFIED.get(otype, "hs_lastmodifieddate")] = iso(when)

    def associate(self, otype: str, rid: str, to: str, ids: list[str], when: dt.datetime) -> None:
        """Replace a record's ``to`` associations at ``when`` (last-modified moves)."""
        with self._lock:
            rec = self.objects[otype][rid]
            rec.associations[to] = [(i, "") for i in ids]
            rec.updated = when
            rec.properties[MODIFIED.get(otype, "hs_lastmodifieddate")] = iso(when)

    def archive(self, otype: str, rid: str, when: dt.datetime) -> None:
        with self._lock:
            self.objects[otype][rid].archived_at = when

    # -- rendering -----------------------------------------------------------------------
    def _render(self, otype: str, rec: Record, query: dict[str, str] | None = None, properties: list[str] | None = None) -> dict[str, Any]:
        query = query or {}
        wanted = properties if properties is not None else [p for p in query.get("properties", "").split(",") if p]
        defaults = ["hs_object_id", "createdate", MODIFIED.get(otype, "hs_lastmodifieddate")]
        props = {p: rec.properties.get(p) for p in dict.fromkeys(wanted + defaults)}
        props["hs_object_id"] = rec.id
        props.update(rec.default_extra)
        out: dict[str, Any] = {
            "id": rec.id, "properties": props, "createdAt": iso(rec.created), "updatedAt": iso(rec.updated),
            "archived": rec.archived_at is not None,
        }
        if rec.archived_at is not None:
            out["archivedAt"] = iso(rec.archived_at)
        hist = [p for p in query.get("propertiesWithHistory", "").split(",") if p]
        if hist:
            out["propertiesWithHistory"] = {p: list(rec.history.get(p, [])) for p in hist}
        assoc = [a for a in query.get("associations", "").split(",") if a]
        if assoc:
            out["associations"] = {
                a: {"results": [{"id": i, "type": t or f"{otype[:-1]}_to_{a[:-1]}"} for i, t in rec.associations.get(a, [])]}
                for a in assoc if rec.associations.get(a)
            }
        return out

    def _page(self, items: list[Any], after: str | None, limit: int) -> tuple[list[Any], dict[str, Any] | None]:
        start = int(after or 0)
        size = max(1, min(limit, self.max_page))
        chunk = items[start:start + size]
        nxt = start + size
        paging = {"next": {"after": str(nxt), "link": f"?after={nxt}"}} if nxt < len(items) else None
        return chunk, paging

    # -- dispatch ------------------------------------------------------------------------
    def _dispatch(self, call: Call) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            self.calls.append(call)
            after = call.query.get("after") if call.method == "GET" else (call.body or {}).get("after") if isinstance(call.body, dict) else None
            for f in self._failures:
                if f.method == call.method and f.path == call.path and (f.after is None or f.after == after):
                    self._failures.remove(f)
                    headers = {"Retry-After": f.retry_after} if f.retry_after else {}
                    category = f.category or ("RATE_LIMITS" if f.status == 429 else "INTERNAL_ERROR")
                    return f.status, {"status": "error", "message": f.message or f"scripted {f.status}", "correlationId": "fake-corr",
                                      "category": category}, headers
        auth = call.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or len(auth) <= len("Bearer "):
            return 401, {"status": "error", "message": "Authentication credentials not found.", "category": "INVALID_AUTHENTICATION"}, {}
        parts = [p for p in call.path.split("/") if p]
        with self._lock:
            try:
                return self._route(call, parts)
            except (KeyError, ValueError) as exc:
                return 400, {"status": "error", "message": f"bad request: {exc}", "category": "VALIDATION_ERROR"}, {}

    def _route(self, call: Call, parts: list[str]) -> tuple[int, Any, dict[str, str]]:
        q = call.query
        if call.method == "GET" and parts == ["crm", "v3", "pipelines", "deals"]:
            return 200, {"results": self.pipelines}, {}
        if call.method == "GET" and parts == ["crm", "v3", "owners"]:
            archived = q.get("archived", "false") == "true"
            owners = [o for o in self.owners if bool(o.get("archived")) == archived]
            chunk, paging = self._page(owners, q.get("after"), int(q.get("limit", 100)))
            return 200, {"results": chunk, **({"paging": paging} if paging else {})}, {}
        if parts[:3] == ["crm", "v3", "objects"] and len(parts) >= 4:
            otype = parts[3]
            records = self.objects.setdefault(otype, {})
            if call.method == "GET" and len(parts) == 4:
                archived = q.get("archived", "false") == "true"
                items = sorted((r for r in records.values() if (r.archived_at is not None) == archived), key=lambda r: int(r.id))
                limit = int(q.get("limit", 10))
                if q.get("propertiesWithHistory") and limit > 50:
                    return 400, {"status": "error", "message": "limit must be <= 50 with propertiesWithHistory", "category": "VALIDATION_ERROR"}, {}
                chunk, paging = self._page(items, q.get("after"), limit)
                return 200, {"results": [self._render(otype, r, q) for r in chunk], **({"paging": paging} if paging else {})}, {}
            if call.method == "GET" and len(parts) == 5:
                rec = records.get(parts[4])
                if rec is None or rec.archived_at is not None:
                    return 404, {"status": "error", "message": "resource not found", "category": "OBJECT_NOT_FOUND"}, {}
                return 200, self._render(otype, rec, q), {}
            if call.method == "POST" and len(parts) == 5 and parts[4] == "search":
                return self._search(otype, records, call.body or {})
            if call.method == "POST" and len(parts) == 4 and otype == "notes":
                return self._create_note(call.body or {})
        return 404, {"status": "error", "message": f"no route {call.method} {call.path}", "category": "OBJECT_NOT_FOUND"}, {}

    def _matches(self, otype: str, rec: Record, flt: dict[str, Any]) -> bool:
        prop, op, value = flt["propertyName"], flt["operator"], flt.get("value")
        if prop.startswith("associations."):
            to = prop.split(".", 1)[1] + "s"
            return op == "EQ" and str(value) in [i for i, _ in rec.associations.get(to, [])]
        have = rec.properties.get(prop)
        if op in ("GT", "GTE", "LT", "LTE"):
            a, b = _ms(have), _ms(value)
            if a is None or b is None:
                return False
            return {"GT": a > b, "GTE": a >= b, "LT": a < b, "LTE": a <= b}[op]
        if op == "EQ":
            return str(have) == str(value)
        if op == "CONTAINS_TOKEN":
            return str(value).lower() in str(have or "").lower()
        raise ValueError(f"operator {op} not supported by the fake")

    def _search(self, otype: str, records: dict[str, Record], body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        groups = body.get("filterGroups") or [{"filters": []}]
        hits = [r for r in records.values() if r.archived_at is None
                and any(all(self._matches(otype, r, f) for f in g.get("filters", [])) for g in groups)]
        hits.sort(key=lambda r: int(r.id))
        for s in reversed(body.get("sorts") or []):
            hits.sort(key=lambda r: _ms(r.properties.get(s["propertyName"])) or 0, reverse=s.get("direction") == "DESCENDING")
        after = int(body.get("after") or 0)
        if after >= 10_000:
            return 400, {"status": "error", "message": "paging past 10000 results", "category": "VALIDATION_ERROR"}, {}
        chunk, paging = self._page(hits, str(after), int(body.get("limit", 10)))
        props = list(body.get("properties") or [])
        out = {"total": len(hits), "results": [self._render(otype, r, properties=props) for r in chunk]}
        if paging:
            out["paging"] = {"next": {"after": paging["next"]["after"]}}
        return 200, out, {}

    def _create_note(self, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        props = dict(body.get("properties") or {})
        if not props.get("hs_timestamp"):
            return 400, {"status": "error", "message": "hs_timestamp is required", "category": "VALIDATION_ERROR"}, {}
        self._next_id += 1
        rid = str(self._next_id)
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        assoc: dict[str, list[tuple[str, str]]] = {}
        for a in body.get("associations") or []:
            type_ids = [t.get("associationTypeId") for t in a.get("types", [])]
            if 214 in type_ids:
                deal = str(a["to"]["id"])
                if deal not in self.objects.get("deals", {}):
                    return 400, {"status": "error", "message": f"deal {deal} does not exist", "category": "VALIDATION_ERROR"}, {}
                assoc.setdefault("deals", []).append((deal, "note_to_deal"))
        props["hs_lastmodifieddate"] = iso(now)
        rec = Record(id=rid, properties=props, created=now, updated=now, associations=assoc)
        self.objects.setdefault("notes", {})[rid] = rec
        return 201, self._render("notes", rec, properties=list(props)), {}


# --------------------------------------------------------------------------- a small portal

T0 = dt.datetime(2026, 9, 1, 9, 0, 0)


def seed_portal(server: FakeHubSpotServer) -> FakeHubSpotServer:
    """One pipeline, two teams, five owners (one deactivated), companies, contacts, seven deals
    (one with a negative amount, one with a property HubSpot added to its defaults), activities."""
    server.pipelines = [{
        "id": "default", "label": "Sales Pipeline", "displayOrder": 0, "archived": False,
        "createdAt": iso(T0), "updatedAt": iso(T0),
        "stages": [
            {"id": sid, "label": label, "displayOrder": i, "archived": False,
             "metadata": {"isClosed": str(closed).lower(), "probability": prob},
             "createdAt": iso(T0), "updatedAt": iso(T0)}
            for i, (sid, label, closed, prob) in enumerate([
                ("appointmentscheduled", "Appointment Scheduled", False, "0.2"),
                ("qualifiedtobuy", "Qualified To Buy", False, "0.4"),
                ("presentationscheduled", "Presentation Scheduled", False, "0.6"),
                ("contractsent", "Contract Sent", False, "0.9"),
                ("closedwon", "Closed Won", True, "1.0"),
                ("closedlost", "Closed Lost", True, "0.0"),
            ])
        ],
    }]
    east, west = {"id": "11", "name": "East", "primary": True}, {"id": "12", "name": "West", "primary": True}
    server.owners = [
        {"id": "101", "email": "maria@acme.test", "firstName": "Maria", "lastName": "Manager", "userId": 1, "teams": [east],
         "createdAt": iso(T0), "updatedAt": iso(T0), "archived": False},
        {"id": "102", "email": "rita@acme.test", "firstName": "Rita", "lastName": "Rep", "userId": 2, "teams": [east],
         "createdAt": iso(T0), "updatedAt": iso(T0), "archived": False},
        {"id": "103", "email": "ravi@acme.test", "firstName": "Ravi", "lastName": "Rep", "userId": 3, "teams": [west],
         "createdAt": iso(T0), "updatedAt": iso(T0), "archived": False},
        {"id": "104", "email": "wes@acme.test", "firstName": "Wes", "lastName": "Lead", "userId": 4, "teams": [west],
         "createdAt": iso(T0), "updatedAt": iso(T0), "archived": False},
        {"id": "105", "email": "old@acme.test", "firstName": "Olga", "lastName": "Former", "userId": 5, "teams": [],
         "createdAt": iso(T0), "updatedAt": iso(T0), "archived": True},
    ]
    day = dt.timedelta(days=1)
    for cid, name, employees in (("201", "Globex", "50"), ("202", "Initech", "450"), ("203", "Umbrella", "12000")):
        server.add("companies", cid, {"name": name, "industry": "SOFTWARE", "numberofemployees": employees, "domain": f"{name.lower()}.test"},
                   created=T0, updated=T0 + day)
    for pid, first, role, company in (("301", "Ann", "DECISION_MAKER", "201"), ("302", "Bob", "CHAMPION;INFLUENCER", "201"),
                                      ("303", "Cid", "END_USER", "202"), ("304", "Dee", None, "203")):
        server.add("contacts", pid, {"firstname": first, "lastname": "Buyer", "email": f"{first.lower()}@client.test",
                                     "jobtitle": "VP", "hs_buying_role": role, "associatedcompanyid": company},
                   created=T0, updated=T0 + day)
    deals = [
        # id, name, stage, amount, owner, company, updated
        ("401", "Globex expansion", "qualifiedtobuy", "12000", "102", "201"),
        ("402", "Initech renewal", "contractsent", "48000", "102", "202"),
        ("403", "Umbrella platform", "closedwon", "250000", "103", "203"),
        ("404", "Globex pilot", "appointmentscheduled", "-5", "103", "201"),  # bad: negative amount
        ("405", "Initech add-on", "presentationscheduled", "9000", "104", "202"),
        ("406", "Umbrella services", "closedlost", "30000", "103", "203"),
        ("407", "Globex training", "qualifiedtobuy", "4000", "101", "201"),
    ]
    for i, (did, name, stage, amount, owner, company) in enumerate(deals):
        created = T0 - dt.timedelta(days=60 - i)
        closed = stage in ("closedwon", "closedlost")
        props = {
            "dealname": name, "dealstage": stage, "pipeline": "default", "amount": amount,
            "closedate": iso(T0 + dt.timedelta(days=30)), "hs_is_closed": str(closed).lower(),
            "hs_is_closed_won": str(stage == "closedwon").lower(), "hubspot_owner_id": owner,
            "hs_next_step": "Send proposal" if not closed else None,
            "closed_lost_reason": "Chose a competitor" if stage == "closedlost" else None,
        }
        history = {
            "dealstage": [("appointmentscheduled", created)] + ([(stage, created + dt.timedelta(days=10))] if stage != "appointmentscheduled" else []),
            "closedate": [(iso(T0 + dt.timedelta(days=20)), created), (iso(T0 + dt.timedelta(days=30)), created + dt.timedelta(days=5))],
            "amount": [(amount, created)],
        }
        server.add("deals", did, props, created=created, updated=T0 + dt.timedelta(hours=i),
                   history=history, associations={"companies": [(company, "deal_to_company")]},
                   default_extra={"hs_object_source_label": "CRM_UI"} if did == "405" else None)
    acts = [
        ("meetings", "501", {"hs_meeting_title": "Discovery call"}, "102", "401", "201", ["301", "302"]),
        ("calls", "502", {"hs_call_title": "Pricing"}, "102", "402", "202", ["303"]),
        ("emails", "503", {"hs_email_subject": "Proposal"}, "103", "403", "203", []),
        ("tasks", "504", {"hs_task_subject": "Follow up", "hs_task_status": "COMPLETED"}, "103", "405", "202", ["303"]),
        # planned, not done: never past activity
        ("tasks", "506", {"hs_task_subject": "Send contract", "hs_task_status": "NOT_STARTED"}, "103", "401", "201", []),
    ]
    for otype, aid, props, owner, deal, company, contacts in acts:
        server.add(otype, aid, {**props, "hs_timestamp": iso(T0 - day), "hubspot_owner_id": owner}, created=T0 - day,
                   updated=T0 - day, associations={"deals": [deal], "companies": [company], "contacts": contacts})
    seed_goals(server)
    return server


def seed_goals(server: FakeHubSpotServer) -> None:
    """Goal targets (GET /crm/v3/objects/goal_targets): Rita's monthly revenue targets for Q3 2026 (a portal on
    US Eastern time: periods start at 04:00Z), Ravi's Q4 quota (a portal east of UTC: it starts the day before
    in UTC), the West team's yearly revenue goal, Maria's Q3 goal by owner only, and a calls goal (no quota)."""
    goals = [
        # id, name, amount, start, end, user id, team id, owner id
        ("601", "Revenue", "10000", "2026-07-01T04:00:00Z", "2026-08-01T03:59:59.999Z", "2", None, None),
        ("602", "Revenue", "10000", "2026-08-01T04:00:00Z", "2026-09-01T03:59:59.999Z", "2", None, None),
        ("603", "Revenue", "10000", "2026-09-01T04:00:00Z", "2026-10-01T03:59:59.999Z", "2", None, None),
        ("604", "Q4 revenue quota", "90000", "2026-09-30T22:00:00Z", "2026-12-31T22:59:59.999Z", "3", None, None),
        ("605", "Team revenue 2026", "240000", "2026-01-01T00:00:00Z", "2026-12-31T23:59:59.999Z", None, "12", None),
        ("606", "Revenue", "50000", "2026-07-01T00:00:00Z", "2026-09-30T23:59:59.999Z", None, None, "101"),
        ("607", "Calls made", "300", "2026-07-01T04:00:00Z", "2026-10-01T03:59:59.999Z", "2", None, None),
    ]
    for gid, name, amount, start, end, user, team, owner in goals:
        server.add("goal_targets", gid, {
            "hs_goal_name": name, "hs_target_amount": amount, "hs_start_datetime": start, "hs_end_datetime": end,
            "hs_assignee_user_id": user, "hs_assignee_team_id": team, "hubspot_owner_id": owner,
            "hs_group_correlation_uuid": f"goal-{name}", "hs_goal_target_group_id": f"group-{gid}",
        }, created=T0 - dt.timedelta(days=90))
