"""Pipedrive as an incremental, read-only source of native tables (``raw_pipedrive``).

Endpoints (all GET): ``/api/v2/pipelines``, ``/api/v2/stages``, ``/v1/users``,
``/api/v2/organizations``, ``/api/v2/persons``, ``/api/v2/deals``,
``/api/v2/activities`` (v2: ``updated_since`` filter, ``cursor`` paging) and
``/v1/deals/{id}/changelog`` (or ``/flow``) for every field change of a deal.

This module only extracts: HTTP, paging, retries, incremental cursors, deletions,
flattening records into the rows of connectors/pipedrive/tables.py, typing them and
quarantining unusable rows. The mapping into the canonical shape (stage names and order,
won/lost, managers, segments, buying roles, activity types, history rows, deal links) is
dbt's: ``dbt_project/models/staging/pipedrive/``. The mapping configuration
(:class:`PipedriveConfig`) comes out as the ``map_*`` snapshot tables for dbt to join.

Incremental contract: each incremental table's cursor is the highest ``update_time`` seen
(of the deals, for their change log; of the activities, for their participants; of the
organizations and persons, for their custom fields); the next run asks only for records
updated since (Pipedrive's filter is inclusive, so the boundary record comes again and
merges by key). Pipelines, stages and users are small and carry no update filter, so they
are read whole every time (snapshot tables). A record Pipedrive reports deleted lands with
``_is_deleted``.

A row that cannot be used (missing id, unparseable date, negative value, unknown stage id,
an activity with no date, ...) comes out in ``Batch.rejected`` with the endpoint, its
position in the stream, the field(s), the reason and the record as read: never dropped,
never a crash.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from connectors.csv_folder import Batch, ObjectReport
from connectors.pipedrive.client import (
    PipedriveError,
    PipedriveReader,
    company_from_base_url,
    cursor_paginator,
    log,
    offset_paginator,
)
from connectors.pipedrive.config import PipedriveConfig
from connectors.pipedrive.tables import DATASET, TABLES
from connectors.schema import ID, Field, RawObject
from connectors.values import PlausibleBounds, ValueProblem, parse_value

DEFAULT_BASE_URL = "https://api.pipedrive.com"
CONFIG = "config"

ENDPOINTS = {
    "pipelines": "GET /api/v2/pipelines",
    "stages": "GET /api/v2/stages",
    "users": "GET /v1/users",
    "organizations": "GET /api/v2/organizations",
    "organization_custom_fields": "GET /api/v2/organizations",
    "persons": "GET /api/v2/persons",
    "person_custom_fields": "GET /api/v2/persons",
    "deals": "GET /api/v2/deals",
    "deal_changes": "GET /v1/deals/{id}/changelog",
    "activities": "GET /api/v2/activities",
    "activity_participants": "GET /api/v2/activities",
}

_CUSTOM_KEY = re.compile(r"^[0-9a-f]{40}$")  # v1 puts custom fields at the top level under their hash key
_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


class _Problem:
    """A value already known to be unusable (e.g. a stage id no stage has): parsing it reports why."""

    def __init__(self, why: str):
        self.why = why


@dataclass
class _Item:
    raw: Mapping[str, Any]
    values: dict[str, Any]
    endpoint: str
    used: frozenset[str] = frozenset()  # raw keys landed in declared columns (or other tables): not in _extra
    deleted: bool = False
    skip: bool = False
    extra: dict[str, Any] | None = None  # explicit _extra (rows derived from part of a record)


# --------------------------------------------------------------------------- value parsing


def parse_timestamp(value: Any) -> dt.datetime:
    """Pipedrive timestamps (v2 RFC 3339 ``2024-01-04T10:44:11Z``, v1 ``2024-01-04 10:44:11``) as naive UTC."""
    if isinstance(value, dt.datetime):
        ts = value
    else:
        text = str(value).strip()
        try:
            ts = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ValueProblem(f"unparseable timestamp: {value!r}") from None
    if ts.tzinfo is not None:
        ts = ts.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return ts


def parse_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    try:
        return dt.date.fromisoformat(text[:10]) if len(text) >= 10 else dt.date.fromisoformat(text)
    except ValueError:
        raise ValueProblem(f"unparseable date: {value!r}") from None


def cursor_of(ts: dt.datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(f: Field, value: Any, bounds: PlausibleBounds | None = None) -> Any:
    if isinstance(value, _Problem):
        raise ValueProblem(value.why)
    if f.type == ID:
        value = _ref_id(value)
    return parse_value(f, value, parse_date=parse_date, parse_timestamp=parse_timestamp, bounds=bounds)


def _ref_id(value: Any) -> Any:
    """v1 embeds related objects (``{"value": 7, "name": ...}`` or ``{"id": 7, ...}``); v2 gives the bare id."""
    if isinstance(value, dict):
        return value.get("value", value.get("id"))
    return value


def _custom_text(value: Any) -> str | None:
    """A custom field value as text: option/monetary/address objects by their value, sets comma-separated."""
    if value is None:
        return None
    if isinstance(value, dict):
        inner = value.get("value", value.get("label", value.get("id")))
        return json.dumps(value, sort_keys=True, default=str) if inner is None or isinstance(inner, dict) else _custom_text(inner)
    if isinstance(value, list):
        parts = [_custom_text(v) for v in value]
        return ",".join(p for p in parts if p not in (None, ""))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _custom_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """v2 keeps custom fields under ``custom_fields``; v1 at the top level under their 40-hex keys."""
    out = {k: v for k, v in record.items() if isinstance(k, str) and _CUSTOM_KEY.match(k)}
    if isinstance(record.get("custom_fields"), dict):
        out.update(record["custom_fields"])
    return out


def _clock(value: Any) -> str | _Problem:
    """Pipedrive's due time (``HH:MM``, UTC) as ``HH:MM:SS``."""
    m = _TIME.match(str(value).strip())
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59 or int(m.group(3) or 0) > 59:
        return _Problem(f"unparseable time: {value!r}")
    return f"{int(m.group(1)):02d}:{m.group(2)}:{m.group(3) or '00'}"


def _truthy(value: Any) -> bool:
    return value is True or value == 1 or str(value).lower() in ("1", "true", "yes")


def _primary(values: Any) -> Any:
    """The primary entry of Pipedrive's email/phone lists."""
    if isinstance(values, list) and values:
        chosen = next((v for v in values if isinstance(v, dict) and v.get("primary")), values[0])
        return chosen.get("value") if isinstance(chosen, dict) else chosen
    return values if isinstance(values, str) else None


# --------------------------------------------------------------------------- the source


class PipedriveSource:
    """Pipedrive through its REST API: read-only (GET only), incremental, native tables."""

    incremental = True
    dataset = DATASET
    tables = TABLES

    def __init__(self, api_token: str, base_url: str = DEFAULT_BASE_URL, config: PipedriveConfig | None = None):
        self.config = config or PipedriveConfig()
        self.bounds = self.config.plausibility.bounds()
        self.max_quarantine_share = self.config.plausibility.max_quarantine_share
        self.base_url = base_url.rstrip("/")
        c = self.config
        self.http = PipedriveReader(
            api_token, self.base_url, token_in=c.token_in, timeout_s=c.timeout_s, max_attempts=c.max_attempts,
            backoff_factor=c.backoff_factor, max_retry_delay_s=c.max_retry_delay_s,
        )
        self.reports: dict[str, ObjectReport] = {}
        self.cursors: dict[str, str] = {}
        self._company = c.company_domain or company_from_base_url(self.base_url)
        self._pipelines: list[dict[str, Any]] | None = None
        self._stages: list[dict[str, Any]] | None = None
        self._users: list[dict[str, Any]] | None = None
        self._listings: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
        self._history: dict[str, list[dict[str, Any]]] = {}

    @classmethod
    def from_env(cls, config: PipedriveConfig | None = None, environ: Mapping[str, str] | None = None) -> PipedriveSource:
        """``PIPEDRIVE_API_TOKEN`` (required), ``PIPEDRIVE_BASE_URL`` (optional: ``https://<company>.pipedrive.com``
        or just ``<company>``), ``PIPEDRIVE_CONFIG`` (optional: a YAML file of :class:`PipedriveConfig`)."""
        env = os.environ if environ is None else environ
        token = (env.get("PIPEDRIVE_API_TOKEN") or "").strip()
        base = (env.get("PIPEDRIVE_BASE_URL") or "").strip() or DEFAULT_BASE_URL
        if "://" not in base:
            base = f"https://{base}" if "." in base else f"https://{base}.pipedrive.com"
        if config is None and env.get("PIPEDRIVE_CONFIG"):
            config = PipedriveConfig.load(env["PIPEDRIVE_CONFIG"])
        return cls(token, base, config)

    def __repr__(self) -> str:
        return f"PipedriveSource(base_url={self.base_url!r})"

    @property
    def source_system(self) -> str:
        return self.config.source_system

    # -- reading ---------------------------------------------------------------------------

    def read(self, table_name: str, batch_size: int = 1000, cursor: str | None = None) -> Iterator[Batch]:
        """Typed rows (and rejections) of one native table, in batches; ``cursor``: the table's last cursor."""
        obj = TABLES[table_name]  # KeyError for a table Pipedrive does not have
        if table_name.startswith("map_"):
            handler: Callable[[str | None], Iterable[_Item]] = self._config_items(table_name)
        else:
            handler = getattr(self, f"_items_{table_name}")
        report = ObjectReport(table_name, ENDPOINTS.get(table_name, CONFIG))
        self.reports[table_name] = report
        batch = Batch()
        position = 0
        for item in handler(cursor):
            position += 1
            if item.skip:
                report.skipped += 1
                continue
            typed, problems = self._convert(obj, item.values)
            if problems:
                report.rejected += 1
                batch.rejected.append(
                    {
                        "object": table_name,
                        "source_file": item.endpoint,
                        "row_number": position,
                        "field": ", ".join(p[0] for p in problems),
                        "reason": "; ".join(f"{f}: {why}" for f, why in problems),
                        "raw_record": json.dumps(item.raw, ensure_ascii=False, default=str, sort_keys=True),
                    }
                )
            else:
                report.rows += 1
                typed["_is_deleted"] = item.deleted
                if item.extra is not None:
                    typed["_extra"] = item.extra
                else:
                    used = item.used | set(obj.field_names)
                    typed["_extra"] = {k: v for k, v in item.raw.items() if k not in used}
                typed["_source_file"] = item.endpoint
                typed["_source_row"] = position
                batch.rows.append(typed)
            if len(batch.rows) + len(batch.rejected) >= batch_size:
                yield batch
                batch = Batch()
        if batch.rows or batch.rejected:
            yield batch

    def _convert(self, obj: RawObject, values: dict[str, Any]):
        typed: dict[str, Any] = {}
        problems: list[tuple[str, str]] = []
        for f in obj.fields:
            try:
                typed[f.name] = _parse(f, values.get(f.name), self.bounds)
            except ValueProblem as exc:
                problems.append((f.name, str(exc)))
        return typed, problems

    @staticmethod
    def _values(obj_name: str, record: Mapping[str, Any], **overrides: Any) -> dict[str, Any]:
        """The record's values of the table's declared fields (same names), plus derived ones."""
        values = {name: record.get(name) for name in TABLES[obj_name].field_names}
        values.update(overrides)
        return values

    def _advance(self, table_name: str, records: Iterable[Mapping[str, Any]]) -> None:
        """The table's cursor becomes the highest update_time seen (rejected records included: they are kept)."""
        best = None
        for r in records:
            try:
                ts = parse_timestamp(r.get("update_time")) if r.get("update_time") else None
            except ValueProblem:
                continue
            if ts is not None and (best is None or ts > best):
                best = ts
        current = self.cursors.get(table_name)
        if best is not None and (current is None or cursor_of(best) > current):
            self.cursors[table_name] = cursor_of(best)

    # -- fetching --------------------------------------------------------------------------

    def _v2_list(self, path: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        query = {"limit": self.config.page_size, **(params or {})}
        for page in self.http.pages(path, query, cursor_paginator()):
            yield from page

    def _changed(self, path: str, since: str | None, extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Records updated since the cursor, oldest change first (cached: several tables derive from one listing)."""
        key = (path, since)
        if key not in self._listings:
            params: dict[str, Any] = {"sort_by": "update_time", "sort_direction": "asc", **(extra or {})}
            if since:
                params["updated_since"] = since
            self._listings[key] = list(self._v2_list(path, params))
        return self._listings[key]

    def _deals(self, since: str | None) -> list[dict[str, Any]]:
        statuses = self.config.deal_statuses
        return self._changed("/api/v2/deals", since, {"status": statuses} if statuses else None)

    def _activities(self, since: str | None) -> list[dict[str, Any]]:
        return self._changed("/api/v2/activities", since)

    def company_domain(self) -> str | None:
        if self._company is None:
            me = self.http.get("/v1/users/me").get("data") or {}
            self._company = me.get("company_domain") if isinstance(me, dict) else None
        return self._company

    def deal_url(self, deal_id: Any) -> str | None:
        company = self.company_domain()
        return f"https://{company}.pipedrive.com/deal/{deal_id}" if company and deal_id is not None else None

    # -- pipelines and stages --------------------------------------------------------------

    def _pipeline_records(self) -> list[dict[str, Any]]:
        if self._pipelines is None:
            ids = self.config.pipeline_ids
            self._pipelines = [p for p in self._v2_list("/api/v2/pipelines") if ids is None or p.get("id") in ids]
        return self._pipelines

    def _stage_records(self) -> list[dict[str, Any]]:
        if self._stages is None:
            ids = self.config.pipeline_ids
            self._stages = [s for s in self._v2_list("/api/v2/stages") if ids is None or s.get("pipeline_id") in ids]
        return self._stages

    def _stage_problem(self, stage_id: Any) -> _Problem | None:
        """Why a deal's stage id cannot be used (None: it can): it must be one of the fetched stages."""
        sid = _ref_id(stage_id)
        if sid in (None, ""):
            return _Problem("missing required value")
        known = {str(s.get("id")) for s in self._stage_records()}
        if str(sid) not in known:
            return _Problem(f"unknown stage id {sid!r}")
        return None

    def _items_pipelines(self, cursor: str | None) -> Iterator[_Item]:
        for p in self._pipeline_records():
            yield _Item(raw=p, values=self._values("pipelines", p), endpoint=ENDPOINTS["pipelines"],
                        used=frozenset({"is_deleted"}), deleted=_truthy(p.get("is_deleted")))

    def _items_stages(self, cursor: str | None) -> Iterator[_Item]:
        for s in self._stage_records():
            yield _Item(raw=s, values=self._values("stages", s), endpoint=ENDPOINTS["stages"],
                        used=frozenset({"is_deleted"}), deleted=_truthy(s.get("is_deleted")))

    # -- users -----------------------------------------------------------------------------

    def _all_users(self) -> list[dict[str, Any]]:
        if self._users is None:
            self._users = [u for u in (self.http.get("/v1/users").get("data") or []) if isinstance(u, dict)]
        return self._users

    def _items_users(self, cursor: str | None) -> Iterator[_Item]:
        for u in self._all_users():
            yield _Item(raw=u, values=self._values("users", u), endpoint=ENDPOINTS["users"])

    # -- organizations and persons ---------------------------------------------------------

    def _organizations(self, since: str | None) -> list[dict[str, Any]]:
        return self._changed("/api/v2/organizations", since)

    def _persons(self, since: str | None) -> list[dict[str, Any]]:
        return self._changed("/api/v2/persons", since)

    def _items_organizations(self, cursor: str | None) -> Iterator[_Item]:
        orgs = self._organizations(cursor)
        for o in orgs:
            labels = o.get("label_ids") if isinstance(o.get("label_ids"), list) else (
                [o["label"]] if o.get("label") not in (None, "") else [])
            yield _Item(
                raw=o,
                values=self._values("organizations", o, label_ids=",".join(str(x) for x in labels) or None),
                endpoint=ENDPOINTS["organizations"],
                used=frozenset({"label", "is_deleted", "custom_fields"} | set(_custom_fields(o))),
                deleted=_truthy(o.get("is_deleted")),
            )
        self._advance("organizations", orgs)

    def _custom_items(self, table: str, id_key: str, records: list[dict[str, Any]]) -> Iterator[_Item]:
        for r in records:
            for key, value in _custom_fields(r).items():
                yield _Item(
                    raw={"id": r.get("id"), "field_key": key, "value": value},
                    values={id_key: r.get("id"), "field_key": key, "value": _custom_text(value)},
                    endpoint=ENDPOINTS[table], extra={}, deleted=_truthy(r.get("is_deleted")),
                )

    def _items_organization_custom_fields(self, cursor: str | None) -> Iterator[_Item]:
        orgs = self._organizations(cursor)
        yield from self._custom_items("organization_custom_fields", "org_id", orgs)
        self._advance("organization_custom_fields", orgs)

    def _items_persons(self, cursor: str | None) -> Iterator[_Item]:
        persons = self._persons(cursor)
        for p in persons:
            email = p.get("primary_email") or _primary(p.get("emails", p.get("email")))
            yield _Item(
                raw=p,
                values=self._values("persons", p, primary_email=email),
                endpoint=ENDPOINTS["persons"],
                used=frozenset({"emails", "email", "is_deleted", "custom_fields"} | set(_custom_fields(p))),
                deleted=_truthy(p.get("is_deleted")),
            )
        self._advance("persons", persons)

    def _items_person_custom_fields(self, cursor: str | None) -> Iterator[_Item]:
        persons = self._persons(cursor)
        yield from self._custom_items("person_custom_fields", "person_id", persons)
        self._advance("person_custom_fields", persons)

    # -- deals -----------------------------------------------------------------------------

    def _in_scope(self, deal: Mapping[str, Any]) -> bool:
        ids = self.config.pipeline_ids
        return ids is None or deal.get("pipeline_id") in ids

    @staticmethod
    def _deal_deleted(deal: Mapping[str, Any]) -> bool:
        return _truthy(deal.get("is_deleted")) or deal.get("status") == "deleted" or deal.get("active") is False

    def _items_deals(self, cursor: str | None) -> Iterator[_Item]:
        deals = self._deals(cursor)
        for d in deals:
            values = self._values("deals", d, owner_id=d.get("owner_id", d.get("user_id")))
            if d.get("status") not in ("won", "lost"):  # won and lost deals land in the won/lost stage
                problem = self._stage_problem(d.get("stage_id"))
                if problem is not None:
                    values["stage_id"] = problem
            yield _Item(
                raw=d, values=values, endpoint=ENDPOINTS["deals"], used=frozenset({"is_deleted", "user_id"}),
                deleted=self._deal_deleted(d), skip=not self._in_scope(d),
            )
        self._advance("deals", deals)

    def changelog(self, deal_id: Any) -> list[dict[str, Any]]:
        """The deal's field changes as ``{field_key, old_value, new_value, time, raw}``, oldest first."""
        key = str(deal_id)
        if key not in self._history:
            try:
                entries = self._fetch_changelog(deal_id)
            except PipedriveError as exc:
                if exc.status not in (404, 410):
                    raise
                log.warning("deal %s: no change log (%s); only its creation stage lands", deal_id, exc)
                entries = []

            def when(e: dict[str, Any]) -> tuple:
                try:
                    return (0, parse_timestamp(e["time"]))
                except (ValueProblem, TypeError):
                    return (1, dt.datetime.max)

            entries.sort(key=when)  # stable: same-second changes keep the API's order
            self._history[key] = entries
        return self._history[key]

    def _fetch_changelog(self, deal_id: Any) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        limit = self.config.page_size
        if self.config.history_endpoint == "flow":
            path = f"/v1/deals/{deal_id}/flow"
            for page in self.http.pages(path, {"limit": limit}, offset_paginator(limit)):
                for item in page:
                    if item.get("object") != "dealChange":
                        continue
                    data = item.get("data") or {}
                    entries.append({"field_key": data.get("field_key"), "old_value": data.get("old_value"),
                                    "new_value": data.get("new_value"),
                                    "time": data.get("log_time") or item.get("timestamp"), "raw": data})
        else:
            path = f"/v1/deals/{deal_id}/changelog"
            for page in self.http.pages(path, {"limit": limit}, cursor_paginator()):
                for e in page:
                    entries.append({"field_key": e.get("field_key"), "old_value": e.get("old_value"),
                                    "new_value": e.get("new_value"), "time": e.get("time") or e.get("log_time"),
                                    "raw": e})
        return entries

    def _items_deal_changes(self, cursor: str | None) -> Iterator[_Item]:
        endpoint = ENDPOINTS["deal_changes"].replace("changelog", self.config.history_endpoint)
        deals = self._deals(cursor)
        for d in deals:
            if not self._in_scope(d) or self._deal_deleted(d) or d.get("id") is None:
                continue  # a deleted deal's change log is not fetched (Pipedrive may no longer have it)
            did = d["id"]
            seen: dict[str, int] = {}
            for seq, e in enumerate(self.changelog(did), start=1):
                raw = e["raw"]
                cid = f"{did}:{e['field_key']}:{e['time']}"
                seen[cid] = seen.get(cid, 0) + 1
                if seen[cid] > 1:  # two changes of one field in the same second
                    cid = f"{cid}:{seen[cid]}"
                new = e["new_value"]
                problem = self._stage_problem(new) if e["field_key"] == "stage_id" and new not in (None, "") else None
                yield _Item(
                    raw=raw,
                    values={"id": cid, "deal_id": did, "field_key": e["field_key"],
                            "old_value": e["old_value"], "new_value": problem or new, "log_time": e["time"],
                            "seq": seq, "actor_user_id": raw.get("actor_user_id", raw.get("user_id")),
                            "change_source": raw.get("change_source")},
                    endpoint=endpoint.format(id=did),
                    used=frozenset({"field_key", "old_value", "new_value", "time", "log_time", "actor_user_id",
                                    "user_id", "change_source", "item_id"}),
                )
        self._advance("deal_changes", deals)

    # -- activities ------------------------------------------------------------------------

    @staticmethod
    def _activity_deleted(a: Mapping[str, Any]) -> bool:
        return _truthy(a.get("is_deleted")) or a.get("active_flag") is False

    def _items_activities(self, cursor: str | None) -> Iterator[_Item]:
        c = self.config
        acts = self._activities(cursor)
        for a in acts:
            done_at = a.get("marked_as_done_time") or a.get("done_time")
            values = self._values(
                "activities", a, owner_id=a.get("owner_id", a.get("user_id")), marked_as_done_time=done_at,
                due_date=str(a["due_date"])[:10] if a.get("due_date") else None, due_time=a.get("due_time") or None,
            )
            if not a.get("due_date") and not done_at:
                values["due_date"] = _Problem("no due date or done time")
            if values["due_time"] is not None:
                values["due_time"] = _clock(values["due_time"])
            type_key = str(a.get("type") or "").strip().lower()
            if not type_key:
                values["type"] = _Problem("missing required value")
            elif c.activity_type_default is None and type_key not in c.activity_types:
                values["type"] = _Problem(f"activity type {a.get('type')!r} is not mapped (config.activity_types)")
            yield _Item(
                raw=a, values=values, endpoint=ENDPOINTS["activities"],
                used=frozenset({"user_id", "done_time", "is_deleted", "active_flag", "participants"}),
                deleted=self._activity_deleted(a),
            )
        self._advance("activities", acts)

    def _items_activity_participants(self, cursor: str | None) -> Iterator[_Item]:
        acts = self._activities(cursor)
        for a in acts:
            participants = [p for p in (a.get("participants") or []) if isinstance(p, dict)]
            if not participants and a.get("person_id") is not None:
                participants = [{"person_id": a.get("person_id"), "primary": True}]
            seen: set[str] = set()
            for p in participants:
                pid = _ref_id(p.get("person_id"))
                if str(pid) in seen:
                    continue
                seen.add(str(pid))
                yield _Item(
                    raw={"activity_id": a.get("id"), **p},
                    values={"activity_id": a.get("id"), "person_id": pid,
                            "primary": p.get("primary", p.get("primary_flag"))},
                    endpoint=ENDPOINTS["activity_participants"],
                    extra={k: v for k, v in p.items() if k not in ("person_id", "primary", "primary_flag")},
                    deleted=self._activity_deleted(a),
                )
        self._advance("activity_participants", acts)

    # -- the mapping configuration as tables -----------------------------------------------

    def config_rows(self, table_name: str) -> list[dict[str, Any]]:
        """The rows of one ``map_*`` table, from the config (the company domain may be asked of the API)."""
        c = self.config
        if table_name == "map_settings":
            settings = {
                "won_stage": c.won_stage, "lost_stage": c.lost_stage, "stage_label": c.stage_label,
                "company_domain": self.company_domain(),
                "managers_from": "admins" if c.manager_user_ids is None else "config",
                "default_manager_id": c.default_manager_id, "managers_are_reps": c.managers_are_reps,
                "activity_type_default": c.activity_type_default, "contact_title_field": c.contact_title_field,
            }
            return [{"key": k, "value": None if v is None else (str(v).lower() if isinstance(v, bool) else str(v))}
                    for k, v in settings.items()]
        if table_name == "map_stages":
            return [{"stage": name, "stage_order": o.order, "is_closed": o.closed, "is_won": o.won}
                    for name, o in c.stage_overrides.items()]
        if table_name == "map_users":
            managers = set(c.manager_user_ids or ())
            ids = sorted(managers | set(c.rep_manager) | set(c.rep_segment) | set(c.slack_user_ids))
            return [{"user_id": uid,
                     "is_manager": None if c.manager_user_ids is None else uid in managers,
                     "manager_id": c.rep_manager.get(uid), "segment": c.rep_segment.get(uid),
                     "slack_user_id": c.slack_user_ids.get(uid)} for uid in ids]
        if table_name == "map_custom_fields":
            keys = [("organization", "segment", c.account_segment_field),
                    ("organization", "employees", c.account_employees_field),
                    ("organization", "industry", c.account_industry_field),
                    ("person", "buying_role", c.buying_role_field),
                    ("person", "title", c.contact_title_field if c.contact_title_field != "job_title" else None)]
            return [{"entity": e, "purpose": p, "field_key": k} for e, p, k in keys if k]
        if table_name == "map_segment_bands":
            bands = [(below, segment) for below, segment in c.segment_thresholds] + [(None, c.segment_above)]
            return [{"band": i, "segment": seg, "below_employees": below} for i, (below, seg) in enumerate(bands, 1)]
        if table_name == "map_org_labels":
            return [{"label_id": str(k), "tag": v} for k, v in c.org_labels.items()]
        if table_name == "map_buying_role_options":
            return [{"option_id": str(k), "label": v} for k, v in c.buying_role_options.items()]
        if table_name == "map_buying_roles":
            order = {role: i for i, role in enumerate(c.buying_role_priority, start=1)}
            roles = {label.strip().lower(): role for label, role in c.buying_roles.items()}
            return [{"source_value": label, "buying_role": role, "priority": order.get(role, len(order) + 1)}
                    for label, role in roles.items()]
        if table_name == "map_history_fields":
            return [{"field_key": k, "field_name": v} for k, v in c.history_fields.items()]
        if table_name == "map_activity_types":
            types = {k.strip().lower(): v for k, v in c.activity_types.items()}
            return [{"type_key": k, "activity_type": v} for k, v in types.items()]
        raise KeyError(table_name)

    def _config_items(self, table_name: str) -> Callable[[str | None], Iterator[_Item]]:
        def items(cursor: str | None) -> Iterator[_Item]:
            for row in self.config_rows(table_name):
                yield _Item(raw=row, values=row, endpoint=CONFIG, extra={})

        return items
