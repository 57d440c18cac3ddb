"""Pipedrive as an incremental, read-only CRM source in the canonical landed shape.

Endpoints (all GET): ``/api/v2/pipelines``, ``/api/v2/stages``, ``/v1/users``,
``/api/v2/organizations``, ``/api/v2/persons``, ``/api/v2/deals``,
``/api/v2/activities`` (v2: ``updated_since`` filter, ``cursor`` paging) and
``/v1/deals/{id}/changelog`` (or ``/flow``) for stage and field history.

Incremental contract (``connectors.landing.CrmSource``): each object's cursor is
the highest ``update_time`` seen (of the deals, for the histories; of the
activities, for their contacts); the next run asks only for records updated since
(Pipedrive's filter is inclusive, so the boundary record comes again and merges by
key). Stages and users are small and carry no update filter, so they are read in
full every time. A record Pipedrive reports deleted lands with ``_is_deleted``.

A record that cannot be used (missing id, unparseable date, negative value, unknown
stage, ...) comes out in ``Batch.rejected`` with the endpoint, its position in the
stream, the field(s), the reason and the record as read: never dropped, never a crash.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.csv_folder import Batch, ObjectReport
from connectors.values import ValueProblem, parse_value, stage_lookup
from connectors.pipedrive.client import (
    PipedriveError,
    PipedriveReader,
    log,
    company_from_base_url,
    cursor_paginator,
    offset_paginator,
)
from connectors.pipedrive.config import PipedriveConfig
from connectors.schema import RAW_OBJECTS, STAGE, Field, RawObject

DEFAULT_BASE_URL = "https://api.pipedrive.com"

ENDPOINTS = {
    "stages": "GET /api/v2/stages",
    "managers": "GET /v1/users",
    "reps": "GET /v1/users",
    "accounts": "GET /api/v2/organizations",
    "contacts": "GET /api/v2/persons",
    "opportunities": "GET /api/v2/deals",
    "stage_history": "GET /v1/deals/{id}/changelog",
    "field_history": "GET /v1/deals/{id}/changelog",
    "activities": "GET /api/v2/activities",
    "activity_contacts": "GET /api/v2/activities",
}


class _Problem:
    """A value already known to be unusable (e.g. a stage id no stage has): parsing it reports why."""

    def __init__(self, why: str):
        self.why = why


@dataclass
class _Item:
    raw: Mapping[str, Any]
    values: dict[str, Any]
    endpoint: str
    used: frozenset[str] | None = None  # source keys mapped to canonical fields (the rest go to _extra)
    deleted: bool = False
    skip: bool = False
    extra: dict[str, Any] | None = None  # explicit _extra (derived rows)


@dataclass
class _StageCatalog:
    label_by_id: dict[int, str]
    pipeline_by_stage: dict[int, int]
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def names(self) -> set[str]:
        return {r["stage"] for r in self.rows}


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


def _parse(f: Field, value: Any, stage_names: set[str] | None) -> Any:
    if isinstance(value, _Problem):
        raise ValueProblem(value.why)
    return parse_value(
        f, value, parse_date=parse_date, parse_timestamp=parse_timestamp, stages=stage_lookup(stage_names)
    )


def _ref_id(value: Any) -> Any:
    """v1 embeds related objects (``{"value": 7, "name": ...}`` or ``{"id": 7, ...}``); v2 gives the bare id."""
    if isinstance(value, dict):
        return value.get("value", value.get("id"))
    return value


def _custom(record: Mapping[str, Any], key: str | None) -> Any:
    """A custom field: v2 keeps them under ``custom_fields``, v1 at the top level."""
    if not key:
        return None
    custom = record.get("custom_fields")
    if isinstance(custom, dict) and key in custom:
        value = custom[key]
    else:
        value = record.get(key)
    if isinstance(value, dict):  # monetary / address / option objects
        value = value.get("value", value.get("label", value))
    return value


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
    """Pipedrive through its REST API: read-only (GET only), incremental, in the canonical shape."""

    incremental = True

    def __init__(self, api_token: str, base_url: str = DEFAULT_BASE_URL, config: PipedriveConfig | None = None):
        self.config = config or PipedriveConfig()
        self.base_url = base_url.rstrip("/")
        c = self.config
        self.http = PipedriveReader(
            api_token, self.base_url, token_in=c.token_in, timeout_s=c.timeout_s, max_attempts=c.max_attempts,
            backoff_factor=c.backoff_factor, max_retry_delay_s=c.max_retry_delay_s,
        )
        self.reports: dict[str, ObjectReport] = {}
        self.cursors: dict[str, str] = {}
        self._company = c.company_domain or company_from_base_url(self.base_url)
        self._catalog: _StageCatalog | None = None
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

    # -- the CrmSource protocol ------------------------------------------------------------

    def read(self, object_name: str, batch_size: int = 1000, cursor: str | None = None) -> Iterator[Batch]:
        obj = RAW_OBJECTS[object_name]
        handler: Callable[[str | None], Iterable[_Item]] | None = getattr(self, f"_items_{object_name}", None)
        if handler is None:  # quotas: Pipedrive has no quota object
            self.reports[object_name] = ObjectReport(object_name, None, present=False)
            return
        report = ObjectReport(object_name, ENDPOINTS[object_name])
        self.reports[object_name] = report
        stage_names = self._stages().names if any(f.type == STAGE for f in obj.fields) else None
        batch = Batch()
        position = 0
        for item in handler(cursor):
            position += 1
            if item.skip:
                report.skipped += 1
                continue
            typed, problems = self._convert(obj, item.values, stage_names)
            if problems:
                report.rejected += 1
                batch.rejected.append(
                    {
                        "object": object_name,
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
                    used = item.used or frozenset()
                    typed["_extra"] = {k: v for k, v in item.raw.items() if k not in used}
                typed["_source_file"] = item.endpoint
                typed["_source_row"] = position
                batch.rows.append(typed)
            if len(batch.rows) + len(batch.rejected) >= batch_size:
                yield batch
                batch = Batch()
        if batch.rows or batch.rejected:
            yield batch

    @staticmethod
    def _convert(obj: RawObject, values: dict[str, Any], stage_names: set[str] | None):
        typed: dict[str, Any] = {}
        problems: list[tuple[str, str]] = []
        for f in obj.fields:
            try:
                typed[f.name] = _parse(f, values.get(f.name), stage_names)
            except ValueProblem as exc:
                problems.append((f.name, str(exc)))
        return typed, problems

    def _advance(self, object_name: str, records: Iterable[Mapping[str, Any]]) -> None:
        """The object's cursor becomes the highest update_time seen (rejected records included: they are kept)."""
        best = None
        for r in records:
            try:
                ts = parse_timestamp(r.get("update_time")) if r.get("update_time") else None
            except ValueProblem:
                continue
            if ts is not None and (best is None or ts > best):
                best = ts
        current = self.cursors.get(object_name)
        if best is not None and (current is None or cursor_of(best) > current):
            self.cursors[object_name] = cursor_of(best)

    # -- fetching --------------------------------------------------------------------------

    def _v2_list(self, path: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        query = {"limit": self.config.page_size, **(params or {})}
        for page in self.http.pages(path, query, cursor_paginator()):
            yield from page

    def _changed(self, path: str, since: str | None, extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Records updated since the cursor, oldest change first (cached: several objects derive from one listing)."""
        key = (path, since)
        if key not in self._listings:
            params: dict[str, Any] = {"sort_by": "update_time", "sort_direction": "asc", **(extra or {})}
            if since:
                params["updated_since"] = since
            self._listings[key] = list(self._v2_list(path, params))
        return self._listings[key]

    def _deals(self, since: str | None) -> list[dict[str, Any]]:
        return self._changed("/api/v2/deals", since, {"status": self.config.deal_statuses} if self.config.deal_statuses else None)

    def _activities(self, since: str | None) -> list[dict[str, Any]]:
        return self._changed("/api/v2/activities", since)

    def company_domain(self) -> str | None:
        if self._company is None:
            me = self.http.get("/v1/users/me").get("data") or {}
            self._company = me.get("company_domain") if isinstance(me, dict) else None
        return self._company

    # -- stages ----------------------------------------------------------------------------

    def _stages(self) -> _StageCatalog:
        if self._catalog is None:
            c = self.config
            pipelines = {p["id"]: p for p in self._v2_list("/api/v2/pipelines") if isinstance(p.get("id"), int)}
            stages = [s for s in self._v2_list("/api/v2/stages") if isinstance(s.get("id"), int)]
            if c.pipeline_ids is not None:
                stages = [s for s in stages if s.get("pipeline_id") in c.pipeline_ids]

            def order(s: dict[str, Any]) -> tuple:
                p = pipelines.get(s.get("pipeline_id")) or {}
                return (p.get("order_nr") or 0, s.get("pipeline_id") or 0, s.get("order_nr") or 0, s["id"])

            stages.sort(key=order)
            pipelines_of_name: dict[str, set] = {}
            for s in stages:
                pipelines_of_name.setdefault(str(s.get("name")), set()).add(s.get("pipeline_id"))

            def label(s: dict[str, Any]) -> str:
                name = str(s.get("name") or f"stage {s['id']}")
                qualify = c.stage_label == "pipeline_stage" or (
                    c.stage_label == "auto" and len(pipelines_of_name.get(name, ())) > 1
                )
                if qualify:
                    pname = (pipelines.get(s.get("pipeline_id")) or {}).get("name") or f"pipeline {s.get('pipeline_id')}"
                    return f"{pname} / {name}"
                return name

            catalog = _StageCatalog(label_by_id={}, pipeline_by_stage={})
            seen: set[str] = set()
            for s in stages:
                name = label(s)
                catalog.label_by_id[s["id"]] = name
                catalog.pipeline_by_stage[s["id"]] = s.get("pipeline_id")
                if name in seen:
                    continue
                seen.add(name)
                catalog.rows.append(
                    {"raw": s, "stage": name, "deleted": _truthy(s.get("is_deleted"))}
                )
            for name, won in ((c.won_stage, True), (c.lost_stage, False)):
                if name not in seen:
                    catalog.rows.append({"raw": {"status": "won" if won else "lost"}, "stage": name, "closed": True, "won": won})
                    seen.add(name)
            for i, row in enumerate(catalog.rows, start=1):
                row["order"] = i
            self._catalog = catalog
        return self._catalog

    def stage_of(self, stage_id: Any) -> str | _Problem:
        catalog = self._stages()
        sid = _ref_id(stage_id)
        if sid is None:
            return _Problem("missing required value")
        try:
            return catalog.label_by_id[int(sid)]
        except (KeyError, TypeError, ValueError):
            return _Problem(f"unknown stage id {sid!r}")

    def _items_stages(self, cursor: str | None) -> Iterator[_Item]:
        for row in self._stages().rows:
            yield _Item(
                raw=row["raw"],
                values={"stage": row["stage"], "stage_order": row["order"],
                        "is_closed": row.get("closed", False), "is_won": row.get("won", False)},
                endpoint="GET /api/v2/stages" if "id" in row["raw"] else "config",
                used=frozenset({"name", "order_nr"}),
                deleted=row.get("deleted", False),
            )

    # -- users -----------------------------------------------------------------------------

    def _all_users(self) -> list[dict[str, Any]]:
        if self._users is None:
            self._users = [u for u in (self.http.get("/v1/users").get("data") or []) if isinstance(u, dict)]
        return self._users

    def _manager_ids(self) -> set[int]:
        if self.config.manager_user_ids is not None:
            return set(self.config.manager_user_ids)
        return {u["id"] for u in self._all_users() if _truthy(u.get("is_admin")) and isinstance(u.get("id"), int)}

    _USER_KEYS = frozenset({"id", "name", "email", "created", "active_flag"})

    def _items_managers(self, cursor: str | None) -> Iterator[_Item]:
        managers = self._manager_ids()
        for u in self._all_users():
            if u.get("id") not in managers:
                continue
            yield _Item(
                raw=u,
                values={"manager_id": u.get("id"), "manager_name": u.get("name"), "email": u.get("email"),
                        "slack_user_id": self.config.slack_user_ids.get(u.get("id"))},
                endpoint=ENDPOINTS["managers"], used=self._USER_KEYS,
            )

    def _items_reps(self, cursor: str | None) -> Iterator[_Item]:
        c = self.config
        managers = self._manager_ids()
        sole_manager = next(iter(managers)) if len(managers) == 1 else None
        for u in self._all_users():
            uid = u.get("id")
            if uid in managers and not c.managers_are_reps:
                continue
            manager = c.rep_manager.get(uid, c.default_manager_id if c.default_manager_id is not None else sole_manager)
            yield _Item(
                raw=u,
                values={"rep_id": uid, "rep_name": u.get("name"), "email": u.get("email"),
                        "slack_user_id": c.slack_user_ids.get(uid),
                        "manager_id": manager if manager != uid else None,
                        "segment": c.rep_segment.get(uid), "hired_on": u.get("created"),
                        "is_active": u.get("active_flag")},
                endpoint=ENDPOINTS["reps"], used=self._USER_KEYS,
            )

    # -- organizations and persons ---------------------------------------------------------

    def _items_accounts(self, cursor: str | None) -> Iterator[_Item]:
        c = self.config
        orgs = self._changed("/api/v2/organizations", cursor)
        for o in orgs:
            employees = _custom(o, c.account_employees_field)
            segment = _custom(o, c.account_segment_field)
            if segment is None:
                size = employees if employees not in (None, "") else o.get("people_count")
                try:
                    segment = c.segment_for(int(float(size))) if size not in (None, "") else None
                except (TypeError, ValueError):
                    segment = None
            labels = o.get("label_ids") if isinstance(o.get("label_ids"), list) else ([o["label"]] if o.get("label") else [])
            tags = ";".join(c.org_labels.get(int(x), str(x)) if str(x).isdigit() else str(x) for x in labels) or None
            used = {"id", "name", "label_ids", "label"}
            yield _Item(
                raw=o,
                values={"account_id": o.get("id"), "account_name": o.get("name"), "segment": segment,
                        "industry": _custom(o, c.account_industry_field), "employees": employees, "tags": tags},
                endpoint=ENDPOINTS["accounts"], used=frozenset(used), deleted=_truthy(o.get("is_deleted")),
            )
        self._advance("accounts", orgs)

    def _buying_role(self, person: Mapping[str, Any]) -> str | None:
        c = self.config
        value = _custom(person, c.buying_role_field)
        if value in (None, ""):
            return None
        values = value if isinstance(value, list) else str(value).split(",") if isinstance(value, str) and "," in value else [value]
        labels = [str(c.buying_role_options.get(str(v).strip(), v)).strip() for v in values]
        roles = [c.buying_roles.get(label.lower(), label.lower().replace(" ", "_")) for label in labels if label]
        return roles[0] if roles else None

    def _items_contacts(self, cursor: str | None) -> Iterator[_Item]:
        c = self.config
        persons = self._changed("/api/v2/persons", cursor)
        for p in persons:
            emails = p.get("emails", p.get("email"))
            title = p.get(c.contact_title_field) if c.contact_title_field in p else _custom(p, c.contact_title_field)
            yield _Item(
                raw=p,
                values={"contact_id": p.get("id"), "account_id": _ref_id(p.get("org_id")), "contact_name": p.get("name"),
                        "title": title, "buying_role": self._buying_role(p), "email": _primary(emails)},
                endpoint=ENDPOINTS["contacts"],
                used=frozenset({"id", "org_id", "name", "emails", "email", c.contact_title_field}),
                deleted=_truthy(p.get("is_deleted")),
            )
        self._advance("contacts", persons)

    # -- deals -----------------------------------------------------------------------------

    def _in_scope(self, deal: Mapping[str, Any]) -> bool:
        ids = self.config.pipeline_ids
        return ids is None or deal.get("pipeline_id") in ids

    @staticmethod
    def _deal_deleted(deal: Mapping[str, Any]) -> bool:
        return _truthy(deal.get("is_deleted")) or deal.get("status") == "deleted" or deal.get("active") is False

    def deal_url(self, deal_id: Any) -> str | None:
        company = self.company_domain()
        return f"https://{company}.pipedrive.com/deal/{deal_id}" if company and deal_id is not None else None

    _DEAL_KEYS = frozenset({
        "id", "title", "value", "add_time", "expected_close_date", "status", "won_time", "lost_time",
        "close_time", "owner_id", "user_id", "org_id", "stage_id",
    })

    def _items_opportunities(self, cursor: str | None) -> Iterator[_Item]:
        c = self.config
        deals = self._deals(cursor)
        for d in deals:
            status = d.get("status")
            if status == "won":
                stage: Any = c.won_stage
            elif status == "lost":
                stage = c.lost_stage
            else:
                stage = self.stage_of(d.get("stage_id"))
            closed_at = d.get("won_time") if status == "won" else d.get("lost_time") if status == "lost" else None
            yield _Item(
                raw=d,
                values={
                    "opportunity_id": d.get("id"), "account_id": _ref_id(d.get("org_id")),
                    "owner_rep_id": _ref_id(d.get("owner_id", d.get("user_id"))), "opportunity_name": d.get("title"),
                    "stage": stage, "amount": d.get("value"), "created_at": d.get("add_time"),
                    "close_date": d.get("expected_close_date"),
                    "is_closed": status in ("won", "lost") if status in ("open", "won", "lost") else None,
                    "is_won": status == "won" if status in ("open", "won", "lost") else None,
                    "closed_at": closed_at or (d.get("close_time") if status in ("won", "lost") else None),
                    "next_step": d.get("next_activity_subject"),
                    "source_url": self.deal_url(d.get("id")),
                },
                endpoint=ENDPOINTS["opportunities"], used=self._DEAL_KEYS | {"next_activity_subject"},
                deleted=self._deal_deleted(d), skip=not self._in_scope(d),
            )
        self._advance("opportunities", deals)

    # -- history from the change log -------------------------------------------------------

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

    def _history_deals(self, cursor: str | None) -> list[dict[str, Any]]:
        return [d for d in self._deals(cursor) if self._in_scope(d) and not self._deal_deleted(d) and d.get("id") is not None]

    def _items_stage_history(self, cursor: str | None) -> Iterator[_Item]:
        c = self.config
        endpoint = ENDPOINTS["stage_history"]
        for d in self._history_deals(cursor):
            did = d["id"]
            entries = self.changelog(did)
            stage_changes = [e for e in entries if e["field_key"] == "stage_id"]
            first = stage_changes[0] if stage_changes else None
            current = (first["old_value"] if first["old_value"] not in (None, "") else first["new_value"]) if first else d.get("stage_id")
            status = "open"
            yield _Item(
                raw={"deal": {k: d.get(k) for k in ("id", "stage_id", "add_time", "status")}, "event": "created"},
                values={"stage_history_id": f"{did}:created", "opportunity_id": did,
                        "stage": self.stage_of(current), "entered_at": d.get("add_time")},
                endpoint=endpoint.format(id=did), extra={"stage_id": current, "event": "created"},
            )
            saw_close = False
            for e in entries:
                key, new, old = e["field_key"], e["new_value"], e["old_value"]
                stage: Any = None
                if key == "stage_id":
                    if str(new) == str(current):
                        continue
                    current = new
                    if status == "open":
                        stage = self.stage_of(new)
                elif key == "status" and new != status:
                    if new in ("won", "lost"):
                        stage, saw_close = (c.won_stage if new == "won" else c.lost_stage), True
                    elif new == "open" and status in ("won", "lost"):
                        stage = self.stage_of(current)
                    status = new
                if stage is None:
                    continue
                at = e["time"]
                yield _Item(
                    raw=e["raw"],
                    values={"stage_history_id": f"{did}:{at}:{key}:{new}", "opportunity_id": did,
                            "stage": stage, "entered_at": at},
                    endpoint=endpoint.format(id=did), extra={"field_key": key, "old_value": old, "new_value": new},
                )
            final = d.get("status")
            if final in ("won", "lost") and not saw_close:  # e.g. a deal imported as won
                at = d.get("won_time") if final == "won" else d.get("lost_time")
                yield _Item(
                    raw={"deal": {k: d.get(k) for k in ("id", "status", "won_time", "lost_time", "close_time")}},
                    values={"stage_history_id": f"{did}:closed:{final}", "opportunity_id": did,
                            "stage": c.won_stage if final == "won" else c.lost_stage,
                            "entered_at": at or d.get("close_time")},
                    endpoint=endpoint.format(id=did), extra={"event": "closed", "status": final},
                )
        self._advance("stage_history", self._deals(cursor))

    def _items_field_history(self, cursor: str | None) -> Iterator[_Item]:
        fields = self.config.history_fields
        for d in self._history_deals(cursor):
            did = d["id"]
            seen: dict[str, int] = {}
            for e in self.changelog(did):
                name = fields.get(str(e["field_key"]))
                if name is None:
                    continue
                hid = f"{did}:{e['field_key']}:{e['time']}"
                seen[hid] = seen.get(hid, 0) + 1
                if seen[hid] > 1:  # two changes of one field in the same second
                    hid = f"{hid}:{seen[hid]}"
                yield _Item(
                    raw=e["raw"],
                    values={"field_history_id": hid, "opportunity_id": did, "field_name": name,
                            "old_value": e["old_value"], "new_value": e["new_value"], "changed_at": e["time"]},
                    endpoint=ENDPOINTS["field_history"].format(id=did), extra={"field_key": e["field_key"]},
                )
        self._advance("field_history", self._deals(cursor))

    # -- activities ------------------------------------------------------------------------

    def _activity_type(self, raw_type: Any) -> Any:
        key = str(raw_type or "").strip().lower()
        if not key:
            return None
        mapped = self.config.activity_types.get(key, self.config.activity_type_default)
        return mapped if mapped is not None else _Problem(f"activity type {raw_type!r} is not mapped (config.activity_types)")

    @staticmethod
    def _occurred_at(a: Mapping[str, Any]) -> Any:
        due_date, due_time = a.get("due_date"), a.get("due_time")
        if due_date:
            if due_time:
                time = str(due_time) if len(str(due_time)) > 5 else f"{due_time}:00"
                return f"{str(due_date)[:10]}T{time}"  # Pipedrive's due time is UTC
            return f"{str(due_date)[:10]}T00:00:00"
        return a.get("marked_as_done_time") or a.get("done_time") or _Problem("no due date or done time")

    @staticmethod
    def _activity_deleted(a: Mapping[str, Any]) -> bool:
        return _truthy(a.get("is_deleted")) or a.get("active_flag") is False

    def _items_activities(self, cursor: str | None) -> Iterator[_Item]:
        acts = self._activities(cursor)
        for a in acts:
            yield _Item(
                raw=a,
                values={"activity_id": a.get("id"), "opportunity_id": a.get("deal_id"),
                        "account_id": _ref_id(a.get("org_id")), "rep_id": _ref_id(a.get("owner_id", a.get("user_id"))),
                        "activity_type": self._activity_type(a.get("type")), "occurred_at": self._occurred_at(a),
                        "subject": a.get("subject")},
                endpoint=ENDPOINTS["activities"],
                used=frozenset({"id", "deal_id", "org_id", "owner_id", "user_id", "type", "subject"}),
                deleted=self._activity_deleted(a),
            )
        self._advance("activities", acts)

    def _items_activity_contacts(self, cursor: str | None) -> Iterator[_Item]:
        acts = self._activities(cursor)
        for a in acts:
            participants = a.get("participants") if isinstance(a.get("participants"), list) else []
            people = [_ref_id(p.get("person_id")) for p in participants if isinstance(p, dict)]
            if not people and a.get("person_id") is not None:
                people = [_ref_id(a.get("person_id"))]
            for pid in dict.fromkeys(people):
                yield _Item(
                    raw={"activity_id": a.get("id"), "person_id": pid},
                    values={"activity_id": a.get("id"), "contact_id": pid},
                    endpoint=ENDPOINTS["activity_contacts"], extra={},
                    deleted=self._activity_deleted(a),
                )
        self._advance("activity_contacts", acts)
