"""Salesforce as an incremental, read-only CRM source (REST API, SOQL) in the canonical landed shape.

Every canonical object is read with SOQL through ``queryAll`` where the sObject can be deleted
(so deleted records come back with ``IsDeleted = true`` and land with ``_is_deleted``):

==================  =====================================================================
stages              OpportunityStage (MasterLabel, SortOrder, IsClosed, IsWon; IsActive in _extra)
reps                User (``rep_filter``; segment from ``rep_segment_field``)
managers            User whose Id is some rep's ManagerId
accounts            Account (segment from ``account_segment_field`` or NumberOfEmployees bands)
contacts            Contact, buying_role from OpportunityContactRole.Role (``buying_roles``)
opportunities       Opportunity (source_url = <instance>/<Id>)
stage_history       OpportunityHistory (one row per entry; repeats collapse in dbt)
field_history       OpportunityFieldHistory (``field_history_fields``: CloseDate, Amount)
activities          Task + Event on an Opportunity (``activity_what_types``)
activity_contacts   Task/Event WhoId + TaskRelation/EventRelation (contacts only)
==================  =====================================================================

Incremental: an object's cursor is JSON, ``{"<sObject>": "<max SystemModstamp>"}`` (CreatedDate for
the immutable OpportunityFieldHistory), one entry per sObject read for it; the next run adds
``WHERE SystemModstamp > <cursor>``. The first run (no cursor) skips the recycle bin
(``IsDeleted = false``). Fields outside the canonical shape (every field the integration user
can read, by default) land in ``_extra``. The source never writes: it sends GET requests only.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from connectors.csv_folder import Batch, ObjectReport
from connectors.values import ValueProblem, parse_value
from connectors.salesforce.client import DEFAULT_API_VERSION, SalesforceClient, client_credentials_token
from connectors.salesforce.config import SalesforceConfig
from connectors.schema import RAW_OBJECTS, Field

ENV_INSTANCE_URL = "SALESFORCE_INSTANCE_URL"
ENV_ACCESS_TOKEN = "SALESFORCE_ACCESS_TOKEN"
ENV_CLIENT_ID = "SALESFORCE_CLIENT_ID"
ENV_CLIENT_SECRET = "SALESFORCE_CLIENT_SECRET"
ENV_API_VERSION = "SALESFORCE_API_VERSION"

# sObjects without IsDeleted (never soft-deleted): plain /query, no recycle-bin filter.
_NOT_DELETABLE = {"User", "OpportunityStage"}
_ID_CHUNK = 200  # ids per "Id IN (...)" query: keeps the GET URL well under Salesforce's limit


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
    """Rows and rejections of one canonical object, in batches, with its report and cursor."""

    object_name: str
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

    def __init__(
        self,
        instance_url: str,
        access_token: str,
        api_version: str = DEFAULT_API_VERSION,
        config: SalesforceConfig | None = None,
    ):
        self.config = config or SalesforceConfig()
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
    def read(self, object_name: str, batch_size: int = 2000, cursor: str | None = None) -> Iterator[Batch]:
        """Typed rows (and rejections) of one canonical object changed since ``cursor``."""
        readers: dict[str, Callable[[_Collector, dict[str, dt.datetime]], Iterator[Batch]]] = {
            "stages": self._read_stages,
            "reps": self._read_reps,
            "managers": self._read_managers,
            "accounts": self._read_accounts,
            "contacts": self._read_contacts,
            "opportunities": self._read_opportunities,
            "stage_history": self._read_stage_history,
            "field_history": self._read_field_history,
            "activities": self._read_activities,
            "activity_contacts": self._read_activity_contacts,
        }
        reader = readers.get(object_name)
        if reader is None:  # e.g. quotas: Salesforce has no standard quota object
            self.reports[object_name] = ObjectReport(object_name, None, present=False)
            return
        since = self._decode_cursor(cursor)
        # per-read state: dlt may interleave the generators of several objects
        col = _Collector(object_name, batch_size, ObjectReport(object_name, None), cursor=dict(since))
        self.reports[object_name] = col.report
        yield from reader(col, since)
        if col.batch.rows or col.batch.rejected:
            yield col.take()
        if col.cursor:
            self.cursors[object_name] = json.dumps({k: soql_datetime(v) for k, v in col.cursor.items()}, sort_keys=True)

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
            return {str(k): parse_sf_datetime(v) for k, v in raw.items() if v}
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
        sobject: str,
        record: dict[str, Any],
        values: dict[str, Any],
        used: Iterable[str],
        stage_lookup: dict[str, str] | None = None,
    ) -> None:
        """Type ``values`` (canonical field -> raw value) into a row, or reject the record with reasons."""
        obj = RAW_OBJECTS[col.object_name]
        col.row_number += 1
        typed: dict[str, Any] = {}
        problems: list[tuple[str, str]] = []
        for f in obj.fields:
            try:
                typed[f.name] = self._parse(f, values.get(f.name), stage_lookup)
            except ValueProblem as exc:
                problems.append((f.name, str(exc)))
        clean = _strip_attributes(record)
        if problems:
            col.report.rejected += 1
            col.batch.rejected.append(
                {
                    "object": col.object_name,
                    "source_file": sobject,
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
        typed["_source_file"] = sobject
        typed["_source_row"] = col.row_number
        col.report.rows += 1
        col.batch.rows.append(typed)

    @staticmethod
    def _parse(f: Field, raw: Any, stage_lookup: dict[str, str] | None) -> Any:
        return parse_value(
            f, raw, parse_date=_parse_sf_date, parse_timestamp=parse_sf_datetime, stages=stage_lookup,
            true_values=("true", "1"), false_values=("false", "0"),
        )

    def _flush(self, col: _Collector) -> Iterator[Batch]:
        if col.full():
            yield col.take()

    # -- stages ------------------------------------------------------------------------------
    STAGE_STREAM = Stream("OpportunityStage", ("MasterLabel", "SortOrder", "IsClosed", "IsWon", "IsActive"), narrow=True)

    def _stages(self) -> list[dict[str, Any]]:
        """Every stage of the org (active or not), read once per source: validation needs them all."""
        if self._stage_records is None:
            stream = self.STAGE_STREAM
            soql = self._soql(stream, None)
            self._stage_records = [r for page in self.client.query(soql) for r in page]
        return self._stage_records

    def stage_lookup(self) -> dict[str, str]:
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
        start = self._since_for(since, "OpportunityStage")
        for r in self._stages():
            col.advance("OpportunityStage", r.get("SystemModstamp"))
            modified = r.get("SystemModstamp")
            if start is not None and modified and parse_sf_datetime(modified) <= start:
                continue
            values = {"stage": r.get("MasterLabel"), "stage_order": r.get("SortOrder"), "is_closed": r.get("IsClosed"), "is_won": r.get("IsWon")}
            self._emit(col, "OpportunityStage", r, values, ("MasterLabel", "SortOrder", "IsClosed", "IsWon"))
            yield from self._flush(col)

    # -- users -------------------------------------------------------------------------------
    def _user_stream(self, where: tuple[str, ...] = ()) -> Stream:
        fields = ["Name", "Email", "ManagerId", "IsActive"]
        for extra in (self.config.rep_segment_field, self.config.slack_user_id_field):
            if extra:
                fields.append(extra)
        return Stream("User", tuple(fields), where)

    def _read_reps(self, col: _Collector, since: dict[str, dt.datetime]) -> Iterator[Batch]:
        col.report.source_file = "User"
        cfg = self.config
        where = (cfg.rep_filter,) if cfg.rep_filter else ()
        for r in self._records(col, self._user_stream(where), since):
            segment = r.get(cfg.rep_segment_field) if cfg.rep_segment_field else None
            if segment is not None:
                segment = cfg.rep_segment_map.get(str(segment), segment)
            values = {
                "rep_id": r.get("Id"), "rep_name": r.get("Name"), "email": r.get("Email"),
                "slack_user_id": r.get(cfg.slack_user_id_field) if cfg.slack_user_id_field else None,
                "manager_id": r.get("ManagerId"), "segment": segment, "is_active": r.get("IsActive"),
            }
            used = ["Id", "Name", "Email", "ManagerId", "IsActive", *filter(None, (cfg.rep_segment_field, cfg.slack_user_id_field))]
            self._emit(col, "User", r, values, used)
            yield from self._flush(col)

    def _read_managers(self, col: _Collector, since: dict[str, dt.datetime]) -> Iterator[Batch]:
        """Users who manage reps. Read in full each run (users are few): someone becomes a manager
        when a rep is assigned to them, which does not touch their own SystemModstamp."""
        col.report.source_file = "User"
        cfg = self.config
        where = ("ManagerId != null", *((cfg.rep_filter,) if cfg.rep_filter else ()))
        manager_ids = {
            r["ManagerId"] for r in self._records(None, Stream("User", ("ManagerId",), where, narrow=True), None) if r.get("ManagerId")
        }
        for r in self._by_ids(self._user_stream(), manager_ids):
            col.advance("User", r.get("SystemModstamp"))
            values = {
                "manager_id": r.get("Id"), "manager_name": r.get("Name"), "email": r.get("Email"),
                "slack_user_id": r.get(cfg.slack_user_id_field) if cfg.slack_user_id_field else None,
            }
            self._emit(col, "User", r, values, ["Id", "Name", "Email", *filter(None, (cfg.slack_user_id_field,))])
            yield from self._flush(col)

    # -- accounts ----------------------------------------------------------------------------
    def account_segment(self, record: dict[str, Any]) -> str | None:
        cfg = self.config
        if cfg.account_segment_field:
            raw = record.get(cfg.account_segment_field)
            return None if raw in (None, "") else cfg.account_segment_map.get(str(raw), str(raw))
        employees = record.get("NumberOfEmployees")
        if not isinstance(employees, (int, float)) or isinstance(employees, bool):
            return None
        for band in cfg.account_segment_bands:
            if band.max_employees is None or employees < band.max_employees:
                return band.segment
        return None

    def _read_accounts(self, col: _Collector, since: dict[str, dt.datetime]) -> Iterator[Batch]:
        col.report.source_file = "Account"
        cfg = self.config
        extra = [f for f in (cfg.account_segment_field, cfg.account_tags_field) if f]
        stream = Stream("Account", ("Name", "Industry", "NumberOfEmployees", *extra))
        for r in self._records(col, stream, since):
            values = {
                "account_id": r.get("Id"), "account_name": r.get("Name"), "segment": self.account_segment(r),
                "industry": r.get("Industry"), "employees": r.get("NumberOfEmployees"),
                "tags": r.get(cfg.account_tags_field) if cfg.account_tags_field else None,
            }
            self._emit(col, "Account", r, values, ["Id", "Name", "Industry", "NumberOfEmployees", *extra])
            yield from self._flush(col)

    # -- contacts ----------------------------------------------------------------------------
    CONTACT_STREAM = Stream("Contact", ("AccountId", "Name", "Title", "Email"))
    ROLE_STREAM = Stream("OpportunityContactRole", ("ContactId", "OpportunityId", "Role", "IsPrimary"), narrow=True)

    def buying_role(self, roles: Iterable[str | None]) -> str:
        cfg = self.config
        mapped = {cfg.buying_roles.get(r or "", cfg.default_buying_role) for r in roles} or {cfg.default_buying_role}
        for candidate in cfg.buying_role_priority:
            if candidate in mapped:
                return candidate
        return sorted(mapped)[0]

    def _read_contacts(self, col: _Collector, since: dict[str, dt.datetime]) -> Iterator[Batch]:
        """Contacts changed since the cursor, plus contacts whose opportunity roles changed."""
        col.report.source_file = "Contact, OpportunityContactRole"
        roles: dict[str, list[str | None]] = {}
        role_changed: set[str] = set()
        first_run = self._since_for(since, "OpportunityContactRole") is None
        for ocr in self._records(col, self.ROLE_STREAM, since):
            contact = ocr.get("ContactId")
            if not contact:
                continue
            role_changed.add(contact)
            if first_run and not ocr.get("IsDeleted"):
                roles.setdefault(contact, []).append(ocr.get("Role"))
        if not first_run:  # a contact's other, unchanged roles count too
            roles = self._roles_of(role_changed)

        seen: set[str] = set()

        def emit_page(records: list[dict[str, Any]]) -> None:
            if not first_run:
                missing = {r["Id"] for r in records if r.get("Id") and r["Id"] not in roles}
                roles.update(self._roles_of(missing))
            for r in records:
                seen.add(r.get("Id"))
                values = {
                    "contact_id": r.get("Id"), "account_id": r.get("AccountId"), "contact_name": r.get("Name"),
                    "title": r.get("Title"), "email": r.get("Email"),
                    "buying_role": self.buying_role(roles.get(r.get("Id"), [])),
                }
                self._emit(col, "Contact", r, values, ["Id", "AccountId", "Name", "Title", "Email"])

        page: list[dict[str, Any]] = []
        for r in self._records(col, self.CONTACT_STREAM, since):
            page.append(r)
            if len(page) >= _ID_CHUNK:
                emit_page(page)
                page = []
                yield from self._flush(col)
        emit_page(page)
        # contacts not changed themselves, but whose roles did
        page = list(self._by_ids(self.CONTACT_STREAM, role_changed - seen))
        for i in range(0, len(page), _ID_CHUNK):
            emit_page(page[i : i + _ID_CHUNK])
            yield from self._flush(col)

    def _roles_of(self, contact_ids: set[str]) -> dict[str, list[str | None]]:
        out: dict[str, list[str | None]] = {c: [] for c in contact_ids}
        for ocr in self._by_ids(self.ROLE_STREAM, contact_ids, id_field="ContactId"):
            out.setdefault(ocr["ContactId"], []).append(ocr.get("Role"))
        return out

    # -- opportunities and history ----------------------------------------------------------------
    OPPORTUNITY_FIELDS = ("AccountId", "OwnerId", "Name", "StageName", "Amount", "CreatedDate", "CloseDate", "IsClosed", "IsWon", "NextStep")

    def _read_opportunities(self, col: _Collector, since: dict[str, dt.datetime]) -> Iterator[Batch]:
        col.report.source_file = "Opportunity"
        lookup = self.stage_lookup()
        for r in self._records(col, Stream("Opportunity", self.OPPORTUNITY_FIELDS), since):
            values = {
                "opportunity_id": r.get("Id"), "account_id": r.get("AccountId"), "owner_rep_id": r.get("OwnerId"),
                "opportunity_name": r.get("Name"), "stage": r.get("StageName"), "amount": r.get("Amount"),
                "created_at": r.get("CreatedDate"), "close_date": r.get("CloseDate"), "is_closed": r.get("IsClosed"),
                "is_won": r.get("IsWon"), "next_step": r.get("NextStep"),
                "source_url": f"{self.instance_url}/{r['Id']}" if r.get("Id") else None,
            }
            self._emit(col, "Opportunity", r, values, ("Id", *self.OPPORTUNITY_FIELDS), lookup)
            yield from self._flush(col)

    def _read_stage_history(self, col: _Collector, since: dict[str, dt.datetime]) -> Iterator[Batch]:
        col.report.source_file = "OpportunityHistory"
        lookup = self.stage_lookup()
        for r in self._records(col, Stream("OpportunityHistory", ("OpportunityId", "StageName", "CreatedDate")), since):
            values = {"stage_history_id": r.get("Id"), "opportunity_id": r.get("OpportunityId"), "stage": r.get("StageName"),
                      "entered_at": r.get("CreatedDate")}
            self._emit(col, "OpportunityHistory", r, values, ("Id", "OpportunityId", "StageName", "CreatedDate"), lookup)
            yield from self._flush(col)

    def _read_field_history(self, col: _Collector, since: dict[str, dt.datetime]) -> Iterator[Batch]:
        """OpportunityFieldHistory rows are immutable: no SystemModstamp, the cursor is CreatedDate."""
        col.report.source_file = "OpportunityFieldHistory"
        names = self.config.field_history_fields
        if not names:
            return
        where = (f"Field IN ({', '.join(soql_quote(n) for n in names)})",)
        stream = Stream("OpportunityFieldHistory", ("OpportunityId", "Field", "OldValue", "NewValue", "CreatedDate"), where, "CreatedDate")
        for r in self._records(col, stream, since):
            values = {
                "field_history_id": r.get("Id"), "opportunity_id": r.get("OpportunityId"),
                "field_name": names.get(r.get("Field") or "", r.get("Field")),
                "old_value": None if r.get("OldValue") is None else str(r["OldValue"]),
                "new_value": None if r.get("NewValue") is None else str(r["NewValue"]),
                "changed_at": r.get("CreatedDate"),
            }
            self._emit(col, "OpportunityFieldHistory", r, values, ("Id", "OpportunityId", "Field", "OldValue", "NewValue", "CreatedDate"))
            yield from self._flush(col)

    # -- activities --------------------------------------------------------------------------
    def _what_filter(self) -> tuple[str, ...]:
        types = self.config.activity_what_types
        return (f"What.Type IN ({', '.join(soql_quote(t) for t in types)})",) if types else ()

    def _what_allowed(self, what_id: str | None) -> bool:
        types = self.config.activity_what_types
        if not types:
            return True
        prefixes = {self.config.key_prefixes.get(t) for t in types}
        return bool(what_id) and str(what_id)[:3] in prefixes

    def _is_opportunity(self, what_id: Any) -> bool:
        return isinstance(what_id, str) and what_id[:3] == self.config.key_prefixes.get("Opportunity", "006")

    def _is_contact(self, who_id: Any) -> bool:
        return isinstance(who_id, str) and who_id[:3] == self.config.key_prefixes.get("Contact", "003")

    TASK_FIELDS = ("WhatId", "WhoId", "AccountId", "OwnerId", "Subject", "TaskSubtype", "Type", "ActivityDate", "CompletedDateTime", "CreatedDate")
    EVENT_FIELDS = ("WhatId", "WhoId", "AccountId", "OwnerId", "Subject", "EventSubtype", "Type", "StartDateTime", "ActivityDateTime", "CreatedDate")

    def task_type(self, record: dict[str, Any]) -> str:
        cfg = self.config
        return cfg.task_subtypes.get(record.get("TaskSubtype") or "") or cfg.task_types.get(record.get("Type") or "") or "task"

    def _read_activities(self, col: _Collector, since: dict[str, dt.datetime]) -> Iterator[Batch]:
        col.report.source_file = "Task, Event"
        cfg = self.config
        for r in self._records(col, Stream("Task", self.TASK_FIELDS, self._what_filter()), since):
            values = {
                "activity_id": r.get("Id"), "opportunity_id": r.get("WhatId") if self._is_opportunity(r.get("WhatId")) else None,
                "account_id": r.get("AccountId"), "rep_id": r.get("OwnerId"), "activity_type": self.task_type(r),
                "occurred_at": r.get("CompletedDateTime") or r.get("ActivityDate") or r.get("CreatedDate"), "subject": r.get("Subject"),
            }
            self._emit(col, "Task", r, values, ("Id", *self.TASK_FIELDS))
            yield from self._flush(col)
        for r in self._records(col, Stream("Event", self.EVENT_FIELDS, self._what_filter()), since):
            values = {
                "activity_id": r.get("Id"), "opportunity_id": r.get("WhatId") if self._is_opportunity(r.get("WhatId")) else None,
                "account_id": r.get("AccountId"), "rep_id": r.get("OwnerId"),
                "activity_type": cfg.event_types.get(r.get("Type") or "", "meeting"),
                "occurred_at": r.get("StartDateTime") or r.get("ActivityDateTime") or r.get("CreatedDate"), "subject": r.get("Subject"),
            }
            self._emit(col, "Event", r, values, ("Id", *self.EVENT_FIELDS))
            yield from self._flush(col)

    def _read_activity_contacts(self, col: _Collector, since: dict[str, dt.datetime]) -> Iterator[Batch]:
        """(activity, contact) pairs from WhoId and from TaskRelation/EventRelation (contacts only)."""
        col.report.source_file = "Task, Event, TaskRelation, EventRelation"
        pairs: dict[tuple[str, str], tuple[str, dict[str, Any], bool]] = {}

        def keep(activity: Any, contact: Any, sobject: str, record: dict[str, Any], deleted: bool) -> None:
            if not activity or not self._is_contact(contact):
                return
            key = (str(activity), str(contact))
            if key in pairs and not pairs[key][2]:
                return  # a live link wins over a deleted one
            pairs[key] = (sobject, record, deleted)

        for sobject in ("Task", "Event"):
            stream = Stream(sobject, ("WhoId", "WhatId"), self._what_filter(), narrow=True)
            for r in self._records(col, stream, since):
                keep(r.get("Id"), r.get("WhoId"), sobject, r, bool(r.get("IsDeleted")))
        for sobject, parent in (("TaskRelation", "Task"), ("EventRelation", "Event")):
            stream = Stream(sobject, (f"{parent}Id", "RelationId", "IsWhat", f"{parent}.WhatId"), ("IsWhat = false",), narrow=True)
            for r in self._records(col, stream, since):
                if self._what_allowed(_dotted(r, f"{parent}.WhatId")):
                    keep(r.get(f"{parent}Id"), r.get("RelationId"), sobject, r, bool(r.get("IsDeleted")))
        for (activity, contact), (sobject, record, deleted) in pairs.items():
            self._emit(col, sobject, {**record, "IsDeleted": deleted}, {"activity_id": activity, "contact_id": contact}, record.keys())
            yield from self._flush(col)
