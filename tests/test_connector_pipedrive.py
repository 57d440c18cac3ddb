"""The Pipedrive connector against a local fake of its API.

Extraction (Python): native rows, paging, retries, drift, deletions, quarantine, the change log,
incremental runs, GET only. Mapping (dbt): the fake company landed with ``land_source`` and
``stg_pipedrive__*`` built once per configuration, asserting the canonical rows. Then the note
writer and a token that never leaks."""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import time
import traceback

import duckdb
import pytest

from agents.ledger import SendsHalted, open_ledger
from agents.review.channels import CannotCheck, OutboundMessage, OutcomeUnknown, PermanentSendError
from connectors.csv_folder import Batch
from connectors.landing import land_source
from connectors.pipedrive import PipedriveConfig, PipedriveError, PipedriveSource
from connectors.pipedrive.notes import PipedriveNoteWriter
from connectors.pipedrive.tables import DATASET, TABLES
from connectors.schema import DUCKDB_TYPES, RAW_OBJECTS
from tests.fakes.pipedrive_server import COMPANY, EMP_FIELD, ROLE_FIELD, TOKEN, FakePipedrive
from tests.support import dbt_build

GATES = {"eval": True, "shadow_agreement": True}
T0 = dt.datetime(2026, 10, 1)


def _config(**kw) -> PipedriveConfig:
    base = dict(
        page_size=2, backoff_factor=0.01, max_retry_delay_s=2.0, account_employees_field=EMP_FIELD,
        buying_role_field=ROLE_FIELD, buying_role_options={"7": "Decision Maker", "8": "Champion"},
    )
    return PipedriveConfig(**{**base, **kw})


def _read_all(source: PipedriveSource, cursors: dict[str, str] | None = None) -> dict[str, Batch]:
    out = {}
    for name in TABLES:
        merged = Batch()
        for batch in source.read(name, batch_size=3, cursor=(cursors or {}).get(name)):
            merged.rows.extend(batch.rows)
            merged.rejected.extend(batch.rejected)
        out[name] = merged
    return out


@pytest.fixture
def pd():
    with FakePipedrive.sample() as server:
        yield server


def _by(rows, *key):
    return {(r[key[0]] if len(key) == 1 else tuple(r[k] for k in key)): r for r in rows}


# --------------------------------------------------------------------------- the tables


def test_tables_follow_the_contract():
    fed = {t.feeds for t in TABLES.values()}
    assert fed == set(RAW_OBJECTS) - {"quotas"}  # every canonical object but quotas, nothing else
    assert DATASET == "raw_pipedrive"
    snapshots = {n for n, t in TABLES.items() if t.snapshot}
    assert snapshots == {"pipelines", "stages", "users"} | {n for n in TABLES if n.startswith("map_")}
    for t in TABLES.values():
        assert set(t.primary_key) <= set(t.field_names) and all(t.field(k).required for k in t.primary_key)


# --------------------------------------------------------------------------- extraction


def test_full_read_types_pages_retries_drift_deletions_and_quarantine(pd):
    pd.fail("/api/v2/deals", 429, headers={"Retry-After": "1"})  # the first deals page: rate limited once
    pd.fail("/api/v2/deals", 500, after=2)  # the third deals page: a server error once
    source = PipedriveSource(TOKEN, pd.base_url, _config())
    started = time.monotonic()
    got = _read_all(source)
    assert time.monotonic() - started >= 0.9  # Retry-After was honoured

    # pages followed: 8 deals at 2 a page, plus one retry each for the 429 and the 500
    deal_calls = pd.calls("/api/v2/deals")
    assert [c.status for c in deal_calls] == [429, 200, 200, 500, 200, 200]
    assert len({c.query.get("cursor") for c in deal_calls}) == 4
    assert deal_calls[0].query["status"] == "open,won,lost,deleted"
    # read-only, and the token travels in the header, never in a URL
    assert {c.method for c in pd.requests} == {"GET"}
    assert all("api_token" not in c.query and c.headers.get("x-api-token") == TOKEN for c in pd.requests)

    # native rows, named and typed as Pipedrive's fields
    assert [s["name"] for s in got["stages"].rows] == ["Qualified", "Demo", "Proposal", "Negotiation", "Renewal Review"]
    assert got["stages"].rows[4]["pipeline_id"] == "2" and got["stages"].rows[4]["order_nr"] == 1
    users = _by(got["users"].rows, "id")
    assert users["1"]["is_admin"] is True and users["3"]["active_flag"] is False
    assert users["2"]["created"] == dt.datetime(2025, 3, 1, 9) and users["2"]["_extra"] == {"role_id": 2, "lang": 1}
    orgs = _by(got["organizations"].rows, "id")
    assert orgs["101"]["label_ids"] == "5" and orgs["102"]["label_ids"] is None
    assert _by(got["organization_custom_fields"].rows, "org_id", "field_key")[("101", EMP_FIELD)]["value"] == "50"
    persons = _by(got["persons"].rows, "id")
    assert persons["202"]["primary_email"] == "bob@acme.test" and persons["201"]["job_title"] == "CFO"
    assert {(r["person_id"], r["value"]) for r in got["person_custom_fields"].rows} == {("201", "7"), ("202", "8"), ("203", None)}

    deals = _by(got["deals"].rows, "id")
    d = deals["1001"]
    assert (d["stage_id"], d["value"], d["owner_id"], d["org_id"], d["currency"]) == ("2", 12000.0, "2", "101", "USD")
    assert d["add_time"] == dt.datetime(2026, 8, 1, 9, 0) and d["expected_close_date"] == dt.date(2026, 10, 15)
    assert deals["1002"]["won_time"] == dt.datetime(2026, 9, 3, 12) and deals["1002"]["status"] == "won"
    assert deals["1004"]["_is_deleted"] is True and deals["1001"]["_is_deleted"] is False
    assert deals["1006"]["_extra"]["origin_channel"] == "webinar"  # a field only this record has
    assert "origin_channel" not in deals["1001"]["_extra"]
    assert deals["1001"]["_source_file"] == "GET /api/v2/deals" and deals["1001"]["_source_row"] == 1

    rejected = {json.loads(r["raw_record"])["id"]: r for r in got["deals"].rejected}
    assert set(rejected) == {1005, 1008}
    assert rejected[1005]["field"] == "value" and "negative amount" in rejected[1005]["reason"]
    assert rejected[1008]["reason"] == "stage_id: unknown stage id 99" and rejected[1008]["object"] == "deals"
    assert rejected[1008]["source_file"] == "GET /api/v2/deals" and rejected[1008]["row_number"] == 8
    assert source.reports["deals"].rows == 6 and source.reports["deals"].rejected == 2

    # the change log: every change of every live deal, in order, with a stable id
    changes = [(c["deal_id"], c["field_key"], c["old_value"], c["new_value"]) for c in got["deal_changes"].rows]
    assert [c for c in changes if c[0] == "1002"] == [
        ("1002", "stage_id", "1", "3"), ("1002", "stage_id", "3", "4"), ("1002", "value", "40000", "50000"),
        ("1002", "status", "open", "won")]
    assert ("1001", "title", "Acme", "Acme expansion") in changes  # not only the fields the mapping keeps
    assert "1004" not in {c[0] for c in changes}  # a deleted deal's change log is not fetched
    assert not pd.calls("/v1/deals/1004/changelog")
    first = got["deal_changes"].rows[0]
    assert first["id"] == "1001:stage_id:2026-08-10 10:00:00" and first["log_time"] == dt.datetime(2026, 8, 10, 10)
    assert first["seq"] == 1 and first["actor_user_id"] == "2"

    acts = _by(got["activities"].rows, "id")
    assert acts["3001"]["type"] == "meeting" and acts["3001"]["due_time"] == "14:00:00"
    assert acts["3003"]["due_time"] == "09:30:00" and acts["3002"]["due_time"] is None
    assert acts["3005"]["_is_deleted"] is True
    assert [r["reason"] for r in got["activities"].rejected] == ["due_date: no due date or done time"]
    pairs = {(r["activity_id"], r["person_id"]): r for r in got["activity_participants"].rows}
    assert set(pairs) == {("3001", "201"), ("3001", "202"), ("3002", "203"), ("3004", "201"), ("3005", "203")}
    assert pairs[("3005", "203")]["_is_deleted"] is True and pairs[("3001", "202")]["primary"] is False

    # the configuration as tables
    settings = {r["key"]: r["value"] for r in got["map_settings"].rows}
    assert settings["won_stage"] == "Won" and settings["company_domain"] == COMPANY and settings["managers_from"] == "admins"
    assert [(b["segment"], b["below_employees"]) for b in got["map_segment_bands"].rows] == [
        ("SMB", 200), ("Mid-Market", 1000), ("Enterprise", None)]
    roles = _by(got["map_buying_roles"].rows, "source_value")
    assert roles["economic buyer"]["buying_role"] == "decision_maker" and roles["economic buyer"]["priority"] == 1
    assert {r["_source_file"] for r in got["map_settings"].rows} == {"config"}

    assert source.cursors["deals"] == source.cursors["deal_changes"] == "2026-09-09T08:00:00Z"
    assert source.cursors["activities"] == "2026-08-28T11:00:00Z"
    assert not any(t.snapshot for t in (TABLES[n] for n in source.cursors))  # snapshots need no cursor
    with pytest.raises(KeyError):
        list(source.read("opportunities"))  # a canonical name is no Pipedrive table


def test_implausible_dates_and_amounts_are_quarantined_like_csv_rows(pd):
    """A 1900 placeholder close date, a 2099 one and a value typed in cents are refused with the CSV
    quarantine's words; the window and ceiling come from the config's plausibility."""
    deal = next(d for d in pd.data.deals if d["id"] == 1001)
    pd.data.deals += [
        {**deal, "id": 1101, "title": "Placeholder", "expected_close_date": "1900-01-01"},
        {**deal, "id": 1102, "title": "Far future", "expected_close_date": "2099-06-30"},
        {**deal, "id": 1103, "title": "Cents", "value": 25_000_000_000_000},
    ]
    got = _read_all(PipedriveSource(TOKEN, pd.base_url, _config()))
    bad = {json.loads(r["raw_record"])["id"]: r for r in got["deals"].rejected}
    assert bad[1101]["field"] == "expected_close_date"
    assert "date outside the plausible window 1990-01-01 to" in bad[1101]["reason"]
    assert "(plausibility): 1900-01-01" in bad[1101]["reason"]
    assert bad[1102]["field"] == "expected_close_date" and "outside the plausible window" in bad[1102]["reason"]
    assert bad[1103]["field"] == "value"
    assert "amount above the ceiling of 10,000,000,000 (plausibility.max_amount)" in bad[1103]["reason"]

    generous = PipedriveSource(TOKEN, pd.base_url, _config(plausibility={"max_amount": 1e14, "max_years_ahead": 80}))
    deals = _read_all(generous)["deals"]
    assert {"1102", "1103"} <= {r["id"] for r in deals.rows}
    assert 1101 in {json.loads(r["raw_record"])["id"] for r in deals.rejected}
    assert generous.max_quarantine_share == 0.2


def test_flow_endpoint_and_a_missing_change_log(pd):
    source = PipedriveSource(TOKEN, pd.base_url, _config(history_endpoint="flow", company_domain="acme"))
    changes = [r for b in source.read("deal_changes") for r in b.rows if r["deal_id"] == "1002"]
    assert [(c["field_key"], c["new_value"]) for c in changes] == [
        ("stage_id", "3"), ("stage_id", "4"), ("value", "50000"), ("status", "won")]
    assert changes[0]["_source_file"] == "GET /v1/deals/1002/flow"
    assert pd.calls("/v1/deals/1002/flow")[0].query["start"] == "0"
    pd.fail("/v1/deals/1001/changelog", 404)  # e.g. deleted between the listing and the change log
    lone = [r for b in PipedriveSource(TOKEN, pd.base_url, _config()).read("deal_changes") for r in b.rows]
    assert "1001" not in {r["deal_id"] for r in lone} and "1002" in {r["deal_id"] for r in lone}
    assert {r["key"]: r["value"] for b in source.read("map_settings") for r in b.rows}["company_domain"] == "acme"
    assert not pd.calls("/v1/users/me")  # the company domain came from the config


# --------------------------------------------------------------------------- incremental


def _change_things(pd: FakePipedrive) -> None:
    deal = next(d for d in pd.data.deals if d["id"] == 1001)
    deal.update(stage_id=3, value=15000, update_time="2026-09-20T10:00:00Z")
    pd.data.changelogs[1001].append({"field_key": "stage_id", "old_value": "2", "new_value": "3", "time": "2026-09-20 10:00:00"})
    pd.data.deals.append({**deal, "id": 1009, "title": "New deal", "stage_id": 1, "add_time": "2026-09-21T08:00:00Z",
                          "update_time": "2026-09-21T08:00:00Z"})
    gone = next(d for d in pd.data.deals if d["id"] == 1007)
    gone.update(is_deleted=True, status="deleted", update_time="2026-09-22T08:00:00Z")


def test_second_run_asks_only_for_changes(pd):
    first = PipedriveSource(TOKEN, pd.base_url, _config())
    _read_all(first)
    cursors = dict(first.cursors)
    _change_things(pd)
    pd.reset_calls()

    second = PipedriveSource(TOKEN, pd.base_url, _config())
    got = _read_all(second, cursors)
    deal_calls = pd.calls("/api/v2/deals")
    assert len(deal_calls) == 2  # one listing shared by deals and their change log; 3 records at 2 a page
    assert deal_calls[0].query["updated_since"] == "2026-09-09T08:00:00Z"
    deals = _by(got["deals"].rows, "id")
    assert set(deals) == {"1009", "1001", "1007"} and got["deals"].rejected[0]["row_number"] == 1  # 1008 again (boundary)
    assert deals["1001"]["stage_id"] == "3" and deals["1007"]["_is_deleted"] is True
    # change logs only of the changed, live deals
    assert {c.path for c in pd.calls("/v1/deals/*")} == {"/v1/deals/1001/changelog", "/v1/deals/1009/changelog", "/v1/deals/1008/changelog"}
    assert ("1001", "3") in {(c["deal_id"], c["new_value"]) for c in got["deal_changes"].rows}
    # nothing else changed: the other tables come back empty with their filter sent
    assert pd.calls("/api/v2/activities")[0].query["updated_since"] == cursors["activities"]
    assert pd.calls("/api/v2/organizations")[0].query["updated_since"] == cursors["organizations"]
    assert {r["id"] for r in got["activities"].rows} == set()  # 3006 (the boundary) is rejected again
    assert got["organizations"].rows[0]["id"] == "103" and len(got["organizations"].rows) == 1  # the boundary
    assert second.cursors["deals"] == "2026-09-22T08:00:00Z"
    assert second.cursors["activities"] == cursors["activities"]  # the boundary record keeps the cursor
    assert len(got["stages"].rows) == 5 and len(got["users"].rows) == 3  # snapshots: read whole again


# --------------------------------------------------------------------------- landing + dbt: the mapping

LINEAGE = ["_source_system", "_source_file", "_source_row", "_loaded_at", "_is_deleted"]

CUSTOM_YAML = f"""
page_size: 2
backoff_factor: 0.01
company_domain: acme
account_employees_field: {EMP_FIELD}
buying_role_field: {ROLE_FIELD}
buying_role_options: {{"7": Decision Maker, "8": Champion}}
buying_roles: {{champion: sponsor, decision maker: decision_maker}}
buying_role_priority: [sponsor, decision_maker]
won_stage: Closed Won
stage_overrides:
  Demo: {{order: 9}}
  Renewal Review: {{closed: true}}
manager_user_ids: [2]
rep_manager: {{3: 2}}
rep_segment: {{3: SMB}}
slack_user_ids: {{2: U2}}
segment_thresholds: [[60, Small]]
segment_above: Big
org_labels: {{5: Strategic}}
history_fields: {{title: opportunity_name}}
activity_types: {{demo_session: demo}}
activity_type_default: other
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Two warehouses built once for the module: the sample landed twice (the second landing
    incremental, after changes) with the default mapping, and the sample with a second pipeline
    sharing a stage name landed with a customised mapping (a YAML config)."""
    tmp = tmp_path_factory.mktemp("pipedrive")
    out = {"default": tmp / "default.duckdb", "custom": tmp / "custom.duckdb"}
    with FakePipedrive.sample() as server:
        land_source(PipedriveSource(TOKEN, server.base_url, _config()), out["default"], tmp / "work-default", "run-1", T0)
        _change_things(server)
        server.reset_calls()
        land_source(PipedriveSource(TOKEN, server.base_url, _config()), out["default"], tmp / "work-default", "run-2",
                    T0 + dt.timedelta(days=1))
        out["second_run_calls"] = list(server.requests)
    with FakePipedrive.sample() as server:
        server.data.stages.append({**server.data.stages[0], "id": 6, "pipeline_id": 2, "order_nr": 2})  # a second "Qualified"
        next(p for p in server.data.persons if p["id"] == 203)["custom_fields"][ROLE_FIELD] = [7, 8]  # two roles
        (tmp / "pipedrive.yml").write_text(CUSTOM_YAML)
        config = PipedriveConfig.load(tmp / "pipedrive.yml")
        land_source(PipedriveSource(TOKEN, server.base_url, config), out["custom"], tmp / "work-custom", "run-1", T0)
    out["dbt"] = {name: dbt_build(out[name], "stg_pipedrive__*") for name in ("default", "custom")}
    return out


def _query(warehouse, sql):
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql).fetchall()


def _model(warehouse, obj, columns, live_only=True):
    where = "where not _is_deleted" if live_only else ""
    return _query(warehouse, f"select {columns} from staging.stg_pipedrive__{obj} {where} order by all")


def test_models_have_exactly_the_canonical_columns(built):
    assert "PASS=" in built["dbt"]["default"] and "ERROR=0" in built["dbt"]["default"]
    for obj in RAW_OBJECTS:
        if obj == "quotas":
            continue
        cols = _query(built["default"], f"""select column_name, data_type from information_schema.columns
            where table_schema = 'staging' and table_name = 'stg_pipedrive__{obj}' order by ordinal_position""")
        expected = [(f.name, DUCKDB_TYPES[f.type]) for f in RAW_OBJECTS[obj].fields]
        expected += [("_source_system", "VARCHAR"), ("_source_file", "VARCHAR"), ("_source_row", "BIGINT"),
                     ("_loaded_at", "TIMESTAMP"), ("_is_deleted", "BOOLEAN")]
        assert cols == expected, obj
        systems = _query(built["default"], f"select distinct _source_system from staging.stg_pipedrive__{obj}")
        assert systems == [("pipedrive",)], obj


def test_landing_is_incremental_and_merges(built):
    w = built["default"]
    calls = built["second_run_calls"]
    deal_calls = [c for c in calls if c.path == "/api/v2/deals"]
    assert len(deal_calls) == 2 and deal_calls[0].query["updated_since"] == "2026-09-09T08:00:00Z"
    assert {c.path for c in calls if c.path.startswith("/v1/deals/")} == {
        "/v1/deals/1001/changelog", "/v1/deals/1009/changelog", "/v1/deals/1008/changelog"}
    assert {c.method for c in calls} == {"GET"}
    deals = dict(_query(w, f"select id, value from {DATASET}.deals"))
    assert set(deals) == {"1001", "1002", "1003", "1004", "1006", "1007", "1009"} and deals["1001"] == 15000.0
    assert _query(w, "select dataset, source_system from raw.active_source") == [("raw_pipedrive", "pipedrive")]
    cursors = dict(_query(w, "select object, cursor from raw._crm_cursors where source_system = 'pipedrive'"))
    assert cursors["deals"] == "2026-09-22T08:00:00Z" and "map_settings" not in cursors
    rejected = _query(w, "select object, source_file, reason from raw.rejected_rows where landing_id = 'run-1'")
    assert ("opportunities", "raw_pipedrive.deals: GET /api/v2/deals", "value: negative amount: -5") in rejected
    assert ("activities", "raw_pipedrive.activities: GET /api/v2/activities", "due_date: no due date or done time") in rejected


def test_default_mapping_stages_users_accounts_contacts(built):
    w = built["default"]
    stages = _query(w, "select stage, stage_order, is_closed, is_won from staging.stg_pipedrive__stages order by stage_order")
    assert stages == [("Qualified", 1, False, False), ("Demo", 2, False, False), ("Proposal", 3, False, False),
                      ("Negotiation", 4, False, False), ("Renewal Review", 5, False, False), ("Won", 6, True, True),
                      ("Lost", 7, True, False)]
    assert _model(w, "managers", "manager_id, manager_name") == [("1", "Mia Manager")]  # the admin
    assert _model(w, "reps", "rep_id, manager_id, hired_on, is_active, segment") == [
        ("2", "1", dt.date(2025, 3, 1), True, None), ("3", "1", dt.date(2025, 4, 1), False, None)]
    assert _model(w, "accounts", "account_id, segment, employees, tags") == [
        ("101", "SMB", 50, "5"), ("102", "Enterprise", 5000, None), ("103", None, None, None)]
    assert _model(w, "contacts", "contact_id, account_id, buying_role, email, title") == [
        ("201", "101", "decision_maker", "alice@acme.test", "CFO"), ("202", "101", "champion", "bob@acme.test", "Head of Ops"),
        ("203", "102", None, None, None)]


def test_default_mapping_deals_and_history(built):
    w = built["default"]
    opps = {r[0]: r[1:] for r in _model(w, "opportunities", "opportunity_id, stage, amount, is_closed, is_won, closed_at, "
                                                              "owner_rep_id, account_id, source_url, _is_deleted", False)}
    assert opps["1001"] == ("Proposal", 15000.0, False, False, None, "2", "101",
                            f"https://{COMPANY}.pipedrive.com/deal/1001", False)  # merged from the second landing
    assert opps["1002"][:5] == ("Won", 50000.0, True, True, dt.datetime(2026, 9, 3, 12))
    assert opps["1003"][:4] == ("Lost", 8000.0, True, False)
    reasons = dict(_model(w, "opportunities", "opportunity_id, loss_reason", False))
    assert reasons["1003"] == "budget" and reasons["1002"] is None  # lost_reason, on lost deals only (issue 16)
    assert opps["1009"][0] == "Qualified" and opps["1006"][0] == "Proposal" and opps["1007"][0] == "Renewal Review"
    assert opps["1004"][-1] is True and opps["1007"][-1] is True and opps["1001"][-1] is False  # deleted: flagged
    assert not {"1005", "1008"} & set(opps)  # quarantined at landing

    history = _model(w, "stage_history", "opportunity_id, entered_at, stage")
    by_deal: dict[str, list] = {}
    for deal, at, stage in history:
        by_deal.setdefault(deal, []).append((stage, at))
    assert by_deal["1002"] == [("Qualified", dt.datetime(2026, 8, 1, 9)), ("Proposal", dt.datetime(2026, 8, 5, 10)),
                               ("Negotiation", dt.datetime(2026, 8, 20, 10)), ("Won", dt.datetime(2026, 9, 3, 12))]
    assert [s for s, _ in by_deal["1001"]] == ["Qualified", "Demo", "Proposal"]
    assert [s for s, _ in by_deal["1003"]] == ["Qualified", "Lost"]
    assert [s for s, _ in by_deal["1009"]] == ["Qualified"]
    assert "1004" not in by_deal and "1007" not in by_deal  # deleted deals' history leaves with them
    assert _query(w, "select count(*) from staging.stg_pipedrive__stage_history where opportunity_id = '1004' "
                     "and _is_deleted")[0][0] == 1  # ...but stays, flagged
    changes = {(r[0], r[1]): (r[2], r[3]) for r in _model(w, "field_history", "opportunity_id, field_name, old_value, new_value")}
    assert changes == {("1001", "amount"): ("10000", "12000"), ("1001", "close_date"): ("2026-09-30", "2026-10-15"),
                       ("1002", "amount"): ("40000", "50000")}


def test_default_mapping_activities(built):
    w = built["default"]
    acts = {r[0]: r[1:] for r in _model(w, "activities", "activity_id, activity_type, occurred_at, rep_id, opportunity_id", False)}
    assert acts["3001"] == ("meeting", dt.datetime(2026, 8, 15, 14), "2", "1001")
    assert acts["3002"][:2] == ("call", dt.datetime(2026, 8, 22))
    assert "3003" not in acts  # planned (done: false): not past activity, whatever its due date
    assert acts["3004"][0] == "task"  # a custom type: the configured default
    assert "3006" not in acts  # no date: quarantined at landing
    assert _model(w, "activities", "activity_id", False) != _model(w, "activities", "activity_id")  # 3005 flagged
    assert set(_model(w, "activity_contacts", "activity_id, contact_id")) == {
        ("3001", "201"), ("3001", "202"), ("3002", "203"), ("3004", "201")}
    assert _model(w, "activity_contacts", "activity_id, contact_id, _is_deleted", False)[-1] == ("3005", "203", True)


def test_a_changed_configuration_changes_the_mapping(built):
    w = built["custom"]
    stages = _query(w, "select stage, stage_order, is_closed, is_won from staging.stg_pipedrive__stages order by stage_order, stage")
    assert stages == [("Sales / Qualified", 1, False, False), ("Proposal", 3, False, False), ("Negotiation", 4, False, False),
                      ("Renewal Review", 5, True, False), ("Renewals / Qualified", 6, False, False),
                      ("Closed Won", 7, True, True), ("Lost", 8, True, False), ("Demo", 9, False, False)]
    assert _model(w, "managers", "manager_id, slack_user_id") == [("2", "U2")]
    assert _model(w, "reps", "rep_id, manager_id, segment") == [("1", "2", None), ("3", "2", "SMB")]
    assert _model(w, "accounts", "account_id, segment, tags") == [
        ("101", "Small", "Strategic"), ("102", "Big", None), ("103", None, None)]
    roles = dict(_model(w, "contacts", "contact_id, buying_role"))
    assert roles == {"201": "decision_maker", "202": "sponsor", "203": "sponsor"}  # 203: both; sponsor has priority
    opps = dict(_model(w, "opportunities", "opportunity_id, stage"))
    assert opps["1002"] == "Closed Won" and opps["1001"] == "Demo"
    assert dict(_model(w, "opportunities", "opportunity_id, source_url"))["1001"] == "https://acme.pipedrive.com/deal/1001"
    history = [r[1] for r in _model(w, "stage_history", "entered_at, stage, opportunity_id") if r[2] == "1002"]
    assert history == ["Sales / Qualified", "Proposal", "Negotiation", "Closed Won"]
    assert _model(w, "field_history", "opportunity_id, field_name, old_value, new_value") == [
        ("1001", "opportunity_name", "Acme", "Acme expansion")]
    acts = dict(_model(w, "activities", "activity_id, activity_type"))
    assert acts["3004"] == "demo" and acts["3001"] == "other"

# --------------------------------------------------------------------------- the note writer


def _message(key="coach:item-1:crm_note", deal="1001", text="Book the <security> review & send the MSA.") -> OutboundMessage:
    return OutboundMessage(
        item_id="item-1", idempotency_key=key, opportunity_id=deal, subject_label="Acme expansion", rep_id="2",
        rep_name="Rita Rep", rep_slack_user_id=None, rep_email="rita@acme.test", manager_id="1",
        manager_name="Mia Manager", manager_email="mia@acme.test", approver_id="1", text=text, edited=False,
    )


@pytest.fixture
def ledger(tmp_path):
    with open_ledger(home=tmp_path / "home") as led:
        yield led


def test_note_is_written_once_and_a_retry_finds_the_marker(pd, ledger):
    writer = PipedriveNoteWriter(ledger, TOKEN, pd.base_url, backoff_factor=0.01, page_size=2)
    message = _message()
    with pytest.raises(SendsHalted):  # shadow mode: refused right before the write
        writer.send(message)
    assert not pd.calls("/v1/notes", "POST")

    ledger.set_mode("live", actor="ops", reason="test", gates=GATES)
    assert writer.find_delivered(message) is None
    for i in range(3):  # other notes on the deal, so the lookup pages
        pd.data.notes.append({"id": 900 + i, "deal_id": 1001, "content": "call notes", "add_time": f"2026-01-0{i + 1} 00:00:00"})
    ref = writer.send(message)
    posts = pd.calls("/v1/notes", "POST")
    assert len(posts) == 1 and posts[0].body["deal_id"] == 1001
    content = posts[0].body["content"]
    assert "[sales-supervisor:coach:item-1:crm_note]" in content and "&lt;security&gt;" in content

    # the publisher's retry after a crash: it checks before writing, finds the note, writes nothing
    assert writer.find_delivered(message) == ref
    assert len(pd.calls("/v1/notes", "POST")) == 1
    assert writer.find_delivered(_message(key="another-key")) is None


def test_note_writer_errors(pd, ledger):
    ledger.set_mode("live", actor="ops", reason="test", gates=GATES)
    writer = PipedriveNoteWriter(ledger, TOKEN, pd.base_url, backoff_factor=0.01)
    pd.fail("/v1/notes", 500, method="POST")
    with pytest.raises(OutcomeUnknown):  # not retried in place: the note might exist
        writer.send(_message())
    assert len(pd.calls("/v1/notes", "POST")) == 1
    pd.fail("/v1/notes", 429, method="POST", headers={"Retry-After": "0"})
    assert writer.send(_message()).startswith("pipedrive-note:")  # a 429 wrote nothing: retried in place
    with pytest.raises(PermanentSendError):
        writer.send(_message(deal="424242"))  # Pipedrive: deal not found
    with pytest.raises(PermanentSendError):
        writer.send(_message(deal=None))
    pd.fail("/v1/notes", 503, times=10)
    with pytest.raises(CannotCheck):
        PipedriveNoteWriter(ledger, TOKEN, pd.base_url, backoff_factor=0.01, max_attempts=1).find_delivered(_message())


# --------------------------------------------------------------------------- the token never leaks


def _all_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc)


@pytest.mark.parametrize("token_in", ["header", "query"])
def test_token_never_in_logs_or_errors(pd, caplog, token_in):
    caplog.set_level(logging.DEBUG)
    source = PipedriveSource(TOKEN, pd.base_url, _config(token_in=token_in, max_attempts=2))
    _read_all(source)
    if token_in == "query":
        assert pd.calls("/api/v2/deals")[0].query["api_token"] == TOKEN  # the token did travel in the URL
    pd.fail("/api/v2/persons", 500, times=5)
    with pytest.raises(PipedriveError) as failed:
        list(PipedriveSource(TOKEN, pd.base_url, _config(token_in=token_in, max_attempts=2)).read("persons"))
    assert "HTTP 500" in str(failed.value) and "/api/v2/persons" in str(failed.value)
    with pytest.raises(PipedriveError) as unauthorised:
        list(PipedriveSource(TOKEN + "x", pd.base_url, _config(token_in=token_in)).read("organizations"))
    assert unauthorised.value.status == 401
    with socket.socket() as s:  # a port nobody listens on: a connection error carries the URL
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(PipedriveError) as unreachable:
        list(PipedriveSource(TOKEN, dead, _config(token_in=token_in, max_attempts=1)).read("organizations"))
    for exc in (failed.value, unauthorised.value, unreachable.value):
        assert TOKEN not in _all_text(exc)
    assert "/api/v2/deals" in caplog.text  # requests were logged...
    assert TOKEN not in caplog.text  # ...without the token
    assert TOKEN not in repr(source) and TOKEN not in repr(source.http._rest.auth)


def test_from_env(monkeypatch, pd):
    source = PipedriveSource.from_env(environ={"PIPEDRIVE_API_TOKEN": TOKEN, "PIPEDRIVE_BASE_URL": "acme"})
    assert source.base_url == "https://acme.pipedrive.com" and source.company_domain() == "acme"
    assert source.deal_url(7) == "https://acme.pipedrive.com/deal/7"
    local = PipedriveSource.from_env(environ={"PIPEDRIVE_API_TOKEN": TOKEN, "PIPEDRIVE_BASE_URL": pd.base_url})
    assert [r["name"] for b in local.read("stages") for r in b.rows][:2] == ["Qualified", "Demo"]
    with pytest.raises(PipedriveError, match="PIPEDRIVE_API_TOKEN"):
        PipedriveSource.from_env(environ={})
