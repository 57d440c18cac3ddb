"""A local stand-in for the Salesforce REST API on 127.0.0.1 (stdlib http.server, a thread, a random port).

It speaks the wire format the connector relies on:

* ``GET /services/data/vXX.X/query?q=<SOQL>`` and ``/queryAll`` (which includes deleted records),
  answering ``{"totalSize", "done", "nextRecordsUrl", "records": [{"attributes": {...}, ...}]}``
  in pages of ``page_size`` records, with ``GET /services/data/vXX.X/query/<locator>`` (queryMore);
* ``GET /services/data/vXX.X/sobjects/<sObject>/describe`` (the fields of the org's records);
* ``POST /services/data/vXX.X/sobjects/<sObject>`` (create; only the note writer uses it);
* ``POST /services/oauth2/token`` (client-credentials flow);
* errors as ``[{"message": ..., "errorCode": ...}]``; a wrong bearer token gets 401 INVALID_SESSION_ID.

The SOQL understood is the subset the connector sends: ``SELECT f1, f2, Parent.Field FROM X
[WHERE c1 AND c2 ...]`` with conditions ``F > <datetime>``, ``F = true|false|'text'``,
``F != null``, ``F IN ('a', 'b')`` and ``What.Type IN (...)`` (by id prefix); selecting a field the
org lacks is a 400 INVALID_FIELD, like Salesforce. Every request is recorded in ``server.requests``;
``fail(match, status, ...)`` scripts error answers (e.g. a 503 with Retry-After, a 500).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.local_http import bind_locally, serve_in_background, shut_down

API = "v61.0"
TOKEN = "00DFAKE!sf-test-token-never-logged"
CLIENT_ID = "3MVG9fake-client-id"
CLIENT_SECRET = "fake-client-secret-never-logged"
PREFIXES = {
    "Account": "001", "Contact": "003", "Opportunity": "006", "User": "005", "Task": "00T", "Event": "00U",
    "OpportunityContactRole": "00K", "OpportunityHistory": "008", "OpportunityFieldHistory": "017",
    "OpportunityStage": "01J", "TaskRelation": "0RT", "EventRelation": "0RE", "Lead": "00Q",
    "ForecastingQuota": "0J9", "ForecastingType": "0Db",
}
_TYPE_BY_PREFIX = {v: k for k, v in PREFIXES.items()}
_NOT_DELETABLE = {"User", "OpportunityStage", "ForecastingQuota", "ForecastingType"}
EPOCH = dt.datetime(2026, 1, 10, 9, 0, 0)


def sf_time(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def sf_id(sobject: str, n: int) -> str:
    prefix = PREFIXES[sobject]
    return f"{prefix}{n:0{15 - len(prefix)}d}AAA"


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: Any = None

    @property
    def soql(self) -> str | None:
        return self.params.get("q")

    @property
    def sobject(self) -> str | None:
        m = re.search(r"\bFROM\s+(\w+)", self.soql or "", re.I)
        return m.group(1) if m else None


@dataclass
class Failure:
    match: Callable[[Request], bool]
    status: int
    body: Any
    headers: dict[str, str]
    remaining: int
    after: bool = False  # act on the request first, then answer the failure (a lost response)


class FakeOrg:
    """The org's records by sObject, with a clock that stamps every change."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, dict[str, Any]]] = {}
        self.extra_fields: dict[str, set[str]] = {}  # fields in describe with no value set yet
        self.clock = EPOCH
        self._counters: dict[str, itertools.count] = {}

    def tick(self) -> str:
        self.clock += dt.timedelta(minutes=1)
        return sf_time(self.clock)

    def add(self, sobject: str, record_id: str | None = None, **fields: Any) -> str:
        counter = self._counters.setdefault(sobject, itertools.count(1))
        rid = record_id or sf_id(sobject, next(counter))
        while rid in self.records.get(sobject, {}):
            rid = sf_id(sobject, next(counter))
        stamp = self.tick()
        record = {"Id": rid, **fields}
        record.setdefault("CreatedDate", stamp)
        if sobject != "OpportunityFieldHistory":  # immutable history rows have no SystemModstamp
            record.setdefault("SystemModstamp", stamp)
            record.setdefault("LastModifiedDate", stamp)
        if sobject not in _NOT_DELETABLE:
            record.setdefault("IsDeleted", False)
        self.records.setdefault(sobject, {})[rid] = record
        return rid

    def update(self, sobject: str, record_id: str, **fields: Any) -> None:
        record = self.records[sobject][record_id]
        record.update(fields)
        record["SystemModstamp"] = record["LastModifiedDate"] = self.tick()

    def delete(self, sobject: str, record_id: str) -> None:
        self.update(sobject, record_id, IsDeleted=True)

    def add_field(self, sobject: str, name: str) -> None:
        """A field created in the org (e.g. a new custom field): describe lists it from now on."""
        self.extra_fields.setdefault(sobject, set()).add(name)

    def fields(self, sobject: str) -> list[str]:
        names: set[str] = set(self.extra_fields.get(sobject, set()))
        for record in self.records.get(sobject, {}).values():
            names.update(record)
        return sorted(names)

    def get(self, record_id: str) -> tuple[str, dict[str, Any]] | None:
        sobject = _TYPE_BY_PREFIX.get(str(record_id)[:3])
        record = self.records.get(sobject or "", {}).get(record_id)
        return (sobject, record) if record else None


class SoqlError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


_COND = re.compile(r"^\s*([\w.]+)\s*(>=|<=|!=|=|>|<|\bIN\b)\s*(.+?)\s*$", re.I | re.S)


def _literal(text: str) -> Any:
    text = text.strip()
    if text.startswith("'") and text.endswith("'"):
        return text[1:-1].replace("\\'", "'").replace("\\\\", "\\")
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if text.lower() == "null":
        return None
    if re.match(r"^\d{4}-\d{2}-\d{2}T", text):
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)
    try:
        return float(text)
    except ValueError:
        raise SoqlError("MALFORMED_QUERY", f"unexpected token: {text!r}") from None


def _comparable(value: Any) -> Any:
    if isinstance(value, str) and re.match(r"^\d{4}-\d{2}-\d{2}T", value):
        return dt.datetime.fromisoformat(value).astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


def run_soql(org: FakeOrg, soql: str, include_deleted: bool) -> tuple[str, list[dict[str, Any]]]:
    m = re.match(r"^\s*SELECT\s+(.+?)\s+FROM\s+(\w+)(?:\s+WHERE\s+(.+?))?\s*$", soql, re.I | re.S)
    if not m:
        raise SoqlError("MALFORMED_QUERY", "cannot parse the query")
    fields = [f.strip() for f in m.group(1).split(",")]
    sobject, where = m.group(2), m.group(3)
    if sobject not in PREFIXES:
        raise SoqlError("INVALID_TYPE", f"sObject type '{sobject}' is not supported.")
    known = set(org.fields(sobject))
    for f in fields:
        if "." not in f and f not in known:
            raise SoqlError("INVALID_FIELD", f"No such column '{f}' on entity '{sobject}'.")
    conditions = []
    for part in re.split(r"\s+AND\s+", where or "", flags=re.I) if where else []:
        cm = _COND.match(part)
        if not cm:
            raise SoqlError("MALFORMED_QUERY", f"cannot parse condition {part!r}")
        name, op, raw = cm.group(1), cm.group(2).upper(), cm.group(3)
        if op == "IN":
            inner = raw.strip()
            if not (inner.startswith("(") and inner.endswith(")")):
                raise SoqlError("MALFORMED_QUERY", f"IN needs a list: {part!r}")
            value: Any = {_literal(v) for v in re.findall(r"'(?:[^'\\]|\\.)*'", inner)}
        else:
            value = _literal(raw)
        conditions.append((name, op, value))

    def field_value(record: dict[str, Any], name: str) -> Any:
        if name == "What.Type":
            return _TYPE_BY_PREFIX.get(str(record.get("WhatId") or "")[:3])
        if "." in name:
            parent_name, child = name.split(".", 1)
            found = org.get(record.get(f"{parent_name}Id") or "")
            return found[1].get(child) if found else None
        return record.get(name)

    def matches(record: dict[str, Any]) -> bool:
        if record.get("IsDeleted") and not include_deleted:
            return False
        for name, op, value in conditions:
            have = _comparable(field_value(record, name))
            if op == "IN" and have not in value:
                return False
            if op == "=" and have != value:
                return False
            if op == "!=" and have == value:
                return False
            if op in (">", "<", ">=", "<="):
                if have is None:
                    return False
                ok = {">": have > value, "<": have < value, ">=": have >= value, "<=": have <= value}[op]
                if not ok:
                    return False
        return True

    out = []
    for record in sorted(org.records.get(sobject, {}).values(), key=lambda r: r["Id"]):
        if not matches(record):
            continue
        row: dict[str, Any] = {"attributes": {"type": sobject, "url": f"/services/data/{API}/sobjects/{sobject}/{record['Id']}"}}
        for f in fields:
            if "." in f:
                parent_name, child = f.split(".", 1)
                found = org.get(record.get(f"{parent_name}Id") or "")
                if found:
                    ptype, precord = found
                    row.setdefault(parent_name, {"attributes": {"type": ptype, "url": f"/services/data/{API}/sobjects/{ptype}/{precord['Id']}"}})[child] = precord.get(child)
                else:
                    row[parent_name] = None
            else:
                row[f] = record.get(f)
        out.append(row)
    return sobject, out


class FakeSalesforce:
    """``with FakeSalesforce(org) as sf: SalesforceSource(sf.instance_url, TOKEN, config=...)``."""

    def __init__(self, org: FakeOrg | None = None, page_size: int = 3, token: str = TOKEN):
        self.org = org or default_org()
        self.page_size = page_size
        self.token = token
        self.requests: list[Request] = []
        self.failures: list[Failure] = []
        self._locators: dict[str, list[dict[str, Any]]] = {}
        self.locator_sobjects: dict[str, str] = {}  # query locator -> the sObject queried
        self._locator_ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server = bind_locally(self._handler())

    @property
    def instance_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeSalesforce:
        serve_in_background(self._server, "fake-salesforce")
        return self

    def __exit__(self, *exc: Any) -> None:
        shut_down(self._server)

    # -- scripting and inspection ----------------------------------------------------------
    def fail(
        self, match: str | Callable[[Request], bool], status: int, body: Any = None, headers: dict[str, str] | None = None,
        times: int = 1, after: bool = False,
    ) -> None:
        """The next ``times`` requests matching (a substring of path + SOQL, or a predicate) get this answer;
        ``after=True`` performs the request first (the write happened, the answer was lost)."""
        pred = match if callable(match) else (lambda r, s=match: s in r.path or s in (r.soql or ""))
        if body is None:
            body = [{"message": f"scripted {status}", "errorCode": "SERVER_UNAVAILABLE" if status == 503 else "UNKNOWN_EXCEPTION"}]
        self.failures.append(Failure(pred, status, body, headers or {}, times, after))

    def reset_requests(self) -> None:
        self.requests.clear()

    def query_more(self, sobject: str) -> list[Request]:
        """The queryMore (nextRecordsUrl) requests of queries on ``sobject``."""
        out = []
        for r in self.requests:
            m = re.search(r"/query/(01g\w+)-\d+$", r.path)
            if m and self.locator_sobjects.get(m.group(1)) == sobject:
                out.append(r)
        return out

    def soql_sent(self, sobject: str | None = None) -> list[str]:
        return [r.soql for r in self.requests if r.soql and (sobject is None or r.sobject == sobject)]

    # -- HTTP ------------------------------------------------------------------------------
    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Sforce-Limit-Info", "api-usage=25/15000")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                parts = urlsplit(self.path)
                params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body: Any = None
                if raw:
                    ctype = self.headers.get("Content-Type", "")
                    body = json.loads(raw) if "json" in ctype else {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
                req = Request(method, parts.path, params, dict(self.headers.items()), body)
                with fake._lock:
                    fake.requests.append(req)
                    for failure in fake.failures:
                        if failure.remaining > 0 and failure.match(req):
                            failure.remaining -= 1
                            if failure.after:
                                fake._route(req)
                            return self._reply(failure.status, failure.body, failure.headers)
                    try:
                        status, answer = fake._route(req)
                    except SoqlError as exc:
                        status, answer = 400, [{"message": str(exc), "errorCode": exc.code}]
                self._reply(status, answer)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

        return Handler

    def _route(self, req: Request) -> tuple[int, Any]:
        if req.path == "/services/oauth2/token" and req.method == "POST":
            form = req.body or {}
            if form.get("grant_type") == "client_credentials" and form.get("client_id") == CLIENT_ID and form.get("client_secret") == CLIENT_SECRET:
                return 200, {"access_token": self.token, "instance_url": self.instance_url, "token_type": "Bearer",
                             "id": f"{self.instance_url}/id/00D/005", "issued_at": "1767000000000", "signature": "x"}
            return 400, {"error": "invalid_client", "error_description": "invalid client credentials"}
        if req.headers.get("Authorization") != f"Bearer {self.token}":
            return 401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
        base = f"/services/data/{API}"
        if not req.path.startswith(base):
            return 404, [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]
        rest = req.path[len(base):]
        if req.method == "GET" and rest in ("/query", "/queryAll", "/query/", "/queryAll/"):
            sobject, records = run_soql(self.org, req.soql or "", include_deleted=rest.startswith("/queryAll"))
            return 200, self._page(records, None, sobject)
        m = re.fullmatch(r"/query/(01g[\w]+)-(\d+)", rest)
        if req.method == "GET" and m:
            records = self._locators.get(m.group(1))
            if records is None:
                return 400, [{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}]
            return 200, self._page(records, (m.group(1), int(m.group(2))))
        m = re.fullmatch(r"/sobjects/(\w+)/describe/?", rest)
        if req.method == "GET" and m:
            fields = self.org.fields(m.group(1))
            if not fields:
                return 404, [{"message": f"sObject type '{m.group(1)}' is not supported.", "errorCode": "NOT_FOUND"}]
            return 200, {"name": m.group(1), "fields": [{"name": f} for f in fields]}
        m = re.fullmatch(r"/sobjects/(\w+)/?", rest)
        if req.method == "POST" and m:
            fields = dict(req.body or {})
            now = sf_time(dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))  # writes are stamped with the real time
            rid = self.org.add(m.group(1), **{**fields, "CreatedDate": now, "SystemModstamp": now, "LastModifiedDate": now})
            return 201, {"id": rid, "success": True, "errors": []}
        return 404, [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]

    def _page(self, records: list[dict[str, Any]], locator: tuple[str, int] | None, sobject: str = "") -> dict[str, Any]:
        if locator is None:
            loc, start = f"01gFAKE{next(self._locator_ids):08d}", 0
            self._locators[loc] = records
            self.locator_sobjects[loc] = sobject
        else:
            loc, start = locator
        end = start + self.page_size
        page = {"totalSize": len(records), "done": end >= len(records), "records": records[start:end]}
        if end < len(records):
            page["nextRecordsUrl"] = f"/services/data/{API}/query/{loc}-{end}"
        return page


def default_org() -> FakeOrg:
    """A small Sales Cloud org: 6 stages (+1 inactive), a manager and 2 reps, accounts, contacts,
    8 opportunities (one with a negative amount, one at a stage the org does not have), history,
    tasks, events and relations."""
    org = FakeOrg()
    for order, (label, closed, won, active) in enumerate(
        [("Prospecting", False, False, True), ("Qualification", False, False, True), ("Proposal/Price Quote", False, False, True),
         ("Negotiation/Review", False, False, True), ("Closed Won", True, True, True), ("Closed Lost", True, False, True),
         ("Legacy Stage", False, False, False)], start=1):
        org.add("OpportunityStage", MasterLabel=label, ApiName=label, SortOrder=order, IsClosed=closed, IsWon=won, IsActive=active)
    mgr = org.add("User", Name="Maria Manager", Email="maria@example.com", ManagerId=None, IsActive=True, UserType="Standard", Department="Sales")
    rita = org.add("User", Name="Rita Rep", Email="rita@example.com", ManagerId=mgr, IsActive=True, UserType="Standard", Department="SMB")
    ravi = org.add("User", Name="Ravi Rep", Email="ravi@example.com", ManagerId=mgr, IsActive=False, UserType="Standard", Department="Enterprise")
    org.add("User", Name="Integration", Email=None, ManagerId=mgr, IsActive=True, UserType="AutomatedProcess", Department=None)
    acme = org.add("Account", Name="Acme", Industry="Manufacturing", NumberOfEmployees=50, Tier__c="Gold")
    globex = org.add("Account", Name="Globex", Industry="Energy", NumberOfEmployees=5000, Tier__c=None)
    c1 = org.add("Contact", AccountId=acme, Name="Ann Buyer", Title="CFO", Email="ann@acme.example")
    c2 = org.add("Contact", AccountId=globex, Name="Bob Sponsor", Title="VP Ops", Email="bob@globex.example")
    c3 = org.add("Contact", AccountId=globex, Name="Cy Engineer", Title="Engineer", Email="cy@globex.example")
    opps = []
    for i, (name, stage, amount, owner, account) in enumerate(
        [("Acme expansion", "Qualification", 12000.0, rita, acme), ("Acme renewal", "Proposal/Price Quote", 30000.0, rita, acme),
         ("Globex platform", "Negotiation/Review", 250000.0, ravi, globex), ("Globex pilot", "Closed Won", 40000.0, ravi, globex),
         ("Globex services", "Closed Lost", 15000.0, ravi, globex), ("Acme add-on", "Prospecting", -500.0, rita, acme),
         ("Acme legacy", "Discovery", 1000.0, rita, acme), ("Globex analytics", "prospecting", None, ravi, globex)], start=1):
        st = next(r for r in org.records["OpportunityStage"].values() if r["MasterLabel"].lower() == stage.lower()) if stage != "Discovery" else None
        opps.append(org.add(
            "Opportunity", Name=name, AccountId=account, OwnerId=owner, StageName=stage, Amount=amount,
            CreatedDate=sf_time(EPOCH - dt.timedelta(days=90 - i)), CloseDate=f"2026-03-{10 + i:02d}",
            IsClosed=bool(st and st["IsClosed"]), IsWon=bool(st and st["IsWon"]), NextStep="Send proposal" if i == 1 else None,
            Priority__c="High" if i == 1 else None,
        ))
    org.add("OpportunityContactRole", ContactId=c1, OpportunityId=opps[0], Role="Decision Maker", IsPrimary=True)
    org.add("OpportunityContactRole", ContactId=c2, OpportunityId=opps[2], Role="Influencer", IsPrimary=False)
    org.add("OpportunityContactRole", ContactId=c2, OpportunityId=opps[3], Role="Executive Sponsor", IsPrimary=True)
    for opp, stages in ((opps[0], ["Prospecting", "Qualification"]), (opps[2], ["Prospecting", "Prospecting", "Negotiation/Review"])):
        for k, stage in enumerate(stages):
            org.add("OpportunityHistory", OpportunityId=opp, StageName=stage, CreatedDate=sf_time(EPOCH - dt.timedelta(days=60 - 10 * k)))
    org.add("OpportunityFieldHistory", OpportunityId=opps[0], Field="CloseDate", OldValue="2026-02-01", NewValue="2026-03-11", DataType="Date")
    org.add("OpportunityFieldHistory", OpportunityId=opps[1], Field="Amount", OldValue=25000, NewValue=30000, DataType="Currency")
    org.add("OpportunityFieldHistory", OpportunityId=opps[1], Field="StageName", OldValue="Qualification", NewValue="Proposal/Price Quote", DataType="Picklist")
    t1 = org.add("Task", WhatId=opps[0], WhoId=c1, AccountId=acme, OwnerId=rita, Subject="Discovery call", TaskSubtype="Call", Type="Call",
                 ActivityDate="2026-01-05", CompletedDateTime="2026-01-05T15:00:00.000+0000", Status="Completed", Description=None)
    org.add("Task", WhatId=acme, WhoId=c1, AccountId=acme, OwnerId=rita, Subject="Account admin", TaskSubtype="Task", Type=None,
            ActivityDate="2026-01-06", CompletedDateTime=None, Status="Completed", Description=None)
    org.add("Task", WhatId=opps[1], WhoId=None, AccountId=acme, OwnerId=rita, Subject="Sent pricing", TaskSubtype="Email", Type="Email",
            ActivityDate="2026-01-07", CompletedDateTime=None, Status="Completed", Description=None)
    e1 = org.add("Event", WhatId=opps[2], WhoId=c2, AccountId=globex, OwnerId=ravi, Subject="Onsite workshop", EventSubtype="Event", Type="Meeting",
                 StartDateTime="2026-01-08T10:00:00.000+0000", ActivityDateTime="2026-01-08T10:00:00.000+0000",
                 EndDateTime="2026-01-08T12:00:00.000+0000")
    # planned, not done: an open task past its date is no past activity
    org.add("Task", WhatId=opps[0], WhoId=c1, AccountId=acme, OwnerId=rita, Subject="Planned follow-up", TaskSubtype="Call", Type="Call",
            ActivityDate="2026-01-09", CompletedDateTime=None, Status="Not Started", Description=None)
    org.add("TaskRelation", TaskId=t1, RelationId=c1, IsWhat=False)  # duplicates the WhoId link: one pair
    org.add("EventRelation", EventId=e1, RelationId=c3, IsWhat=False, IsInvitee=True, Status="Accepted")
    org.add("EventRelation", EventId=e1, RelationId=rita, IsWhat=False, IsInvitee=True, Status="Accepted")  # a user: not a contact
    add_quotas(org, mgr, rita, ravi)  # last: the records above keep their SystemModstamps
    return org


def add_quotas(org: FakeOrg, manager: str, rita: str, ravi: str) -> None:
    """Collaborative Forecasts quotas (an org without territories or PeriodId: those fields are absent).
    Two forecast types; Revenue has the most rows. Rita: monthly quotas (10k Jan-Mar, 20k Apr), Ravi: a
    quarterly one (100k) plus a product-family split (left out); the manager's own roll-up quota and a
    quantity quota are left out too."""
    revenue = org.add("ForecastingType", DeveloperName="OpportunityRevenue", MasterLabel="Opportunities - Revenue", IsActive=True)
    split = org.add("ForecastingType", DeveloperName="OpportunitySplitRevenue", MasterLabel="Opportunity Splits - Revenue", IsActive=True)
    def quota(owner: str, start: str, amount: float | None, type_id: str = revenue, **more) -> str:
        fields = {"QuotaOwnerId": owner, "StartDate": start, "QuotaAmount": amount, "QuotaQuantity": None, "IsAmount": amount is not None,
                  "IsQuantity": amount is None, "ForecastingTypeId": type_id, "ProductFamily": None, "CurrencyIsoCode": "USD", **more}
        return org.add("ForecastingQuota", **fields)
    for month in ("2026-01-01", "2026-02-01", "2026-03-01"):
        quota(rita, month, 10000.0)
    quota(rita, "2026-04-01", 20000.0)
    quota(ravi, "2026-01-01", 100000.0)
    quota(ravi, "2026-01-01", 40000.0, ProductFamily="Hardware")
    quota(rita, "2026-01-01", 99999.0, split)
    quota(manager, "2026-01-01", 250000.0)
    quota(ravi, "2026-01-01", None, QuotaQuantity=50.0)
