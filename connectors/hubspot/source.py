"""HubSpot CRM (v3 API) as an incremental, read-only CRM source in the canonical landed shape.

Objects (see connectors/schema.py):

- stages: the deal pipelines' stages in display order (closed: ``metadata.isClosed``; won:
  closed with probability 1.0), or the config's list;
- managers, reps: owners (``/crm/v3/owners``, active and archived); managers are the owners the
  config names (directly, as a team's manager or as an owner's manager); segment from the
  owner's or team's entry;
- accounts: companies (segment from a property or from employee bands);
- contacts: contacts (buying role from ``hs_buying_role`` through the config's value map);
- opportunities, stage_history, field_history: deals, with ``propertiesWithHistory`` for
  dealstage, closedate and amount (stage history falls back to ``hs_date_entered_<stage id>``);
- activities, activity_contacts: meetings, calls, emails and tasks with their deal, company and
  contact associations.

Incremental: an object's cursor is the largest ``hs_lastmodifieddate`` (``lastmodifieddate``
for contacts; ``archivedAt`` for archived records) it returned. With a cursor, the next read asks
the search API for records modified since (``cursor - lookback_s``), re-reads those that need
history or associations one GET each (or re-lists when there are many), and lists archived
records archived since, which come back with ``_is_deleted = True``. Owners and pipelines are
small and re-read whole each time (landing merges them).

Read-only: the HTTP session refuses anything but GET and POST .../search (invariant 1). Rows
that cannot be used go to ``Batch.rejected`` with the reason and the record as read (invariant 8).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.csv_folder import Batch, ObjectReport
from connectors.values import ValueProblem, parse_value, stage_lookup
from connectors.hubspot.client import DEFAULT_BASE_URL, HubSpotClient
from connectors.hubspot.config import ACTIVITY_SUBJECT_PROPERTY, HubSpotConfig
from connectors.mapping import StageSpec
from connectors.schema import RAW_OBJECTS, Field

SEARCH_CAP = 10_000  # HubSpot's search returns at most 10,000 results per query
HISTORY_PAGE_LIMIT = 50  # listing limit when propertiesWithHistory is requested

DEAL_PROPERTIES = [
    "dealname", "dealstage", "pipeline", "amount", "createdate", "closedate", "hs_is_closed",
    "hs_is_closed_won", "hubspot_owner_id", "hs_next_step", "hs_lastmodifieddate",
]
DEAL_HISTORY = ["dealstage", "closedate", "amount"]
COMPANY_PROPERTIES = ["name", "domain", "industry", "numberofemployees", "hs_lastmodifieddate"]
CONTACT_PROPERTIES = ["firstname", "lastname", "email", "jobtitle", "associatedcompanyid", "lastmodifieddate"]
ACTIVITY_PROPERTIES = ["hs_timestamp", "hubspot_owner_id", "hs_lastmodifieddate"]
MODIFIED_PROPERTY = {"contacts": "lastmodifieddate"}  # every other object: hs_lastmodifieddate




# --------------------------------------------------------------------------- value parsing


def parse_timestamp(value: Any) -> dt.datetime:
    """HubSpot datetimes: ISO 8601 (``...Z``), epoch milliseconds, or a bare date; naive UTC out."""
    if isinstance(value, dt.datetime):
        ts = value
    elif isinstance(value, (int, float)) or (isinstance(value, str) and value.strip().lstrip("-").isdigit()):
        ts = dt.datetime.fromtimestamp(int(value) / 1000, dt.UTC)
    else:
        text = str(value).strip()
        try:
            ts = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueProblem(f"unparseable timestamp: {value!r}") from None
    if ts.tzinfo is not None:
        ts = ts.astimezone(dt.UTC).replace(tzinfo=None)
    return ts


def iso_cursor(ts: dt.datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def _epoch_ms(ts: dt.datetime) -> int:
    return int(ts.replace(tzinfo=dt.UTC).timestamp() * 1000)


def parse_field(f: Field, value: Any, stage_names: set[str] | None = None) -> Any:
    return parse_value(
        f, value, parse_date=lambda v: parse_timestamp(v).date(), parse_timestamp=parse_timestamp,
        stages=stage_lookup(stage_names),
    )


# --------------------------------------------------------------------------- fetched records


@dataclass
class Fetched:
    """A HubSpot record as read, with where it came from and whether it is archived."""

    endpoint: str
    record: dict[str, Any]
    deleted: bool = False

    @property
    def props(self) -> dict[str, Any]:
        return self.record.get("properties") or {}

    def associated(self, to: str) -> list[str]:
        assoc = ((self.record.get("associations") or {}).get(to) or {}).get("results") or []
        ids: list[str] = []
        for a in assoc:
            if str(a.get("id")) not in ids:
                ids.append(str(a.get("id")))
        return ids

    def primary_associated(self, to: str, primary_type: str) -> str | None:
        assoc = ((self.record.get("associations") or {}).get(to) or {}).get("results") or []
        for a in assoc:
            if a.get("type") == primary_type:
                return str(a.get("id"))
        ids = self.associated(to)
        return ids[0] if ids else None


@dataclass
class _Fetch:
    items: list[Fetched] = field(default_factory=list)
    high_water: dt.datetime | None = None
    skipped: int = 0
    endpoint: str = ""


class _Emitter:
    """Types, validates and batches rows of one canonical object; rejects what cannot be used."""

    def __init__(self, object_name: str, report: ObjectReport, batch_size: int, stage_names: set[str] | None = None):
        self.obj = RAW_OBJECTS[object_name]
        self.report = report
        self.batch_size = batch_size
        self.stage_names = stage_names
        self.batch = Batch()
        self.row_number = 0

    def add(self, values: Mapping[str, Any], source: Fetched, extra: Mapping[str, Any] | None = None) -> Batch | None:
        self.row_number += 1
        typed: dict[str, Any] = {}
        problems: list[tuple[str, str]] = []
        for f in self.obj.fields:
            try:
                typed[f.name] = parse_field(f, values.get(f.name), self.stage_names)
            except ValueProblem as exc:
                problems.append((f.name, str(exc)))
        if problems:
            self.report.rejected += 1
            self.batch.rejected.append(
                {
                    "object": self.obj.name,
                    "source_file": source.endpoint,
                    "row_number": self.row_number,
                    "field": ", ".join(p[0] for p in problems),
                    "reason": "; ".join(f"{f}: {why}" for f, why in problems),
                    "raw_record": json.dumps(source.record, ensure_ascii=False, default=str, sort_keys=True),
                }
            )
        else:
            self.report.rows += 1
            typed["_source_file"] = source.endpoint
            typed["_source_row"] = self.row_number
            typed["_is_deleted"] = source.deleted
            typed["_extra"] = dict(extra or {})
            self.batch.rows.append(typed)
        if len(self.batch.rows) + len(self.batch.rejected) >= self.batch_size:
            out, self.batch = self.batch, Batch()
            return out
        return None

    def flush(self) -> Batch | None:
        if self.batch.rows or self.batch.rejected:
            out, self.batch = self.batch, Batch()
            return out
        return None


def _extra(props: Mapping[str, Any], used: Iterable[str]) -> dict[str, Any]:
    used = set(used) | {"hs_object_id"}
    return {k: v for k, v in props.items() if k not in used and v not in (None, "")}


def _full_name(first: Any, last: Any) -> str | None:
    name = " ".join(str(p).strip() for p in (first, last) if p and str(p).strip())
    return name or None


# --------------------------------------------------------------------------- the source


class HubSpotSource:
    """A HubSpot portal, read through the CRM v3 API with a private-app or OAuth token."""

    incremental = True

    def __init__(self, token: str, base_url: str = DEFAULT_BASE_URL, config: HubSpotConfig | None = None):
        self.config = config or HubSpotConfig()
        self.client = HubSpotClient(token, base_url, self.config.retry, read_only=True)
        self.reports: dict[str, ObjectReport] = {}
        self.cursors: dict[str, str] = {}
        self._pipelines: list[dict[str, Any]] | None = None
        self._stage_specs: list[StageSpec] | None = None
        self._stage_label: dict[str, str] = {}
        self._owners: list[Fetched] | None = None
        self._cache: dict[tuple[str, str | None], _Fetch] = {}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, config: HubSpotConfig | None = None) -> HubSpotSource:
        """``HUBSPOT_TOKEN`` (required), ``HUBSPOT_BASE_URL``, ``HUBSPOT_PORTAL_ID``, ``HUBSPOT_CONFIG`` (YAML path)."""
        env = os.environ if environ is None else environ
        token = env.get("HUBSPOT_TOKEN", "").strip()
        if config is None:
            path = env.get("HUBSPOT_CONFIG", "").strip()
            config = HubSpotConfig.load(path) if path else HubSpotConfig()
        portal = env.get("HUBSPOT_PORTAL_ID", "").strip()
        if portal and not config.portal_id:
            config = config.model_copy(update={"portal_id": portal})
        return cls(token, env.get("HUBSPOT_BASE_URL", "").strip() or DEFAULT_BASE_URL, config)

    def __repr__(self) -> str:
        return f"HubSpotSource(base_url={self.client.base_url!r}, source_system={self.source_system!r})"

    @property
    def source_system(self) -> str:
        return self.config.source_system

    # -- reading -------------------------------------------------------------------------
    def read(self, object_name: str, batch_size: int = 1000, cursor: str | None = None) -> Iterator[Batch]:
        """Typed rows (and rejections) of one canonical object changed since ``cursor`` (all when None)."""
        if object_name not in RAW_OBJECTS:
            raise KeyError(f"unknown canonical object {object_name!r}")
        reader = getattr(self, f"_read_{object_name}", None)
        if reader is None:  # quotas: HubSpot's CRM API has no quota object
            self.reports[object_name] = ObjectReport(object_name, None, present=False)
            return
        yield from reader(batch_size, cursor)

    def stages(self) -> list[StageSpec]:
        """The canonical stages (config override, else the pipelines' stages in display order)."""
        if self._stage_specs is None:
            pipelines = self._load_pipelines()
            specs: list[StageSpec] = []
            seen: set[str] = set()
            for p in pipelines:
                for s in sorted(p.get("stages") or [], key=lambda s: (s.get("displayOrder") or 0)):
                    label = str(s.get("label") or s.get("id"))
                    if s.get("archived") or label in seen:
                        continue
                    seen.add(label)
                    meta = s.get("metadata") or {}
                    closed = str(meta.get("isClosed", "false")).lower() == "true"
                    try:
                        won = closed and float(meta.get("probability") or 0) >= 1.0
                    except ValueError:
                        won = False
                    specs.append(StageSpec(name=label, order=len(specs) + 1, closed=closed, won=won))
            self._stage_specs = list(self.config.stages) if self.config.stages is not None else specs
        return self._stage_specs

    def _load_pipelines(self) -> list[dict[str, Any]]:
        if self._pipelines is None:
            pipelines: list[dict[str, Any]] = []
            for page in self.client.pages("/crm/v3/pipelines/deals", paged=False):
                pipelines.extend(page)
            pipelines.sort(key=lambda p: (p.get("displayOrder") or 0, str(p.get("id"))))
            for p in pipelines:  # every pipeline's ids, so history in another pipeline still resolves
                for s in p.get("stages") or []:
                    self._stage_label[str(s.get("id"))] = str(s.get("label") or s.get("id"))
            wanted = self.config.pipelines
            if wanted is not None:
                pipelines = [p for p in pipelines if str(p.get("id")) in wanted or p.get("label") in wanted]
            self._pipelines = pipelines
        return self._pipelines

    def _pipeline_ids(self) -> set[str]:
        return {str(p.get("id")) for p in self._load_pipelines()}

    def _stage_names(self) -> set[str]:
        return {s.name for s in self.stages()}

    # -- stages
    def _read_stages(self, batch_size: int, cursor: str | None) -> Iterator[Batch]:
        endpoint = "config" if self.config.stages is not None else "/crm/v3/pipelines/deals"
        report = self.reports["stages"] = ObjectReport("stages", endpoint)
        em = _Emitter("stages", report, batch_size)
        for s in self.stages():
            values = {"stage": s.name, "stage_order": s.order, "is_closed": s.closed, "is_won": s.won}
            if (out := em.add(values, Fetched(endpoint, s.model_dump()))):
                yield out
        if (out := em.flush()):
            yield out

    # -- owners: managers and reps
    def _load_owners(self) -> list[Fetched]:
        if self._owners is None:
            owners: list[Fetched] = []
            for archived in (False, True):
                endpoint = "/crm/v3/owners" + ("?archived=true" if archived else "")
                params = {"limit": self.config.page_size, "archived": str(archived).lower()}
                for page in self.client.pages("/crm/v3/owners", params):
                    owners.extend(Fetched(endpoint, o) for o in page)
            self._owners = owners
        return self._owners

    def _owner_index(self) -> dict[str, str]:
        """Owner id or email (lower-cased) -> owner id."""
        index: dict[str, str] = {}
        for o in self._load_owners():
            oid = str(o.record.get("id"))
            index[oid] = oid
            if o.record.get("email"):
                index[str(o.record["email"]).lower()] = oid
        return index

    def _resolve(self, ref: str | None) -> str | None:
        if not ref:
            return None
        return self._owner_index().get(str(ref).lower(), str(ref))

    def _lookup(self, mapping: Mapping[str, Any], owner: dict[str, Any]) -> Any:
        for key in (str(owner.get("id")), str(owner.get("email") or "").lower()):
            for k, v in mapping.items():
                if key and k.lower() == key:
                    return v
        return None

    def _team_spec(self, owner: dict[str, Any]):
        teams = sorted(owner.get("teams") or [], key=lambda t: not t.get("primary"))
        for t in teams:
            for key in (str(t.get("id")), str(t.get("name"))):
                if key in self.config.teams:
                    return self.config.teams[key]
        return None

    def _manager_ids(self) -> set[str]:
        ids = {self._resolve(m) for m in self.config.managers}
        ids |= {self._resolve(t.manager) for t in self.config.teams.values() if t.manager}
        ids |= {self._resolve(o.manager) for o in self.config.owners.values() if o.manager}
        return {i for i in ids if i}

    def _read_managers(self, batch_size: int, cursor: str | None) -> Iterator[Batch]:
        report = self.reports["managers"] = ObjectReport("managers", "/crm/v3/owners")
        em = _Emitter("managers", report, batch_size)
        managers = self._manager_ids()
        for o in self._load_owners():
            rec = o.record
            if str(rec.get("id")) not in managers:
                continue
            spec = self._lookup(self.config.owners, rec)
            values = {
                "manager_id": rec.get("id"),
                "manager_name": _full_name(rec.get("firstName"), rec.get("lastName")) or rec.get("email"),
                "email": rec.get("email"),
                "slack_user_id": spec.slack_user_id if spec else None,
            }
            if (out := em.add(values, Fetched(o.endpoint, rec), self._owner_extra(rec))):
                yield out
        if (out := em.flush()):
            yield out

    @staticmethod
    def _owner_extra(rec: dict[str, Any]) -> dict[str, Any]:
        used = {"id", "email", "firstName", "lastName", "archived", "properties"}
        return {k: v for k, v in rec.items() if k not in used and v not in (None, "", [])}

    def _read_reps(self, batch_size: int, cursor: str | None) -> Iterator[Batch]:
        report = self.reports["reps"] = ObjectReport("reps", "/crm/v3/owners")
        em = _Emitter("reps", report, batch_size)
        for o in self._load_owners():
            rec = o.record
            spec = self._lookup(self.config.owners, rec)
            team = self._team_spec(rec)
            manager = self._resolve((spec.manager if spec else None) or (team.manager if team else None))
            if manager == str(rec.get("id")):
                manager = None
            values = {
                "rep_id": rec.get("id"),
                "rep_name": _full_name(rec.get("firstName"), rec.get("lastName")) or rec.get("email"),
                "email": rec.get("email"),
                "slack_user_id": spec.slack_user_id if spec else None,
                "manager_id": manager,
                "segment": (spec.segment if spec else None) or (team.segment if team else None) or self.config.default_rep_segment,
                "hired_on": spec.hired_on if spec else None,
                # An archived (deactivated) owner still owns historical deals: kept, inactive, not deleted.
                "is_active": not (rec.get("archived") or o.endpoint.endswith("archived=true")),
            }
            if (out := em.add(values, Fetched(o.endpoint, rec), self._owner_extra(rec))):
                yield out
        if (out := em.flush()):
            yield out

    # -- generic incremental fetch -----------------------------------------------------------
    def _modified(self, otype: str, f: Fetched) -> dt.datetime | None:
        raw = f.props.get(MODIFIED_PROPERTY.get(otype, "hs_lastmodifieddate")) or f.record.get("updatedAt")
        if f.deleted and f.record.get("archivedAt"):
            raw = f.record["archivedAt"]
        try:
            return parse_timestamp(raw) if raw else None
        except ValueProblem:
            return None

    def _since(self, cursor: str | None) -> dt.datetime | None:
        if not cursor:
            return None
        return parse_timestamp(cursor) - dt.timedelta(seconds=self.config.lookback_s)

    def _list_params(self, properties: list[str], history: list[str], associations: list[str], archived: bool) -> dict[str, Any]:
        params: dict[str, Any] = {
            "limit": min(self.config.page_size, HISTORY_PAGE_LIMIT) if history else self.config.page_size,
            "properties": ",".join(properties),
            "archived": str(archived).lower(),
        }
        if history:
            params["propertiesWithHistory"] = ",".join(history)
        if associations:
            params["associations"] = ",".join(associations)
        return params

    def _search(self, otype: str, properties: list[str], since: dt.datetime) -> Iterator[dict[str, Any]]:
        """Records modified after ``since``, oldest change first; restarts past the 10,000-result cap."""
        prop = MODIFIED_PROPERTY.get(otype, "hs_lastmodifieddate")
        lower, op, seen = since, "GT", set()
        while True:
            body = {
                "filterGroups": [{"filters": [{"propertyName": prop, "operator": op, "value": str(_epoch_ms(lower))}]}],
                "sorts": [{"propertyName": prop, "direction": "ASCENDING"}],
                "properties": properties,
                "limit": self.config.page_size,
            }
            returned, last = 0, None
            capped = False
            for page in self.client.search(otype, body):
                for rec in page:
                    returned += 1
                    if rec.get("id") in seen:
                        continue
                    seen.add(rec.get("id"))
                    last = self._modified(otype, Fetched("", rec)) or last
                    yield rec
                if returned >= SEARCH_CAP - self.config.page_size:
                    capped = True
                    break
            if not capped or last is None or (op == "GTE" and last <= lower):
                return
            lower, op = last, "GTE"

    def _fetch(self, otype: str, properties: list[str], cursor: str | None, *,
               history: list[str] | None = None, associations: list[str] | None = None) -> _Fetch:
        """Every record of ``otype`` changed since ``cursor`` (all live ones when None), archived ones last."""
        key = (otype, cursor)
        if key in self._cache:
            return self._cache[key]
        history, associations = history or [], associations or []
        properties = list(dict.fromkeys(properties + self.config.extra_properties.get(otype, [])))
        path = f"/crm/v3/objects/{otype}"
        out = _Fetch(endpoint=path)
        since = self._since(cursor)
        if since is None:
            for page in self.client.pages(path, self._list_params(properties, history, associations, False)):
                out.items.extend(Fetched(path, r) for r in page)
        else:
            needs_detail = bool(history or associations)
            changed = self._search(otype, properties, since)
            if not needs_detail:
                out.items.extend(Fetched(f"{path}/search", r) for r in changed)
            else:
                ids = [str(r.get("id")) for r in changed]
                if len(ids) > self.config.per_record_limit:
                    wanted = set(ids)
                    for page in self.client.pages(path, self._list_params(properties, history, associations, False)):
                        out.items.extend(Fetched(path, r) for r in page if str(r.get("id")) in wanted)
                else:
                    params = self._list_params(properties, history, associations, False)
                    params.pop("limit"), params.pop("archived")
                    for rid in ids:
                        out.items.append(Fetched(f"{path}/{rid}", self.client.get(f"{path}/{rid}", params)))
            # Archived since the cursor: listed (search never returns archived records).
            for page in self.client.pages(path, self._list_params(properties, history, associations, True)):
                for r in page:
                    f = Fetched(f"{path}?archived=true", r, deleted=True)
                    when = self._modified(otype, f)
                    if when is None or when > since:
                        out.items.append(f)
        for f in out.items:
            when = self._modified(otype, f)
            if when is not None and (out.high_water is None or when > out.high_water):
                out.high_water = when
        self._cache[key] = out
        return out

    def _advance(self, object_name: str, fetched: _Fetch, cursor: str | None) -> None:
        if fetched.high_water is not None:
            new = iso_cursor(fetched.high_water)
            self.cursors[object_name] = max(new, cursor) if cursor else new
        elif cursor:
            self.cursors[object_name] = cursor

    # -- accounts
    def _read_accounts(self, batch_size: int, cursor: str | None) -> Iterator[Batch]:
        cfg = self.config
        props = COMPANY_PROPERTIES + [p for p in (cfg.account_segment_property, cfg.account_tags_property) if p]
        fetched = self._fetch("companies", props, cursor)
        report = self.reports["accounts"] = ObjectReport("accounts", fetched.endpoint)
        em = _Emitter("accounts", report, batch_size)
        for f in fetched.items:
            p = f.props
            employees = p.get("numberofemployees")
            try:
                n_employees = parse_field(RAW_OBJECTS["accounts"].field("employees"), employees)
            except ValueProblem:
                n_employees = None  # the row is rejected below with the reason
            segment = None
            if cfg.account_segment_property and p.get(cfg.account_segment_property):
                raw = str(p[cfg.account_segment_property])
                segment = cfg.account_segment_values.get(raw, raw)
            if segment is None:
                segment = cfg.segment_for_employees(n_employees)
            tags = p.get(cfg.account_tags_property) if cfg.account_tags_property else None
            values = {
                "account_id": f.record.get("id"),
                "account_name": p.get("name") or p.get("domain"),
                "segment": segment,
                "industry": p.get("industry"),
                "employees": employees,
                "tags": tags,
            }
            used = ["name", "industry", "numberofemployees", cfg.account_segment_property or "", cfg.account_tags_property or ""]
            if (out := em.add(values, f, _extra(p, used))):
                yield out
        if (out := em.flush()):
            yield out
        self._advance("accounts", fetched, cursor)

    # -- contacts
    def _read_contacts(self, batch_size: int, cursor: str | None) -> Iterator[Batch]:
        cfg = self.config
        fetched = self._fetch("contacts", CONTACT_PROPERTIES + [cfg.buying_role_property], cursor)
        report = self.reports["contacts"] = ObjectReport("contacts", fetched.endpoint)
        em = _Emitter("contacts", report, batch_size)
        for f in fetched.items:
            p = f.props
            values = {
                "contact_id": f.record.get("id"),
                "account_id": p.get("associatedcompanyid"),
                "contact_name": _full_name(p.get("firstname"), p.get("lastname")),
                "title": p.get("jobtitle"),
                "buying_role": cfg.buying_role(p.get(cfg.buying_role_property)),
                "email": p.get("email"),
            }
            used = ["associatedcompanyid", "firstname", "lastname", "jobtitle", cfg.buying_role_property, "email"]
            if (out := em.add(values, f, _extra(p, used))):
                yield out
        if (out := em.flush()):
            yield out
        self._advance("contacts", fetched, cursor)

    # -- deals
    def _deals(self, cursor: str | None) -> _Fetch:
        return self._fetch("deals", DEAL_PROPERTIES, cursor, history=DEAL_HISTORY, associations=["companies"])

    def _in_scope(self, f: Fetched) -> bool:
        return self.config.pipelines is None or str(f.props.get("pipeline")) in self._pipeline_ids()

    def _label(self, stage_id: Any) -> Any:
        self._load_pipelines()
        return self._stage_label.get(str(stage_id), stage_id) if stage_id not in (None, "") else stage_id

    def _deal_url(self, deal_id: Any) -> str | None:
        if not self.config.portal_id or deal_id in (None, ""):
            return None
        return self.config.deal_url_template.format(portal_id=self.config.portal_id, id=deal_id)

    def _read_opportunities(self, batch_size: int, cursor: str | None) -> Iterator[Batch]:
        fetched = self._deals(cursor)
        report = self.reports["opportunities"] = ObjectReport("opportunities", fetched.endpoint)
        em = _Emitter("opportunities", report, batch_size, self._stage_names())
        for f in fetched.items:
            if not self._in_scope(f):
                report.skipped += 1
                continue
            p = f.props
            closed = p.get("hs_is_closed")
            values = {
                "opportunity_id": f.record.get("id"),
                "account_id": f.primary_associated("companies", "deal_to_company"),
                "owner_rep_id": p.get("hubspot_owner_id"),
                "opportunity_name": p.get("dealname"),
                "stage": self._label(p.get("dealstage")),
                "amount": p.get("amount"),
                "created_at": p.get("createdate") or f.record.get("createdAt"),
                "close_date": p.get("closedate"),
                "is_closed": closed,
                "is_won": p.get("hs_is_closed_won"),
                "closed_at": p.get("closedate") if str(closed).lower() == "true" else None,
                "next_step": p.get("hs_next_step"),
                "source_url": self._deal_url(f.record.get("id")),
            }
            extra = _extra(p, ["dealname", "dealstage", "amount", "createdate", "closedate", "hs_is_closed",
                               "hs_is_closed_won", "hubspot_owner_id", "hs_next_step"])
            companies = f.associated("companies")
            if len(companies) > 1:
                extra["associated_company_ids"] = companies
            if (out := em.add(values, f, extra)):
                yield out
        if (out := em.flush()):
            yield out
        self._advance("opportunities", fetched, cursor)

    @staticmethod
    def _history(f: Fetched, prop: str) -> list[dict[str, Any]]:
        """A property's versions, oldest first."""
        versions = list((f.record.get("propertiesWithHistory") or {}).get(prop) or [])
        return sorted(versions, key=lambda v: parse_timestamp(v.get("timestamp")) if v.get("timestamp") else dt.datetime.min)

    def _read_stage_history(self, batch_size: int, cursor: str | None) -> Iterator[Batch]:
        fetched = self._deals(cursor)
        report = self.reports["stage_history"] = ObjectReport("stage_history", fetched.endpoint)
        em = _Emitter("stage_history", report, batch_size, self._stage_names())
        for f in fetched.items:
            if not self._in_scope(f):
                report.skipped += 1
                continue
            deal_id = f.record.get("id")
            entries: list[tuple[str, Any, dict[str, Any]]] = []
            versions = self._history(f, "dealstage")
            if versions:
                entries = [(str(v.get("value")), v.get("timestamp"), v) for v in versions]
            else:  # no history returned: the hs_date_entered_<stage id> properties
                entries = [
                    (k[len("hs_date_entered_"):], v, {"property": k, "value": v})
                    for k, v in f.props.items() if k.startswith("hs_date_entered_") and v
                ]
            for stage_id, when, raw in entries:
                try:
                    key = _epoch_ms(parse_timestamp(when)) if when else "none"
                except ValueProblem:
                    key = str(when)
                values = {
                    "stage_history_id": f"{deal_id}:{stage_id}:{key}",
                    "opportunity_id": deal_id,
                    "stage": self._label(stage_id),
                    "entered_at": when,
                }
                item = Fetched(f.endpoint, {"deal_id": deal_id, "dealstage": raw}, f.deleted)
                if (out := em.add(values, item, {"stage_id": stage_id, **({"source_type": raw["sourceType"]} if raw.get("sourceType") else {})})):
                    yield out
        if (out := em.flush()):
            yield out
        self._advance("stage_history", fetched, cursor)

    @staticmethod
    def _normalise(field_name: str, value: Any) -> str | None:
        if value in (None, ""):
            return None
        if field_name == "close_date":
            try:
                return parse_timestamp(value).date().isoformat()
            except ValueProblem:
                return str(value)
        return str(value)

    def _read_field_history(self, batch_size: int, cursor: str | None) -> Iterator[Batch]:
        fetched = self._deals(cursor)
        report = self.reports["field_history"] = ObjectReport("field_history", fetched.endpoint)
        em = _Emitter("field_history", report, batch_size)
        for f in fetched.items:
            if not self._in_scope(f):
                report.skipped += 1
                continue
            deal_id = f.record.get("id")
            for prop, field_name in (("closedate", "close_date"), ("amount", "amount")):
                previous = None
                for i, v in enumerate(self._history(f, prop)):
                    new = self._normalise(field_name, v.get("value"))
                    if i > 0 and new != previous:  # the first version is the initial value, not a change
                        when = v.get("timestamp")
                        try:
                            key = _epoch_ms(parse_timestamp(when)) if when else "none"
                        except ValueProblem:
                            key = str(when)
                        values = {
                            "field_history_id": f"{deal_id}:{prop}:{key}",
                            "opportunity_id": deal_id,
                            "field_name": field_name,
                            "old_value": previous,
                            "new_value": new,
                            "changed_at": when,
                        }
                        item = Fetched(f.endpoint, {"deal_id": deal_id, prop: v}, f.deleted)
                        if (out := em.add(values, item, {"source_type": v["sourceType"]} if v.get("sourceType") else {})):
                            yield out
                    previous = new
        if (out := em.flush()):
            yield out
        self._advance("field_history", fetched, cursor)

    # -- activities
    def _activities(self, cursor: str | None) -> list[tuple[str, _Fetch]]:
        out = []
        for otype in self.config.activity_objects:
            props = ACTIVITY_PROPERTIES + ([ACTIVITY_SUBJECT_PROPERTY[otype]] if otype in ACTIVITY_SUBJECT_PROPERTY else [])
            out.append((otype, self._fetch(otype, props, cursor, associations=["deals", "companies", "contacts"])))
        return out

    def _advance_many(self, object_name: str, fetches: list[tuple[str, _Fetch]], cursor: str | None) -> None:
        marks = [f.high_water for _, f in fetches if f.high_water is not None]
        self._advance(object_name, _Fetch(high_water=max(marks) if marks else None), cursor)

    def _read_activities(self, batch_size: int, cursor: str | None) -> Iterator[Batch]:
        fetches = self._activities(cursor)
        report = self.reports["activities"] = ObjectReport("activities", ", ".join(f.endpoint for _, f in fetches))
        em = _Emitter("activities", report, batch_size)
        for otype, fetched in fetches:
            subject_prop = ACTIVITY_SUBJECT_PROPERTY.get(otype)
            for f in fetched.items:
                p = f.props
                deals = f.associated("deals")
                values = {
                    "activity_id": f.record.get("id"),
                    "opportunity_id": deals[0] if deals else None,
                    "account_id": (f.associated("companies") or [None])[0],
                    "rep_id": p.get("hubspot_owner_id"),
                    "activity_type": self.config.activity_objects[otype],
                    "occurred_at": p.get("hs_timestamp"),
                    "subject": p.get(subject_prop) if subject_prop else None,
                }
                extra = _extra(p, ["hs_timestamp", "hubspot_owner_id", subject_prop or ""])
                extra["hubspot_object"] = otype
                if len(deals) > 1:
                    extra["associated_deal_ids"] = deals
                if (out := em.add(values, f, extra)):
                    yield out
        if (out := em.flush()):
            yield out
        self._advance_many("activities", fetches, cursor)

    def _read_activity_contacts(self, batch_size: int, cursor: str | None) -> Iterator[Batch]:
        fetches = self._activities(cursor)
        report = self.reports["activity_contacts"] = ObjectReport("activity_contacts", ", ".join(f.endpoint for _, f in fetches))
        em = _Emitter("activity_contacts", report, batch_size)
        for _otype, fetched in fetches:
            for f in fetched.items:
                for contact_id in f.associated("contacts"):
                    item = Fetched(f.endpoint, {"id": f.record.get("id"), "contact": contact_id}, f.deleted)
                    if (out := em.add({"activity_id": f.record.get("id"), "contact_id": contact_id}, item)):
                        yield out
        if (out := em.flush()):
            yield out
        self._advance_many("activity_contacts", fetches, cursor)
