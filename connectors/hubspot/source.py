"""HubSpot CRM (v3 API) as an incremental, read-only source of HubSpot-native tables.

The source only EXTRACTS: it reads the CRM v3 API, flattens each record into rows of the
native tables of connectors/hubspot/tables.py (``raw_hubspot.<table>``: HubSpot's own names,
values typed, unusable rows quarantined) and lands the team's mapping configuration
(connectors/hubspot/config.py) as ``map_*`` tables. What the rows MEAN in the canonical shape
(stage order and closed/won, managers, segments, buying roles, activity types, stage and field
history, deep links) is decided by the dbt models ``stg_hubspot__<object>``.

Tables:

- pipeline_stages: every deal pipeline's stages (one GET, re-read whole each run);
- owners, owner_teams: ``/crm/v3/owners``, active and archived (re-read whole each run);
- deals, deal_property_history: deals with ``propertiesWithHistory`` for dealstage and the
  field-history properties (one row per version), and ``hs_date_entered_<stage id>`` when read;
  deals outside the configured pipelines are skipped;
- companies, contacts;
- engagements, engagement_associations: meetings, calls, emails and tasks (the configured
  objects) with their deal, company and contact associations;
- goal_targets: goals named like a revenue quota (``quota_goal_names``), re-read whole each run; a
  portal whose token lacks the goals scope lands none, and quotas are reported missing;
- map_*: the configuration, rewritten whole on every landing.

Incremental: a table's cursor is the largest ``hs_lastmodifieddate`` (``lastmodifieddate``
for contacts; ``archivedAt`` for archived records) it returned. With a cursor, the next read asks
the search API for records modified since (``cursor - lookback_s``), re-reads those that need
history or associations one GET each (or re-lists when there are many), and lists archived
records archived since, which come back with ``_is_deleted = True``.

Read-only: the HTTP session refuses anything but GET and POST .../search (invariant 1). Rows
that cannot be used go to ``Batch.rejected`` with the reason and the record as read (invariant 8).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.csv_folder import Batch, ObjectReport
from connectors.hubspot.client import DEFAULT_BASE_URL, HubSpotClient, HubSpotError
from connectors.hubspot.config import ACTIVITY_SUBJECT_PROPERTY, HubSpotConfig
from connectors.hubspot.tables import DATASET, TABLES
from connectors.schema import STAGE, Field, RawObject
from connectors.values import PlausibleBounds, ValueProblem, parse_value

log = logging.getLogger(__name__)

SEARCH_CAP = 10_000  # HubSpot's search returns at most 10,000 results per query
HISTORY_PAGE_LIMIT = 50  # listing limit when propertiesWithHistory is requested

DEAL_PROPERTIES = [
    "dealname", "dealstage", "pipeline", "amount", "createdate", "closedate", "hs_is_closed",
    "hs_is_closed_won", "hubspot_owner_id", "hs_next_step", "hs_lastmodifieddate", "closed_lost_reason",
]
COMPANY_PROPERTIES = ["name", "domain", "industry", "numberofemployees", "createdate", "hs_lastmodifieddate"]
CONTACT_PROPERTIES = [
    "firstname", "lastname", "email", "jobtitle", "associatedcompanyid", "createdate", "lastmodifieddate",
]
ACTIVITY_PROPERTIES = ["hs_timestamp", "hubspot_owner_id", "hs_lastmodifieddate"]
GOAL_PROPERTIES = [
    "hs_goal_name", "hs_target_amount", "hs_start_datetime", "hs_end_datetime", "hs_assignee_user_id",
    "hs_assignee_team_id", "hubspot_owner_id", "hs_lastmodifieddate",
]
GOAL_EXTRA_PROPERTIES = ["hs_group_correlation_uuid", "hs_goal_target_group_id"]  # the goal and schedule; kept in _extra
GOALS_ENDPOINT = "/crm/v3/objects/goal_targets"
# What unreadable goals cost (the landing report's note, the run summary, the Dagster log).
GOALS_UNAVAILABLE = (
    "HubSpot goals are not readable ({why}): no quotas from HubSpot, so low_coverage and attainment_below_midpoint "
    "are not applicable and scorecards show no attainment or coverage, unless a quotas file is set "
    "(SALES_SUPERVISOR_QUOTAS_FILE); to read them, give the private app the crm.objects.goals.read scope"
)
ASSOCIATED = ("deals", "companies", "contacts")  # an engagement's associations that are landed
DATE_ENTERED = "hs_date_entered_"
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


def parse_field(
    f: Field, value: Any, stages: Mapping[str, str] | None = None, bounds: PlausibleBounds | None = None
) -> Any:
    return parse_value(
        f, value, parse_date=lambda v: parse_timestamp(v).date(), parse_timestamp=parse_timestamp, stages=stages,
        bounds=bounds,
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

    def associations(self, to: str) -> list[dict[str, Any]]:
        """The record's ``to`` associations, once per id (the first entry of each), in HubSpot's order."""
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for a in ((self.record.get("associations") or {}).get(to) or {}).get("results") or []:
            if a.get("id") in (None, "") or str(a.get("id")) in seen:
                continue
            seen.add(str(a.get("id")))
            out.append(a)
        return out

    def primary_associated(self, to: str, primary_type: str) -> str | None:
        assoc = self.associations(to)
        for a in assoc:
            if a.get("type") == primary_type:
                return str(a.get("id"))
        return str(assoc[0]["id"]) if assoc else None


@dataclass
class _Fetch:
    items: list[Fetched] = field(default_factory=list)
    high_water: dt.datetime | None = None
    skipped: int = 0
    endpoint: str = ""


class _Emitter:
    """Types, validates and batches rows of one native table; rejects what cannot be used."""

    def __init__(
        self, table: RawObject, report: ObjectReport, batch_size: int, stages: Mapping[str, str] | None = None,
        bounds: PlausibleBounds | None = None,
    ):
        self.table = table
        self.bounds = bounds
        self.report = report
        self.batch_size = batch_size
        self.stages = stages
        self.batch = Batch()
        self.row_number = 0

    def add(self, values: Mapping[str, Any], source: Fetched, extra: Mapping[str, Any] | None = None) -> Batch | None:
        self.row_number += 1
        typed: dict[str, Any] = {}
        problems: list[tuple[str, str]] = []
        for f in self.table.fields:
            try:
                typed[f.name] = parse_field(f, values.get(f.name), self.stages if f.type == STAGE else None, self.bounds)
            except ValueProblem as exc:
                problems.append((f.name, str(exc)))
        if problems:
            self.report.rejected += 1
            self.batch.rejected.append(
                {
                    "object": self.table.name,
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

    def emit(self, items: Iterable[tuple[Mapping[str, Any], Fetched, Mapping[str, Any] | None]]) -> Iterator[Batch]:
        for values, source, extra in items:
            if (out := self.add(values, source, extra)):
                yield out
        if (out := self.flush()):
            yield out


def _extra(props: Mapping[str, Any], used: Iterable[str]) -> dict[str, Any]:
    used = set(used) | {"hs_object_id"}
    return {k: v for k, v in props.items() if k not in used and v not in (None, "")}


def _record_times(f: Fetched) -> dict[str, Any]:
    return {
        "created_at": f.record.get("createdAt"),
        "updated_at": f.record.get("updatedAt"),
        "archived_at": f.record.get("archivedAt"),
    }


def _version_key(when: Any) -> str:
    try:
        return str(_epoch_ms(parse_timestamp(when))) if when not in (None, "") else "none"
    except ValueProblem:
        return str(when)


# --------------------------------------------------------------------------- the source


class HubSpotSource:
    """A HubSpot portal, read through the CRM v3 API with a private-app or OAuth token."""

    incremental = True
    dataset = DATASET
    tables = TABLES

    def __init__(self, token: str, base_url: str = DEFAULT_BASE_URL, config: HubSpotConfig | None = None):
        self.config = config or HubSpotConfig()
        self.bounds = self.config.plausibility.bounds()
        self.max_quarantine_share = self.config.plausibility.max_quarantine_share
        self.client = HubSpotClient(token, base_url, self.config.retry, read_only=True)
        self.reports: dict[str, ObjectReport] = {}
        self.cursors: dict[str, str] = {}
        self._pipelines: list[dict[str, Any]] | None = None
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
    def read(self, table_name: str, batch_size: int = 1000, cursor: str | None = None) -> Iterator[Batch]:
        """Typed rows (and rejections) of one native table; for the incremental tables, only the
        records changed since ``cursor`` (all when None). Snapshot tables ignore the cursor."""
        if table_name not in TABLES:
            raise KeyError(f"unknown HubSpot table {table_name!r} (known: {', '.join(TABLES)})")
        table = TABLES[table_name]
        if table_name.startswith("map_"):
            yield from self._read_map(table, batch_size)
            return
        yield from getattr(self, f"_read_{table_name}")(table, batch_size, None if table.snapshot else cursor)

    def _emitter(self, table: RawObject, source_file: str, batch_size: int, stages: Mapping[str, str] | None = None) -> _Emitter:
        report = self.reports[table.name] = ObjectReport(table.name, source_file)
        return _Emitter(table, report, batch_size, stages, self.bounds)

    # -- pipelines and stages
    def _load_pipelines(self) -> list[dict[str, Any]]:
        """Every deal pipeline (all of them: history in another pipeline still resolves)."""
        if self._pipelines is None:
            pipelines: list[dict[str, Any]] = []
            for page in self.client.pages("/crm/v3/pipelines/deals", paged=False):
                pipelines.extend(page)
            self._pipelines = pipelines
        return self._pipelines

    def _selected_pipeline_ids(self) -> set[str] | None:
        """The configured pipelines' ids (None: all); deals in other pipelines are not landed."""
        wanted = self.config.pipelines
        if wanted is None:
            return None
        return {str(p.get("id")) for p in self._load_pipelines() if str(p.get("id")) in wanted or p.get("label") in wanted}

    def _deal_stage_lookup(self) -> dict[str, str]:
        """Stage ids a deal may be in: any pipeline's (with a stage override, only the stages it names)."""
        names = {s.name for s in self.config.stages} if self.config.stages is not None else None
        lookup: dict[str, str] = {}
        for p in self._load_pipelines():
            for s in p.get("stages") or []:
                sid = str(s.get("id"))
                if names is None or str(s.get("label") or sid) in names:
                    lookup[sid.lower()] = sid
        return lookup

    def _read_pipeline_stages(self, table: RawObject, batch_size: int, cursor: str | None) -> Iterator[Batch]:
        endpoint = "/crm/v3/pipelines/deals"
        pipelines = self._load_pipelines()
        em = self._emitter(table, endpoint, batch_size)

        def rows():
            for p in pipelines:
                for s in p.get("stages") or []:
                    meta = s.get("metadata") or {}
                    values = {
                        "pipeline_id": p.get("id"), "pipeline_label": p.get("label"),
                        "pipeline_display_order": p.get("displayOrder"), "pipeline_archived": p.get("archived"),
                        "stage_id": s.get("id"), "label": s.get("label"), "display_order": s.get("displayOrder"),
                        "archived": s.get("archived"), "is_closed": meta.get("isClosed"),
                        "probability": meta.get("probability"),
                    }
                    extra = {k: v for k, v in s.items() if k not in ("id", "label", "displayOrder", "archived", "metadata")}
                    extra.update({f"metadata_{k}": v for k, v in meta.items() if k not in ("isClosed", "probability")})
                    yield values, Fetched(endpoint, {"pipeline": p.get("id"), "stage": s}), extra

        yield from em.emit(rows())

    # -- owners
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

    def _read_owners(self, table: RawObject, batch_size: int, cursor: str | None) -> Iterator[Batch]:
        owners = self._load_owners()
        em = self._emitter(table, "/crm/v3/owners", batch_size)
        used = {"id", "email", "firstName", "lastName", "userId", "archived", "createdAt", "updatedAt", "teams"}

        def rows():
            for o in owners:
                rec = o.record
                values = {
                    "owner_id": rec.get("id"), "email": rec.get("email"), "first_name": rec.get("firstName"),
                    "last_name": rec.get("lastName"), "user_id": rec.get("userId"),
                    # a deactivated (archived) owner still owns historical deals: kept, not deleted
                    "archived": bool(rec.get("archived") or o.endpoint.endswith("archived=true")),
                    "created_at": rec.get("createdAt"), "updated_at": rec.get("updatedAt"),
                }
                yield values, o, {k: v for k, v in rec.items() if k not in used and v not in (None, "", [])}

        yield from em.emit(rows())

    def _read_owner_teams(self, table: RawObject, batch_size: int, cursor: str | None) -> Iterator[Batch]:
        owners = self._load_owners()
        em = self._emitter(table, "/crm/v3/owners", batch_size)

        def rows():
            for o in owners:
                for i, t in enumerate(o.record.get("teams") or [], 1):
                    values = {"owner_id": o.record.get("id"), "team_id": t.get("id"), "team_name": t.get("name"),
                              "is_primary": t.get("primary"), "position": i}
                    extra = {k: v for k, v in t.items() if k not in ("id", "name", "primary")}
                    yield values, Fetched(o.endpoint, {"owner_id": o.record.get("id"), "team": t}), extra

        yield from em.emit(rows())

    # -- companies and contacts
    def _read_companies(self, table: RawObject, batch_size: int, cursor: str | None) -> Iterator[Batch]:
        cfg = self.config
        props = COMPANY_PROPERTIES + [p for p in (cfg.account_segment_property, cfg.account_tags_property) if p]
        fetched = self._fetch("companies", props, cursor)
        em = self._emitter(table, fetched.endpoint, batch_size)

        def rows():
            for f in fetched.items:
                p = f.props
                values = {"company_id": f.record.get("id"), **{k: p.get(k) for k in COMPANY_PROPERTIES}, **_record_times(f)}
                yield values, f, _extra(p, COMPANY_PROPERTIES)

        yield from em.emit(rows())
        self._advance(table.name, fetched, cursor)

    def _read_contacts(self, table: RawObject, batch_size: int, cursor: str | None) -> Iterator[Batch]:
        cfg = self.config
        declared = CONTACT_PROPERTIES + ["hs_buying_role"]
        fetched = self._fetch("contacts", list(dict.fromkeys(declared + [cfg.buying_role_property])), cursor)
        em = self._emitter(table, fetched.endpoint, batch_size)

        def rows():
            for f in fetched.items:
                p = f.props
                values = {"contact_id": f.record.get("id"), **{k: p.get(k) for k in declared}, **_record_times(f)}
                yield values, f, _extra(p, declared)

        yield from em.emit(rows())
        self._advance(table.name, fetched, cursor)

    # -- deals
    def _deal_history_properties(self) -> list[str]:
        return list(dict.fromkeys(["dealstage", *self.config.field_history]))

    def _deals(self, cursor: str | None) -> _Fetch:
        return self._fetch("deals", DEAL_PROPERTIES, cursor, history=self._deal_history_properties(), associations=["companies"])

    def _in_scope(self, f: Fetched, selected: set[str] | None) -> bool:
        return selected is None or str(f.props.get("pipeline")) in selected

    def _read_deals(self, table: RawObject, batch_size: int, cursor: str | None) -> Iterator[Batch]:
        fetched = self._deals(cursor)
        selected = self._selected_pipeline_ids()
        em = self._emitter(table, fetched.endpoint, batch_size, self._deal_stage_lookup())

        def rows():
            for f in fetched.items:
                if not self._in_scope(f, selected):
                    em.report.skipped += 1
                    continue
                p = f.props
                values = {
                    "deal_id": f.record.get("id"), **{k: p.get(k) for k in DEAL_PROPERTIES},
                    "primary_company_id": f.primary_associated("companies", "deal_to_company"), **_record_times(f),
                }
                extra = _extra(p, DEAL_PROPERTIES)
                companies = [str(a["id"]) for a in f.associations("companies")]
                if len(companies) > 1:
                    extra["associated_company_ids"] = companies
                yield values, f, extra

        yield from em.emit(rows())
        self._advance(table.name, fetched, cursor)

    @staticmethod
    def _history(f: Fetched, prop: str) -> list[dict[str, Any]]:
        """A property's versions, oldest first."""
        versions = list((f.record.get("propertiesWithHistory") or {}).get(prop) or [])

        def when(v: dict[str, Any]) -> dt.datetime:
            try:
                return parse_timestamp(v["timestamp"]) if v.get("timestamp") else dt.datetime.min
            except ValueProblem:
                return dt.datetime.min

        return sorted(versions, key=when)

    def _read_deal_property_history(self, table: RawObject, batch_size: int, cursor: str | None) -> Iterator[Batch]:
        fetched = self._deals(cursor)
        selected = self._selected_pipeline_ids()
        em = self._emitter(table, fetched.endpoint, batch_size)

        def rows():
            for f in fetched.items:
                if not self._in_scope(f, selected):
                    em.report.skipped += 1
                    continue
                deal_id = f.record.get("id")
                for prop in self._deal_history_properties():
                    for v in self._history(f, prop):
                        when, value = v.get("timestamp"), v.get("value")
                        values = {
                            "version_id": f"{deal_id}:{prop}:{_version_key(when)}:{'' if value is None else value}",
                            "deal_id": deal_id, "property": prop, "value": value, "timestamp": when,
                            "source_type": v.get("sourceType"),
                        }
                        extra = {k: x for k, x in v.items() if k not in ("value", "timestamp", "sourceType") and x not in (None, "")}
                        yield values, Fetched(f.endpoint, {"deal_id": deal_id, prop: v}, f.deleted), extra
                # hs_date_entered_<stage id> (when read through extra_properties): the stage-history fallback
                for k, when in f.props.items():
                    if k.startswith(DATE_ENTERED) and when not in (None, ""):
                        values = {"version_id": f"{deal_id}:{k}:{_version_key(when)}:{when}", "deal_id": deal_id,
                                  "property": k, "value": when, "timestamp": when}
                        yield values, Fetched(f.endpoint, {"deal_id": deal_id, k: when}, f.deleted), None

        yield from em.emit(rows())
        self._advance(table.name, fetched, cursor)

    # -- engagements
    def _engagements(self, cursor: str | None) -> list[tuple[str, _Fetch]]:
        out = []
        for otype in self.config.activity_objects:
            props = ACTIVITY_PROPERTIES + ([ACTIVITY_SUBJECT_PROPERTY[otype]] if otype in ACTIVITY_SUBJECT_PROPERTY else [])
            if otype == "tasks":
                props = props + ["hs_task_status"]  # a task not COMPLETED is planned, not past activity
            out.append((otype, self._fetch(otype, props, cursor, associations=list(ASSOCIATED))))
        return out

    def _advance_many(self, table_name: str, fetches: list[tuple[str, _Fetch]], cursor: str | None) -> None:
        marks = [f.high_water for _, f in fetches if f.high_water is not None]
        self._advance(table_name, _Fetch(high_water=max(marks) if marks else None), cursor)

    def _read_engagements(self, table: RawObject, batch_size: int, cursor: str | None) -> Iterator[Batch]:
        fetches = self._engagements(cursor)
        em = self._emitter(table, ", ".join(f.endpoint for _, f in fetches), batch_size)
        declared = [f.name for f in table.fields]

        def rows():
            for otype, fetched in fetches:
                for f in fetched.items:
                    p = f.props
                    deals = [str(a["id"]) for a in f.associations("deals")]
                    companies = [str(a["id"]) for a in f.associations("companies")]
                    values = {"engagement_id": f.record.get("id"), "object_type": otype,
                              **{k: p.get(k) for k in declared if k in p}, **_record_times(f),
                              "primary_deal_id": deals[0] if deals else None,
                              "primary_company_id": companies[0] if companies else None}
                    extra = _extra(p, declared)
                    if len(deals) > 1:
                        extra["associated_deal_ids"] = deals
                    yield values, f, extra

        yield from em.emit(rows())
        self._advance_many(table.name, fetches, cursor)

    def _read_engagement_associations(self, table: RawObject, batch_size: int, cursor: str | None) -> Iterator[Batch]:
        fetches = self._engagements(cursor)
        em = self._emitter(table, ", ".join(f.endpoint for _, f in fetches), batch_size)

        def rows():
            for _otype, fetched in fetches:
                for f in fetched.items:
                    for to in ASSOCIATED:
                        for i, a in enumerate(f.associations(to), 1):
                            values = {"engagement_id": f.record.get("id"), "to_type": to, "to_id": a.get("id"),
                                      "association_type": a.get("type"), "position": i}
                            extra = {k: v for k, v in a.items() if k not in ("id", "type")}
                            yield values, Fetched(f.endpoint, {"id": f.record.get("id"), to: a}, f.deleted), extra

        yield from em.emit(rows())
        self._advance_many(table.name, fetches, cursor)

    # -- goals (quotas)
    def _read_goal_targets(self, table: RawObject, batch_size: int, cursor: str | None) -> Iterator[Batch]:
        """Goal targets named like a revenue quota. A token without the goals scope (403) or a portal
        without goals (404) lands none: quotas become "not applicable", the landing goes on."""
        em = self._emitter(table, GOALS_ENDPOINT, batch_size)
        patterns = [p.strip().lower() for p in self.config.quota_goal_names if p.strip()]
        if not patterns:
            em.report.present = False
            em.report.notes.append("quota_goal_names is empty: HubSpot goals not read, quotas only from a quotas file")
            return
        params = {"limit": self.config.page_size, "properties": ",".join(GOAL_PROPERTIES + GOAL_EXTRA_PROPERTIES),
                  "archived": "false"}
        try:  # goals are few: read them all before emitting, so a refusal leaves nothing half-landed
            records = [rec for page in self.client.pages(GOALS_ENDPOINT, params) for rec in page]
        except HubSpotError as exc:
            if exc.status not in (403, 404):
                raise
            em.report.present = False
            em.report.notes.append(GOALS_UNAVAILABLE.format(why=str(exc)))
            log.warning("HubSpot: %s", em.report.notes[-1])
            return

        def rows():
            for rec in records:
                f = Fetched(GOALS_ENDPOINT, rec)
                name = str(f.props.get("hs_goal_name") or "").lower()
                if not any(p in name for p in patterns):
                    em.report.skipped += 1
                    continue
                values = {"goal_target_id": rec.get("id"), **{k: f.props.get(k) for k in GOAL_PROPERTIES}, **_record_times(f)}
                yield values, f, _extra(f.props, GOAL_PROPERTIES)

        yield from em.emit(rows())
        if em.report.skipped:
            em.report.notes.append(f"{em.report.skipped} goal target(s) skipped: not named like a revenue quota "
                                   f"(quota_goal_names: {', '.join(patterns)})")

    # -- the mapping configuration: map_* tables
    def _map_rows(self) -> dict[str, tuple[str, Callable[[], list[dict[str, Any]]]]]:
        """map table -> (the config key it comes from, its rows)."""
        cfg = self.config
        settings = {
            "portal_id": cfg.portal_id,
            "deal_url_template": cfg.deal_url_template,
            "default_rep_segment": cfg.default_rep_segment,
            "account_segment_property": cfg.account_segment_property,
            "account_tags_property": cfg.account_tags_property,
            "buying_role_property": cfg.buying_role_property,
            "fiscal_year_start_month": str(cfg.fiscal_year_start_month),
        }
        return {
            "map_stages": ("stages", lambda: [
                {"stage": s.name, "stage_order": s.order, "is_closed": s.closed, "is_won": s.won} for s in cfg.stages or []]),
            "map_pipelines": ("pipelines", lambda: [{"pipeline": p} for p in cfg.pipelines or []]),
            "map_managers": ("managers", lambda: [{"owner": m} for m in cfg.managers]),
            "map_teams": ("teams", lambda: [
                {"team": k, "manager": t.manager, "segment": t.segment} for k, t in cfg.teams.items()]),
            "map_owners": ("owners", lambda: [
                {"owner": k, "manager": o.manager, "segment": o.segment, "slack_user_id": o.slack_user_id,
                 "hired_on": o.hired_on} for k, o in cfg.owners.items()]),
            "map_settings": ("settings", lambda: [{"setting": k, "value": v} for k, v in settings.items()]),
            "map_account_segments": ("account_segment_values", lambda: [
                {"source_value": k, "segment": v} for k, v in cfg.account_segment_values.items()]),
            "map_segment_bands": ("employee_bands", lambda: [
                {"band_order": i, "segment": b.segment, "below": b.below} for i, b in enumerate(cfg.employee_bands, 1)]),
            "map_buying_roles": ("buying_roles", lambda: [
                {"source_value": k, "buying_role": v} for k, v in cfg.buying_roles.items()]),
            "map_buying_role_priority": ("buying_role_priority", lambda: [
                {"buying_role": r, "priority": i} for i, r in enumerate(dict.fromkeys(cfg.buying_role_priority), 1)]),
            "map_activity_types": ("activity_objects", lambda: [
                {"object_type": k, "activity_type": v} for k, v in cfg.activity_objects.items()]),
            "map_field_history": ("field_history", lambda: [
                {"property": k, "field_name": v} for k, v in cfg.field_history.items()]),
        }

    def _read_map(self, table: RawObject, batch_size: int) -> Iterator[Batch]:
        key, rows = self._map_rows()[table.name]
        endpoint = f"config:{key}"
        em = self._emitter(table, endpoint, batch_size)
        yield from em.emit((row, Fetched(endpoint, row), None) for row in rows())

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

    def _advance(self, table_name: str, fetched: _Fetch, cursor: str | None) -> None:
        if fetched.high_water is not None:
            new = iso_cursor(fetched.high_water)
            self.cursors[table_name] = max(new, cursor) if cursor else new
        elif cursor:
            self.cursors[table_name] = cursor

