"""Salesforce as an incremental, read-only CRM source (REST API, SOQL) landing native tables.

The source extracts; dbt maps. Each native table (``connectors/salesforce/tables.py``, schema
``raw_salesforce``) is one sObject read with SOQL, its API fields as snake_case columns
(``StageName`` -> ``stage_name``), typed, with every other field of the record in ``_extra``
(schema drift loses nothing). The mapping into the canonical shape (stage order, segments,
buying roles, activity types, managers, history rows, source_url, ...) is done by the dbt
models ``stg_salesforce__<object>``, which join the ``map_*`` tables this source emits from
:class:`SalesforceConfig`:

==========================  ==================================================================
opportunity_stage           OpportunityStage, every stage (snapshot; validates stage names)
user                        User matching ``rep_filter`` (segment_value, slack_user_id from the
                            configured fields)
manager                     User whose Id is some rep's ManagerId (snapshot)
account                     Account (segment_value, tags_value from the configured fields)
contact                     Contact
opportunity_contact_role    OpportunityContactRole
opportunity                 Opportunity (stage_name validated against the org's stages)
opportunity_history         OpportunityHistory
opportunity_field_history   OpportunityFieldHistory, the fields of ``field_history_fields``
forecasting_quota           ForecastingQuota (snapshot; not readable = quotas not applicable)
task, event                 Task / Event whose What is one of ``activity_what_types``
task_relation,              TaskRelation / EventRelation (IsWhat = false) of those activities
event_relation
map_*                       the mapping configuration (snapshot tables)
==========================  ==================================================================

Every sObject that can be deleted is read through ``queryAll`` once a cursor exists (deleted
records come back with ``IsDeleted = true`` and land with ``_is_deleted``). Incremental: a
table's cursor is JSON, ``{"<sObject>": "<max SystemModstamp>", "_shape": "<digest>"}``
(CreatedDate for the immutable OpportunityFieldHistory); the next run adds ``WHERE SystemModstamp >
<cursor>``. ``_shape`` digests what the config makes the read select and filter (configured org
fields, rep_filter, field_history_fields, activity_what_types): when it changes, the table is read
whole again, so e.g. a new ``account_segment_field`` reaches every account. The first run (no
cursor) skips the recycle bin (``IsDeleted = false``). Snapshot tables are read whole and carry no
cursor. The source never writes: it sends GET requests only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from connectors.csv_folder import Batch, ObjectReport
from connectors.salesforce.client import (
    DEFAULT_API_VERSION,
    SalesforceApiError,
    SalesforceAuthError,
    SalesforceClient,
    SalesforceLimitExceeded,
    client_credentials_token,
)
from connectors.salesforce.config import SalesforceConfig
from connectors.salesforce.tables import DATASET, TABLES
from connectors.schema import STAGE, Field
from connectors.values import PlausibleBounds, ValueProblem, parse_value

ENV_INSTANCE_URL = "SALESFORCE_INSTANCE_URL"
ENV_ACCESS_TOKEN = "SALESFORCE_ACCESS_TOKEN"
ENV_CLIENT_ID = "SALESFORCE_CLIENT_ID"
ENV_CLIENT_SECRET = "SALESFORCE_CLIENT_SECRET"
ENV_API_VERSION = "SALESFORCE_API_VERSION"

# sObjects without IsDeleted (never soft-deleted): plain /query, no recycle-bin filter.
_NOT_DELETABLE = {"User", "OpportunityStage", "ForecastingQuota"}
_SHAPE = "_shape"  # cursor key: a digest of the config that shapes the read (fields, filters)
_ID_CHUNK = 200  # ids per "Id IN (...)" query: keeps the GET URL well under Salesforce's limit

log = logging.getLogger(__name__)

# What an unreadable ForecastingQuota costs (the landing report's note, the run summary, the Dagster log).
QUOTAS_UNAVAILABLE = (
    "ForecastingQuota is not readable ({why}): no quotas from Salesforce, so low_coverage and "
    "attainment_below_midpoint are not applicable and scorecards show no attainment or coverage, unless a quotas "
    "file is set (SALES_SUPERVISOR_QUOTAS_FILE); to read them, enable Collaborative Forecasts and give the "
    "integration user View All Forecasts (or Allow Forecasting)"
)
# Answers that mean "this org does not let us read the object" (not an outage, not a spent allocation).
_UNAVAILABLE_CODES = {"INVALID_TYPE", "NOT_FOUND", "INSUFFICIENT_ACCESS", "INSUFFICIENT_ACCESS_OR_READONLY",
                      "FUNCTIONALITY_NOT_ENABLED"}


def quotas_unavailable(exc: SalesforceApiError) -> bool:
    """A missing object or missing permission (INVALID_TYPE, 404, 403), not a failure of the landing.
    A 401 (bad token) and REQUEST_LIMIT_EXCEEDED still fail it."""
    if isinstance(exc, (SalesforceAuthError, SalesforceLimitExceeded)):
        return False
    return exc.status in (403, 404) or exc.error_code in _UNAVAILABLE_CODES


@dataclass(frozen=True)
class Stream:
    """One SOQL read of one sObject."""

    sobject: str
    fields: tuple[str, ...]  # the fields the mapping needs (missing ones in the org are left out)
    where: tuple[str, ...] = ()
    cursor_field: str = "SystemModstamp"
    narrow: bool = False  # select only ``fields`` even when select_all_fields is on

    @property
    def deletable(self) -> bool:
        return self.sobject not in _NOT_DELETABLE


@dataclass
class _Collector:
    """Rows and rejections of one native table, in batches, with its report and cursor."""

    table: str
    batch_size: int
    report: ObjectReport
    batch: Batch = field(default_factory=Batch)
    row_number: int = 0

    cursor: dict[str, dt.datetime] = field(default_factory=dict)

    def advance(self, sobject: str, value: Any) -> None:
        if not value:
            return
        try:
            stamp = parse_sf_datetime(value)
        except ValueProblem:
            return
        current = self.cursor.get(sobject)
        if current is None or stamp > current:
            self.cursor[sobject] = stamp
        self.cursor.pop("*", None)

    def full(self) -> bool:
        return len(self.batch.rows) + len(self.batch.rejected) >= self.batch_size

    def take(self) -> Batch:
        out, self.batch = self.batch, Batch()
        return out


def soql_quote(value: str) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def soql_datetime(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_sf_date(value: Any) -> dt.date:
    if not isinstance(value, str):
        raise ValueProblem(f"unparseable date: {value!r}")
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        raise ValueProblem(f"unparseable date: {value!r} (expected YYYY-MM-DD)") from None


def parse_sf_datetime(value: Any) -> dt.datetime:
    """Salesforce datetimes (``2026-01-05T10:00:00.000+0000``) and dates as naive UTC."""
    if not isinstance(value, str) or not value.strip():
        raise ValueProblem(f"unparseable timestamp: {value!r}")
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueProblem(f"unparseable timestamp: {value!r} (expected ISO 8601, e.g. 2026-01-05T10:00:00.000+0000)") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return parsed


def _strip_attributes(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_attributes(v) for k, v in value.items() if k != "attributes"}
    if isinstance(value, list):
        return [_strip_attributes(v) for v in value]
    return value


def _dotted(record: dict[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


class SalesforceSource:
    """A Salesforce org, read incrementally through the REST API. Read-only: GET requests only."""

    incremental = True
    dataset = DATASET
    tables = TABLES

    def __init__(
        self,
        instance_url: str,
        access_token: str,
        api_version: str = DEFAULT_API_VERSION,
        config: SalesforceConfig | None = None,
    ):
        self.config = config or SalesforceConfig()
        self.bounds = self.config.plausibility.bounds()
        self.max_quarantine_share = self.config.plausibility.max_quarantine_share
        self.client = SalesforceClient(instance_url, access_token, api_version, self.config)
        self.instance_url = self.client.instance_url
        self.reports: dict[str, ObjectReport] = {}
        self.cursors: dict[str, str] = {}
        self._describes: dict[str, set[str] | None] = {}
        self._stage_records: list[dict[str, Any]] | None = None

    def __repr__(self) -> str:
        return f"SalesforceSource({self.instance_url!r}, token=***)"

    @property
    def source_system(self) -> str:
        return self.config.source_system

    @classmethod
    def from_env(cls, config: SalesforceConfig | None = None, env: dict[str, str] | None = None) -> SalesforceSource:
        """``SALESFORCE_INSTANCE_URL`` + ``SALESFORCE_ACCESS_TOKEN``, or + ``SALESFORCE_CLIENT_ID`` /
        ``SALESFORCE_CLIENT_SECRET`` (client-credentials flow); ``SALESFORCE_API_VERSION`` and
        ``SALESFORCE_CONFIG`` (a YAML file of :class:`SalesforceConfig`) optional."""
        env = os.environ if env is None else env
        if config is None and (env.get("SALESFORCE_CONFIG") or "").strip():
            from connectors.mapping import load_yaml_model

            config = load_yaml_model(env["SALESFORCE_CONFIG"].strip(), SalesforceConfig, "Salesforce config file")
        instance = (env.get(ENV_INSTANCE_URL) or "").strip()
        if not instance:
            raise ValueError(f"{ENV_INSTANCE_URL} is not set (e.g. https://yourdomain.my.salesforce.com)")
        version = env.get(ENV_API_VERSION) or DEFAULT_API_VERSION
        token = (env.get(ENV_ACCESS_TOKEN) or "").strip()
        if not token:
            client_id, secret = env.get(ENV_CLIENT_ID), env.get(ENV_CLIENT_SECRET)
            if not (client_id and secret):
                raise ValueError(
                    f"set {ENV_ACCESS_TOKEN}, or {ENV_CLIENT_ID} and {ENV_CLIENT_SECRET} for the client-credentials flow"
                )
            instance, token = client_credentials_token(instance, client_id, secret, config)
        return cls(instance, token, version, config)

    # -- the CrmSource protocol ---------------------------------------------------------------
    def read(self, table_name: str, batch_size: int = 2000, cursor: str | None = None) -> Iterator[Batch]:
        """Typed rows (and rejections) of one native table changed since ``cursor`` (snapshot
        tables: all of it). An unknown table name is a KeyError, raised at once."""
        obj = TABLES[table_name]
        reader = self._reader(table_name)
        since = {} if obj.snapshot else self._decode_cursor(cursor)
        shape = since.pop(_SHAPE, None)
        if shape is not None and shape != self._shape(table_name):
            since = {}  # the config changed what is read (fields, filters): read it all again
        return self._read(table_name, reader, since, batch_size)

    def _read(
        self, table: str, reader: Callable[[_Collector, dict[str, dt.datetime]], Iterator[Batch]],
        since: dict[str, dt.datetime], batch_size: int,
    ) -> Iterator[Batch]:
        # per-read state: dlt may interleave the generators of several tables
        col = _Collector(table, batch_size, ObjectReport(table, None), cursor=dict(since))
        self.reports[table] = col.report
        yield from reader(col, since)
        if col.batch.rows or col.batch.rejected:
            yield col.take()
        if col.cursor and not TABLES[table].snapshot:
            stamps = {k: soql_datetime(v) for k, v in col.cursor.items() if isinstance(v, dt.datetime)}
            self.cursors[table] = json.dumps({**stamps, _SHAPE: self._shape(table)}, sort_keys=True)

    def _shape(self, table: str) -> str:
        """What the config makes a read of ``table`` select and filter (stored with its cursor)."""
        stream = self.stream(table)
        shape: list[Any] = [list(stream.fields), list(stream.where)]
        if table in ("task_relation", "event_relation"):
            shape.append(list(self.config.activity_what_types))
        return hashlib.sha1(json.dumps(shape).encode()).hexdigest()[:12]

    def _reader(self, table: str) -> Callable[[_Collector, dict[str, dt.datetime]], Iterator[Batch]]:
        special: dict[str, Callable[[_Collector, dict[str, dt.datetime]], Iterator[Batch]]] = {
            "opportunity_stage": self._read_stages,
            "manager": self._read_managers,
            "task_relation": self._read_relations,
            "event_relation": self._read_relations,
            "forecasting_quota": self._read_quotas,
        }
        if table in special:
            return special[table]
        if table.startswith("map_"):
            return self._read_map
        return self._read_sobject

    # -- cursors ----------------------------------------------------------------------------
    @staticmethod
    def _decode_cursor(cursor: str | None) -> dict[str, dt.datetime]:
        if not cursor:
            return {}
        try:
            raw = json.loads(cursor)
        except ValueError:
            raw = None
        if isinstance(raw, dict):
            return {str(k): (str(v) if k == _SHAPE else parse_sf_datetime(v)) for k, v in raw.items() if v}  # type: ignore[misc]
        # a bare timestamp applies to every sObject of the object
        return {"*": parse_sf_datetime(cursor)}

    @staticmethod
    def _since_for(since: dict[str, dt.datetime], sobject: str) -> dt.datetime | None:
        return since.get(sobject) or since.get("*")

    # -- SOQL -------------------------------------------------------------------------------
    def _describe(self, sobject: str) -> set[str] | None:
        if sobject not in self._describes:
            self._describes[sobject] = set(self.client.describe_fields(sobject)) if self.config.select_all_fields else None
        return self._describes[sobject]

    def _select(self, stream: Stream) -> list[str]:
        wanted = list(dict.fromkeys([*stream.fields, "Id", stream.cursor_field, *(["IsDeleted"] if stream.deletable else [])]))
        wanted += [f for f in self.config.extra_fields.get(stream.sobject, []) if f not in wanted]
        described = self._describe(stream.sobject) if not stream.narrow else None
        if described is None:
            return wanted
        # fields the org lacks (or hides from the integration user) are left out, not an error
        kept = [f for f in wanted if "." in f or f in described]
        return kept + sorted(f for f in described if f not in kept)

    def _soql(self, stream: Stream, start: dt.datetime | None, extra_where: Iterable[str] = ()) -> str:
        conditions = [*stream.where, *extra_where]
        if start is not None:
            start = start - dt.timedelta(seconds=self.config.lookback_seconds)
            conditions.append(f"{stream.cursor_field} > {soql_datetime(start)}")
        soql = f"SELECT {', '.join(self._select(stream))} FROM {stream.sobject}"
        return soql + (" WHERE " + " AND ".join(conditions) if conditions else "")

    def _records(
        self, col: _Collector | None, stream: Stream, since: dict[str, dt.datetime] | None, extra_where: Iterable[str] = ()
    ) -> Iterator[dict[str, Any]]:
        """Records of a stream changed since its cursor, advancing ``col``'s cursor.

        With a cursor, ``queryAll`` (deletions included, flagged IsDeleted); without one (the
        first run, or ``since=None`` for lookups by id), ``query``, which leaves out the recycle bin.
        """
        start = self._since_for(since, stream.sobject) if since else None
        soql = self._soql(stream, start, extra_where)
        for page in self.client.query(soql, include_deleted=stream.deletable and start is not None):
            for record in page:
                if col is not None:
                    col.advance(stream.sobject, record.get(stream.cursor_field))
                yield record

    def _by_ids(self, stream: Stream, ids: Iterable[str], id_field: str = "Id") -> Iterator[dict[str, Any]]:
        """Current (not deleted) records whose ``id_field`` is one of ``ids``, in chunks."""
        ids = sorted(set(ids))
        for i in range(0, len(ids), _ID_CHUNK):
            chunk = ", ".join(soql_quote(x) for x in ids[i : i + _ID_CHUNK])
            yield from self._records(None, stream, None, [f"{id_field} IN ({chunk})"])

    # -- typing and rejection ------------------------------------------------------------------
    def _emit(
        self,
        col: _Collector,
        source_file: str,
        record: dict[str, Any],
        values: dict[str, Any],
        used: Iterable[str],
        stage_lookup: dict[str, str] | None = None,
    ) -> None:
        """Type ``values`` (native column -> raw value) into a row, or reject the record with reasons.

        ``used``: the record's fields that ``values`` carries; every other field goes to ``_extra``."""
        obj = TABLES[col.table]
        col.row_number += 1
        typed: dict[str, Any] = {}
        problems: list[tuple[str, str]] = []
        for f in obj.fields:
            try:
                typed[f.name] = self._parse(f, values.get(f.name), stage_lookup, self.bounds)
            except ValueProblem as exc:
                problems.append((f.name, str(exc)))
        clean = _strip_attributes(record)
        if problems:
            col.report.rejected += 1
            col.batch.rejected.append(
                {
                    "object": col.table,
                    "source_file": source_file,
                    "row_number": col.row_number,
                    "field": ", ".join(p[0] for p in problems),
                    "reason": "; ".join(f"{f}: {why}" for f, why in problems),
                    "raw_record": json.dumps(clean, ensure_ascii=False, default=str, sort_keys=True),
                }
            )
            return
        skip = {*used, "IsDeleted"}
        typed["_is_deleted"] = bool(record.get("IsDeleted"))
        typed["_extra"] = {k: v for k, v in clean.items() if k not in skip}
        typed["_source_file"] = source_file
        typed["_source_row"] = col.row_number
        col.report.rows += 1
        col.batch.rows.append(typed)

    @staticmethod
    def _parse(f: Field, raw: Any, stage_lookup: dict[str, str] | None, bounds: PlausibleBounds | None = None) -> Any:
        return parse_value(
            f, raw, parse_date=_parse_sf_date, parse_timestamp=parse_sf_datetime, stages=stage_lookup,
            true_values=("true", "1"), false_values=("false", "0"), bounds=bounds,
        )

    def _flush(self, col: _Collector) -> Iterator[Batch]:
        if col.full():
            yield col.take()

    # -- which fields each sObject table reads ---------------------------------------------------
    def stream(self, table: str) -> Stream:
        """The SOQL read behind a native sObject table (``IsDeleted``/cursor fields are added)."""
        cfg = self.config
        sobject, fields = SOBJECT_FIELDS[table]
        where: tuple[str, ...] = ()
        cursor_field = "SystemModstamp"
        configured: tuple[str | None, ...] = ()
        if table == "user":
            where = (cfg.rep_filter,) if cfg.rep_filter else ()
            configured = (cfg.rep_segment_field, cfg.slack_user_id_field)
        elif table == "manager":
            configured = (cfg.slack_user_id_field,)
        elif table == "account":
            configured = (cfg.account_segment_field, cfg.account_tags_field)
        elif table == "opportunity_field_history":
            where = (f"Field IN ({', '.join(soql_quote(n) for n in cfg.field_history_fields)})",)
            cursor_field = "CreatedDate"
        elif table in ("task", "event"):
            where = self._what_filter()
        elif table in ("task_relation", "event_relation"):
            where = ("IsWhat = false",)
        return Stream(sobject, (*fields, *dict.fromkeys(f for f in configured if f)), where, cursor_field)

    def _values(self, table: str, record: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """(native column -> raw value, the record fields used) for one record of ``table``."""
        cfg = self.config
        _, fields = SOBJECT_FIELDS[table]
        used = ["Id", *fields]
        if "SystemModstamp" in record:
            used.append("SystemModstamp")
        values = {snake_case(f): record.get(f) for f in used}
        configured: dict[str, str | None] = {}
        if table in ("user", "manager"):
            configured["slack_user_id"] = cfg.slack_user_id_field
        if table == "user":
            configured["segment_value"] = cfg.rep_segment_field
        if table == "account":
            configured["segment_value"] = cfg.account_segment_field
            configured["tags_value"] = cfg.account_tags_field
        for column, api_field in configured.items():
            values[column] = record.get(api_field) if api_field else None
            if api_field:
                used.append(api_field)
        return values, used

    def _read_sobject(self, col: _Collector, since: dict[str, dt.datetime]) -> Iterator[Batch]:
        stream = self.stream(col.table)
        col.report.source_file = stream.sobject
        lookup = self.stage_lookup() if any(f.type == STAGE for f in TABLES[col.table].fields) else None
        if col.table == "opportunity_field_history" and not self.config.field_history_fields:
            return
        for r in self._records(col, stream, since):
            values, used = self._values(col.table, r)
            self._emit(col, stream.sobject, r, values, used, lookup)
            yield from self._flush(col)

    # -- stages ------------------------------------------------------------------------------
    def _stages(self) -> list[dict[str, Any]]:
        """Every stage of the org (active or not), read once per source: validation needs them all."""
        if self._stage_records is None:
            soql = self._soql(self.stream("opportunity_stage"), None)
            self._stage_records = [r for page in self.client.query(soql) for r in page]
        return self._stage_records

    def stage_lookup(self) -> dict[str, str]:
        """Lower-cased stage label (and API name) -> the stage's MasterLabel."""
        lookup: dict[str, str] = {}
        for r in self._stages():
            label = r.get("MasterLabel")
            if label:
                lookup[str(label).lower()] = str(label)
                if r.get("ApiName"):
                    lookup.setdefault(str(r["ApiName"]).lower(), str(label))
        return lookup

    def _read_stages(self, col: _Collector, since: dict[str, dt.datetime]) -> Iterator[Batch]:
        col.report.source_file = "OpportunityStage"
        for r in self._stages():
            values, used = self._values("opportunity_stage", r)
            values["api_name"] = r.get("ApiName")
            self._emit(col, "OpportunityStage", r, values, [*used, "ApiName"])
            yield from self._flush(col)

    # -- managers ------------------------------------------------------------------------------
    def _read_managers(self, col: _Collector, since: dict[str, dt.datetime]) -> Iterator[Batch]:
        """Users who manage reps. Read in full each run (users are few): someone becomes a manager
        when a rep is assigned to them, which does not touch their own SystemModstamp."""
        col.report.source_file = "User"
        cfg = self.config
        where = ("ManagerId != null", *((cfg.rep_filter,) if cfg.rep_filter else ()))
        manager_ids = {
            r["ManagerId"] for r in self._records(None, Stream("User", ("ManagerId",), where, narrow=True), None) if r.get("ManagerId")
        }
        for r in self._by_ids(self.stream("manager"), manager_ids):
            values, used = self._values("manager", r)
            self._emit(col, "User", r, values, used)
            yield from self._flush(col)

    # -- activities ----------------------------------------------------------------------------
    def _what_filter(self) -> tuple[str, ...]:
        types = self.config.activity_what_types
        return (f"What.Type IN ({', '.join(soql_quote(t) for t in types)})",) if types else ()

    def _what_allowed(self, what_id: str | None) -> bool:
        types = self.config.activity_what_types
        if not types:
            return True
        prefixes = {self.config.key_prefixes.get(t) for t in types}
        return bool(what_id) and str(what_id)[:3] in prefixes

    def _read_relations(self, col: _Collector, since: dict[str, dt.datetime]) -> Iterator[Batch]:
        """TaskRelation / EventRelation rows whose activity is on one of activity_what_types."""
        stream = self.stream(col.table)
        parent = stream.sobject.removesuffix("Relation")  # Task, Event
        stream = Stream(stream.sobject, (*stream.fields, f"{parent}.WhatId"), stream.where, stream.cursor_field)
        col.report.source_file = stream.sobject
        for r in self._records(col, stream, since):
            if not self._what_allowed(_dotted(r, f"{parent}.WhatId")):
                continue
            values, used = self._values(col.table, r)
            self._emit(col, stream.sobject, r, values, [*used, parent])
            yield from self._flush(col)

    # -- quotas -------------------------------------------------------------------------------------
    def _read_quotas(self, col: _Collector, since: dict[str, dt.datetime]) -> Iterator[Batch]:
        """ForecastingQuota, whole: the fields the org has (PeriodId, ProductFamily, Territory2Id where
        present) and the forecast type's DeveloperName. An org whose integration user cannot read it
        (no View All Forecasts / Allow Forecasting, Collaborative Forecasts off) lands no quotas and the
        object is reported missing, with what that disables; the rest of the landing goes on."""
        stream = self.stream("forecasting_quota")
        col.report.source_file = stream.sobject
        try:
            described = set(self.client.describe_fields(stream.sobject))
            wanted = [f for f in dict.fromkeys(("Id", *stream.fields, "SystemModstamp")) if f in described]
            wanted += [f for f in self.config.extra_fields.get(stream.sobject, []) if f in described and f not in wanted]
            if "ForecastingTypeId" in described:
                wanted.append("ForecastingType.DeveloperName")
            if self.config.select_all_fields:
                wanted += sorted(described - set(wanted))
            pages = self.client.query(f"SELECT {', '.join(wanted)} FROM {stream.sobject}")
            for page in pages:
                for r in page:
                    values, used = self._values("forecasting_quota", r)
                    values["forecasting_type"] = _dotted(r, "ForecastingType.DeveloperName")
                    self._emit(col, stream.sobject, r, values, [*used, "ForecastingType"])
                    yield from self._flush(col)
        except SalesforceApiError as exc:
            if not quotas_unavailable(exc):
                raise
            col.report.present = False
            col.report.notes.append(QUOTAS_UNAVAILABLE.format(why=f"{exc.status} {exc.error_code}: {exc.sf_message}"))
            log.warning("Salesforce: %s", col.report.notes[-1])

    # -- the mapping configuration as tables ------------------------------------------------------
    def map_rows(self, table: str) -> list[dict[str, Any]]:
        """The rows of a ``map_*`` table, from the config (and, for map_settings, the instance URL)."""
        cfg = self.config
        pairs = lambda d, k, v: [{k: key, v: value} for key, value in d.items()]  # noqa: E731
        if table == "map_rep_segments":
            return pairs(cfg.rep_segment_map, "source_value", "segment")
        if table == "map_account_segments":
            return pairs(cfg.account_segment_map, "source_value", "segment")
        if table == "map_segment_bands":
            if cfg.account_segment_field:  # the field wins: no bands apply
                return []
            return [
                {"band_order": i, "segment": b.segment, "max_employees": b.max_employees}
                for i, b in enumerate(cfg.account_segment_bands, start=1)
            ]
        if table == "map_buying_roles":
            return pairs(cfg.buying_roles, "source_value", "buying_role")
        if table == "map_buying_role_priority":
            roles = dict.fromkeys([*cfg.buying_role_priority, *cfg.buying_roles.values(), cfg.default_buying_role])
            rank = {r: i for i, r in enumerate(dict.fromkeys(cfg.buying_role_priority), start=1)}
            return [{"buying_role": r, "priority": rank.get(r), "is_default": r == cfg.default_buying_role} for r in roles]
        if table == "map_field_history":
            return pairs(cfg.field_history_fields, "field", "field_name")
        if table == "map_task_subtypes":
            return pairs(cfg.task_subtypes, "source_value", "activity_type")
        if table == "map_task_types":
            return pairs(cfg.task_types, "source_value", "activity_type")
        if table == "map_event_types":
            return pairs(cfg.event_types, "source_value", "activity_type")
        if table == "map_key_prefixes":
            return pairs(cfg.key_prefixes, "sobject", "key_prefix")
        if table == "map_settings":
            return [
                {"setting": "instance_url", "value": self.instance_url},
                {"setting": "quota_forecasting_type", "value": cfg.quota_forecasting_type},
                {"setting": "fiscal_year_start_month", "value": str(cfg.fiscal_year_start_month)},
            ]
        raise KeyError(table)

    _MAP_SOURCES = {
        "map_rep_segments": "rep_segment_map", "map_account_segments": "account_segment_map",
        "map_segment_bands": "account_segment_bands", "map_buying_roles": "buying_roles",
        "map_buying_role_priority": "buying_role_priority, default_buying_role", "map_field_history": "field_history_fields",
        "map_task_subtypes": "task_subtypes", "map_task_types": "task_types", "map_event_types": "event_types",
        "map_key_prefixes": "key_prefixes",
        "map_settings": "instance_url, quota_forecasting_type, fiscal_year_start_month",
    }

    def _read_map(self, col: _Collector, since: dict[str, dt.datetime]) -> Iterator[Batch]:
        source_file = f"config: {self._MAP_SOURCES[col.table]}"
        col.report.source_file = source_file
        for row in self.map_rows(col.table):
            self._emit(col, source_file, row, row, row.keys())
            yield from self._flush(col)


# sObject table -> (sObject, the API fields read; each lands as the column snake_case(field)).
# Id and SystemModstamp land too; configured org fields land under fixed columns (see tables.py).
SOBJECT_FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "opportunity_stage": ("OpportunityStage", ("MasterLabel", "SortOrder", "IsClosed", "IsWon", "IsActive")),
    "user": ("User", ("Name", "Email", "ManagerId", "IsActive")),
    "manager": ("User", ("Name", "Email", "IsActive")),
    "account": ("Account", ("Name", "Industry", "NumberOfEmployees")),
    "contact": ("Contact", ("AccountId", "Name", "Title", "Email")),
    "opportunity_contact_role": ("OpportunityContactRole", ("ContactId", "OpportunityId", "Role", "IsPrimary")),
    "opportunity": (
        "Opportunity",
        ("AccountId", "OwnerId", "Name", "StageName", "Amount", "CreatedDate", "CloseDate", "IsClosed", "IsWon", "NextStep"),
    ),
    "opportunity_history": ("OpportunityHistory", ("OpportunityId", "StageName", "CreatedDate")),
    "opportunity_field_history": ("OpportunityFieldHistory", ("OpportunityId", "Field", "OldValue", "NewValue", "DataType", "CreatedDate")),
    "task": (
        "Task",
        ("WhatId", "WhoId", "AccountId", "OwnerId", "Subject", "TaskSubtype", "Type", "ActivityDate", "CompletedDateTime", "CreatedDate"),
    ),
    "event": (
        "Event",
        ("WhatId", "WhoId", "AccountId", "OwnerId", "Subject", "EventSubtype", "Type", "StartDateTime", "ActivityDateTime", "CreatedDate"),
    ),
    "task_relation": ("TaskRelation", ("TaskId", "RelationId", "IsWhat")),
    "forecasting_quota": (
        "ForecastingQuota",
        ("QuotaOwnerId", "StartDate", "QuotaAmount", "IsAmount", "ForecastingTypeId", "PeriodId", "ProductFamily", "Territory2Id"),
    ),
    "event_relation": ("EventRelation", ("EventId", "RelationId", "IsWhat", "IsInvitee", "Status")),
}


def snake_case(name: str) -> str:
    """``StageName`` -> ``stage_name``, ``SystemModstamp`` -> ``system_modstamp`` (as dlt normalises)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
