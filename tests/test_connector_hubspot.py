"""The HubSpot connector against a local fake of the CRM v3 API.

Extraction (Python): native rows of raw_hubspot (connectors/hubspot/tables.py), paging, retries,
schema drift, archived records, rejections, incremental reads, read-only HTTP.
Mapping (dbt): the fake portal landed with ``land_source`` and mapped by the
``stg_hubspot__*`` models into the canonical shape, including after an incremental run and
after a change of mapping configuration. Plus the note writer and no credential in any log.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import time
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest

from agents.accountability.quotas import land_quotas_file
from agents.ledger import SendsHalted, open_ledger
from agents.review.channels import OutboundMessage, OutcomeUnknown
from agents.warehouse import Warehouse
from connectors.csv_folder import Batch
from connectors.hubspot import HubSpotConfig, HubSpotError, HubSpotSource
from connectors.hubspot.client import ReadOnlyViolation
from connectors.hubspot.notes import HubSpotNoteWriter
from connectors.hubspot.tables import DATASET, TABLES
from connectors.landing import land_source, load_cursors
from connectors.schema import DUCKDB_TYPES, RAW_OBJECTS
from sales_supervisor.pipeline import landing_summary
from tests.fakes.hubspot_server import T0, FakeHubSpotServer, iso, seed_portal
from tests.support import dbt_build

TOKEN = "pat-na1-00000000-SECRET-TOKEN-0000"
GATES = {"eval": True, "shadow_agreement": True}
DEALS = "/crm/v3/objects/deals"
LINEAGE = {"_source_system": "VARCHAR", "_source_file": "VARCHAR", "_source_row": "BIGINT",
           "_loaded_at": "TIMESTAMP", "_is_deleted": "BOOLEAN"}
CANONICAL = list(RAW_OBJECTS)  # quotas too: goal targets


def _config(**over) -> HubSpotConfig:
    base = dict(
        portal_id="4242",
        teams={"East": {"manager": "101", "segment": "smb"}, "West": {"manager": "wes@acme.test", "segment": "enterprise"}},
        retry={"max_attempts": 4, "backoff_factor": 0.01, "max_delay_s": 5},
    )
    base.update(over)
    return HubSpotConfig(**base)


@pytest.fixture
def hubspot():
    with seed_portal(FakeHubSpotServer(max_page=3)) as server:
        yield server


def _read(source: HubSpotSource, name: str, cursor: str | None = None) -> Batch:
    out = Batch()
    for batch in source.read(name, batch_size=4, cursor=cursor):
        out.rows += batch.rows
        out.rejected += batch.rejected
    return out


def _by(rows, *key):
    return {(r[key[0]] if len(key) == 1 else tuple(r[k] for k in key)): r for r in rows}


# --------------------------------------------------------------------------- extraction


def test_tables_declare_every_canonical_object():
    fed = {t.feeds for t in TABLES.values()}
    assert fed == set(RAW_OBJECTS)  # quotas from goal_targets
    assert DATASET == "raw_hubspot"
    assert {n for n, t in TABLES.items() if t.snapshot} == {"pipeline_stages", "owners", "owner_teams", "goal_targets"} | {
        n for n in TABLES if n.startswith("map_")}
    for t in TABLES.values():
        assert set(t.primary_key) <= set(t.field_names) and all(t.field(k).required for k in t.primary_key)


def test_full_read_follows_pages_survives_429_and_500_and_lands_native_rows(hubspot):
    hubspot.add("deals", "410", {"dealname": "Odd stage", "dealstage": "nosuchstage", "pipeline": "default", "amount": "1"},
                created=T0, updated=T0, associations={"companies": ["201"]})  # listed on page 3
    hubspot.fail_next("GET", DEALS, 429, retry_after="1", after="3")  # page 2: rate limited once
    hubspot.fail_next("GET", DEALS, 500, after="6")  # page 3: a server error, then success
    source = HubSpotSource(TOKEN, hubspot.base_url, _config())

    started = time.monotonic()
    deals = _read(source, "deals")
    assert time.monotonic() - started >= 0.9  # Retry-After: 1 honoured

    deal_calls = hubspot.calls_to("GET", DEALS)
    assert [c.query.get("after") for c in deal_calls] == [None, "3", "3", "6", "6"]  # 3 pages, 2 retries
    first = deal_calls[0]
    assert first.headers["Authorization"] == f"Bearer {TOKEN}"
    assert first.query["propertiesWithHistory"] == "dealstage,closedate,amount"
    assert first.query["associations"] == "companies" and first.query["archived"] == "false"
    assert int(first.query["limit"]) <= 50  # HubSpot's cap with propertiesWithHistory

    rows = _by(deals.rows, "deal_id")
    assert set(rows) == {"401", "402", "403", "405", "406", "407"}
    won = rows["403"]
    assert won["dealstage"] == "closedwon" and won["hs_is_closed"] is True and won["hs_is_closed_won"] is True
    assert won["amount"] == 250000.0 and isinstance(won["createdate"], dt.datetime) and won["createdate"].tzinfo is None
    assert won["closedate"] == dt.datetime(2026, 10, 1, 9, 0) and won["primary_company_id"] == "203"
    assert won["hubspot_owner_id"] == "103" and won["dealname"] == "Umbrella platform"
    assert won["_is_deleted"] is False and won["_source_file"] == DEALS
    # a property HubSpot started returning mid-stream (page 2) is kept, not lost
    assert rows["405"]["_extra"]["hs_object_source_label"] == "CRM_UI"
    assert "hs_object_source_label" not in rows["401"]["_extra"]
    # unusable records are quarantined with their reason and the record as read
    bad = _by(deals.rejected, "field")
    assert set(bad) == {"amount", "dealstage"}
    assert bad["amount"]["object"] == "deals" and "negative amount" in bad["amount"]["reason"]
    assert bad["amount"]["source_file"] == DEALS and '"id": "404"' in bad["amount"]["raw_record"]
    assert bad["amount"]["row_number"] == 4
    assert "unknown stage 'nosuchstage'" in bad["dealstage"]["reason"] and '"id": "410"' in bad["dealstage"]["raw_record"]
    assert source.reports["deals"].rows == 6 and source.reports["deals"].rejected == 2
    assert source.cursors["deals"] == iso(T0 + dt.timedelta(hours=6))

    history = _read(source, "deal_property_history").rows
    assert len(hubspot.calls_to("GET", DEALS)) == 5  # deals and their history share one read
    h403 = sorted((h["property"], h["value"], h["timestamp"]) for h in history if h["deal_id"] == "403")
    assert [(p, v) for p, v, _ in h403 if p == "dealstage"] == [("dealstage", "appointmentscheduled"), ("dealstage", "closedwon")]
    assert {h["source_type"] for h in history} == {"CRM_UI"} and len({h["version_id"] for h in history}) == len(history)

    stages = _read(source, "pipeline_stages").rows
    assert [(s["stage_id"], s["label"], s["is_closed"], s["probability"]) for s in stages][-2:] == [
        ("closedwon", "Closed Won", True, "1.0"), ("closedlost", "Closed Lost", True, "0.0")]
    owners = _by(_read(source, "owners").rows, "owner_id")
    assert owners["105"]["archived"] is True and owners["105"]["_is_deleted"] is False  # deactivated, still owns deals
    assert owners["102"]["first_name"] == "Rita" and owners["102"]["email"] == "rita@acme.test"
    teams = _by(_read(source, "owner_teams").rows, "owner_id", "team_id")
    assert teams[("103", "12")]["team_name"] == "West" and teams[("103", "12")]["is_primary"] is True

    companies = _by(_read(source, "companies").rows, "company_id")
    assert {k: c["numberofemployees"] for k, c in companies.items()} == {"201": 50, "202": 450, "203": 12000}
    contacts = _by(_read(source, "contacts").rows, "contact_id")
    assert contacts["302"]["hs_buying_role"] == "CHAMPION;INFLUENCER" and contacts["301"]["associatedcompanyid"] == "201"

    engagements = _by(_read(source, "engagements").rows, "engagement_id")
    assert {k: (e["object_type"], e["primary_deal_id"], e["hubspot_owner_id"]) for k, e in engagements.items()} == {
        "501": ("meetings", "401", "102"), "502": ("calls", "402", "102"),
        "503": ("emails", "403", "103"), "504": ("tasks", "405", "103"), "506": ("tasks", "401", "103")}
    assert engagements["506"]["hs_task_status"] == "NOT_STARTED"  # lands; dbt leaves it out of activities
    assert engagements["501"]["hs_meeting_title"] == "Discovery call" and engagements["501"]["_source_file"] == "/crm/v3/objects/meetings"
    links = {(r["engagement_id"], r["to_type"], r["to_id"]) for r in _read(source, "engagement_associations").rows}
    assert {(e, c) for e, t, c in links if t == "contacts"} == {("501", "301"), ("501", "302"), ("502", "303"), ("504", "303")}
    assert ("503", "deals", "403") in links and ("503", "companies", "203") in links

    roles = _read(source, "map_buying_roles").rows
    assert {r["source_value"]: r["buying_role"] for r in roles}["BUDGET_HOLDER"] == "decision_maker"
    assert all(r["_source_file"] == "config:buying_roles" for r in roles)
    assert _read(source, "map_stages").rows == [] and source.reports["map_stages"].rows == 0  # no override: empty
    with pytest.raises(KeyError):
        _read(source, "opportunities")  # canonical objects are dbt's business now
    assert not [c for c in hubspot.calls if c.method != "GET"]  # a full read is all GETs


def test_implausible_dates_and_amounts_are_quarantined_like_csv_rows(hubspot):
    """A placeholder close date, a close date decades ahead and an amount typed in cents are refused
    with the CSV quarantine's words; the window and ceiling come from the config's plausibility."""
    placeholder = {"dealname": "Placeholder", "dealstage": "qualifiedtobuy", "pipeline": "default",
                   "amount": "100", "closedate": "1900-01-01T00:00:00Z"}
    hubspot.add("deals", "411", placeholder, created=T0, associations={"companies": ["201"]})
    hubspot.add("deals", "412", dict(placeholder, dealname="Far future", closedate="2099-06-30T00:00:00Z"),
                created=T0, associations={"companies": ["201"]})
    hubspot.add("deals", "413", dict(placeholder, dealname="Cents", amount="25000000000000",
                                     closedate=iso(T0 + dt.timedelta(days=30))),
                created=T0, associations={"companies": ["201"]})

    rejected = _read(HubSpotSource(TOKEN, hubspot.base_url, _config()), "deals").rejected
    bad = {rid: r for rid in ("411", "412", "413") for r in rejected if f'"id": "{rid}"' in r["raw_record"]}
    assert set(bad) == {"411", "412", "413"}
    assert bad["411"]["field"] == "closedate" and "timestamp outside the plausible window 1990-01-01 to" in bad["411"]["reason"]
    assert "(plausibility): 1900-01-01T00:00:00Z" in bad["411"]["reason"]
    assert bad["412"]["field"] == "closedate" and "outside the plausible window" in bad["412"]["reason"]
    assert bad["413"]["field"] == "amount"
    assert "amount above the ceiling of 10,000,000,000 (plausibility.max_amount): 25000000000000" in bad["413"]["reason"]

    # a team that sells in cents raises the ceiling; a narrower window quarantines what the default keeps
    tuned = _config(plausibility={"max_amount": 1e14, "min_date": "2026-12-31"})
    source = HubSpotSource(TOKEN, hubspot.base_url, tuned)
    deals = _read(source, "deals")
    assert "413" not in {r["deal_id"] for r in deals.rows} and any('"id": "413"' in r["raw_record"] for r in deals.rejected)
    assert not deals.rows or all(r["createdate"].date() >= dt.date(2026, 12, 31) for r in deals.rows)
    generous = HubSpotSource(TOKEN, hubspot.base_url, _config(plausibility={"max_amount": 1e14}))
    assert {"413"} <= {r["deal_id"] for r in _read(generous, "deals").rows}
    assert source.max_quarantine_share == 0.2


def _change_portal(hubspot: FakeHubSpotServer) -> None:
    later = T0 + dt.timedelta(days=10)
    hubspot.update("deals", "402", later, amount="52000", dealstage="closedwon", hs_is_closed="true", hs_is_closed_won="true")
    hubspot.archive("deals", "401", later + dt.timedelta(days=1))
    hubspot.add("deals", "408", {"dealname": "Globex phase 2", "dealstage": "qualifiedtobuy", "pipeline": "default",
                                 "amount": "15000", "hubspot_owner_id": "102"},
                created=later, updated=later + dt.timedelta(days=2),
                history={"dealstage": [("qualifiedtobuy", later)]}, associations={"companies": ["201"]})
    hubspot.associate("meetings", "501", "contacts", ["301"], later)  # Bob no longer attends
    hubspot.archive("tasks", "504", later + dt.timedelta(days=1))


def test_second_run_asks_only_for_changes_since_the_cursor(hubspot):
    first = HubSpotSource(TOKEN, hubspot.base_url, _config())
    for name in ("deals", "companies"):
        _read(first, name)
    cursors = dict(first.cursors)
    _change_portal(hubspot)
    before = len(hubspot.calls)

    second = HubSpotSource(TOKEN, hubspot.base_url, _config(lookback_s=0))  # default 300 s re-reads the boundary
    deals = _read(second, "deals", cursors["deals"])
    companies = _read(second, "companies", cursors["companies"])
    history = _read(second, "deal_property_history", cursors["deals"])
    calls = hubspot.calls[before:]

    [search] = [c for c in calls if c.path == f"{DEALS}/search"]
    [flt] = search.body["filterGroups"][0]["filters"]
    since = dt.datetime(2026, 9, 1, 15, 0)  # the stored cursor (minus lookback_s, here 0)
    assert flt == {"propertyName": "hs_lastmodifieddate", "operator": "GT",
                   "value": str(int(since.replace(tzinfo=dt.UTC).timestamp() * 1000))}
    assert search.body["sorts"] == [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]
    # changed deals re-read one by one (history and associations), archived ones listed; no full listing
    assert sorted(c.path for c in calls if c.method == "GET" and c.path.startswith(f"{DEALS}/")) == [f"{DEALS}/402", f"{DEALS}/408"]
    assert [c.query["archived"] for c in calls if c.path == DEALS] == ["true"]

    rows = _by(deals.rows, "deal_id")
    assert set(rows) == {"401", "402", "408"}
    assert rows["402"]["amount"] == 52000.0 and rows["402"]["dealstage"] == "closedwon" and rows["402"]["hs_is_closed_won"] is True
    assert rows["402"]["_source_file"] == f"{DEALS}/402"
    assert rows["401"]["_is_deleted"] is True and rows["408"]["_is_deleted"] is False
    assert {h["deal_id"] for h in history.rows if h["_is_deleted"]} == {"401"}  # an archived deal's history, flagged
    assert second.cursors["deals"] == iso(T0 + dt.timedelta(days=12))  # the newest change seen
    assert companies.rows == [] and second.cursors["companies"] == cursors["companies"]  # nothing changed


# --------------------------------------------------------------------------- landing and the dbt mapping

CONFIG_B = dict(  # another team's mapping of the same portal
    portal_id=None,
    employee_bands=[{"below": 100, "segment": "small"}, {"below": None, "segment": "big"}],
    buying_role_priority=["influencer", "champion", "decision_maker", "user"],
    owners={"RITA@acme.test": {"manager": "wes@acme.test", "segment": "mid_market", "slack_user_id": "U02", "hired_on": "2025-01-06"}},
    activity_objects={"meetings": "meeting", "calls": "phone_call", "emails": "email"},
    field_history={"amount": "deal_value"},
    fiscal_year_start_month=2,
)


def _canonical(warehouse: Path) -> dict[str, dict]:
    """Every stg_hubspot__ model's rows (keyed by primary key) and column types."""
    out: dict[str, dict] = {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for name in CANONICAL:
            cur = con.execute(f"select * from staging.stg_hubspot__{name}")
            cols = [d[0] for d in cur.description]
            rows = [dict(zip(cols, r)) for r in cur.fetchall()]
            types = dict(con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = 'staging' and table_name = ? order by ordinal_position", [f"stg_hubspot__{name}"]).fetchall())
            out[name] = {"columns": cols, "types": types, "rows": _by(rows, *RAW_OBJECTS[name].primary_key)}
    return out


@pytest.fixture(scope="module")
def landed(tmp_path_factory):
    """The fake portal landed three times (full, incremental after changes, incremental with
    another mapping config), the HubSpot staging models built after the second and third."""
    tmp = tmp_path_factory.mktemp("hubspot_landing")
    warehouse = tmp / "warehouse.duckdb"
    with seed_portal(FakeHubSpotServer(max_page=3)) as server:
        # a deal whose stage history comes only from hs_date_entered_<stage id>
        server.add("deals", "409", {"dealname": "Legacy", "dealstage": "qualifiedtobuy", "pipeline": "default", "amount": "700",
                                    "hs_date_entered_appointmentscheduled": iso(T0 - dt.timedelta(days=9)),
                                    "hs_date_entered_qualifiedtobuy": iso(T0 - dt.timedelta(days=4))},
                   created=T0 - dt.timedelta(days=9), updated=T0)
        extra = {"deals": ["hs_date_entered_appointmentscheduled", "hs_date_entered_qualifiedtobuy"]}
        config_a = _config(extra_properties=extra, owners={"103": {"slack_user_id": "U03"}})
        first = land_source(HubSpotSource(TOKEN, server.base_url, config_a), warehouse, tmp / "work", "run-1")
        cursors_1 = load_cursors(warehouse, "hubspot")
        _change_portal(server)
        before = len(server.calls)
        land_source(HubSpotSource(TOKEN, server.base_url, config_a), warehouse, tmp / "work", "run-2")
        calls_2 = server.calls[before:]
        with duckdb.connect(str(warehouse), read_only=True) as con:
            native = {name: con.execute(f"select count(*) from {DATASET}.{name}").fetchone()[0] for name in TABLES}
            rejected = con.execute("select object, field, reason, source_file, landing_id from raw.rejected_rows").fetchall()
        cursors_2 = load_cursors(warehouse, "hubspot")
        # a quotas file beside the goals: its row for Wes's Q4 wins over his share of the team goal
        quotas_file = tmp / "quotas.yaml"
        quotas_file.write_text("quotas:\n  - {rep: wes@acme.test, period: 2026-Q4, amount: 70000}\n")
        with Warehouse.coerce(warehouse).connect() as con:
            land_quotas_file(con, quotas_file)
        # fct_quotas and what it reads; 'cautious': no tests of other staging models half-selected
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("DBT_INDIRECT_SELECTION", "cautious")
            dbt_output = dbt_build(warehouse, "stg_hubspot__* +fct_quotas")
        mapped_a = _canonical(warehouse)
        with duckdb.connect(str(warehouse), read_only=True) as con:
            fct_quotas = con.execute("select rep_id, quarter_start, quota_amount, source_system from marts.fct_quotas").fetchall()

        before = len(server.calls)
        land_source(HubSpotSource(TOKEN, server.base_url, _config(extra_properties=extra, **CONFIG_B)), warehouse,
                    tmp / "work", "run-3")
        calls_3 = server.calls[before:]
        dbt_build(warehouse, "stg_hubspot__*")
        mapped_b = _canonical(warehouse)
    return SimpleNamespace(first=first, cursors_1=cursors_1, cursors_2=cursors_2, calls_2=calls_2, calls_3=calls_3,
                           native=native, rejected=rejected, dbt_output=dbt_output, a=mapped_a, b=mapped_b,
                           fct_quotas=fct_quotas)


def test_landing_merges_native_tables_and_keeps_cursors_and_rejections(landed):
    assert {r["object"]: r["rows"] for r in landed.first}["opportunities"] == 7 + 7  # deals (not 404) + map_settings
    assert landed.native["deals"] == 8  # merged: 401-409 but the rejected 404, nothing duplicated
    assert landed.native["pipeline_stages"] == 6 and landed.native["owners"] == 5 and landed.native["map_stages"] == 0
    assert landed.cursors_1["deals"] == iso(T0 + dt.timedelta(hours=6))
    assert landed.cursors_2["deals"] == iso(T0 + dt.timedelta(days=12))
    assert landed.cursors_2["companies"] == landed.cursors_1["companies"]  # nothing changed there
    assert not [c for c in landed.calls_2 if c.path == DEALS and c.query.get("archived") == "false"]  # no re-listing
    assert [c.path for c in landed.calls_2 if c.method == "GET" and c.path.startswith("/crm/v3/objects/meetings/")] == [
        "/crm/v3/objects/meetings/501"]  # the changed meeting, re-read for its associations
    [bad] = [r for r in landed.rejected if r[4] == "run-1"]
    assert bad[:3] == ("opportunities", "amount", "amount: negative amount: -5") and "raw_hubspot.deals" in bad[3]


def test_staging_models_have_exactly_the_canonical_columns(landed):
    assert "stg_hubspot__opportunities" in landed.dbt_output
    for name in CANONICAL:
        obj = RAW_OBJECTS[name]
        expected = {f.name: DUCKDB_TYPES[f.type] for f in obj.fields} | LINEAGE
        assert landed.a[name]["types"] == expected, name
        assert landed.a[name]["columns"] == list(expected), name


def test_stages_managers_and_reps(landed):
    stages = landed.a["stages"]["rows"]
    assert [s for s, _ in sorted(((k, v["stage_order"]) for k, v in stages.items()), key=lambda x: x[1])][:2] == [
        "Appointment Scheduled", "Qualified To Buy"]
    assert [(v["stage_order"], v["is_closed"], v["is_won"]) for v in (stages["Closed Won"], stages["Closed Lost"])] == [
        (5, True, True), (6, True, False)]
    assert stages["Closed Won"]["_source_system"] == "hubspot"
    assert set(landed.a["managers"]["rows"]) == {"101", "104"}
    reps = landed.a["reps"]["rows"]
    assert (reps["102"]["manager_id"], reps["102"]["segment"]) == ("101", "smb")
    assert (reps["103"]["manager_id"], reps["103"]["segment"]) == ("104", "enterprise")  # West's manager named by email
    assert reps["101"]["manager_id"] is None  # nobody manages themself
    assert reps["105"]["is_active"] is False and reps["105"]["_is_deleted"] is False  # deactivated, still owns deals
    assert reps["102"]["rep_name"] == "Rita Rep" and reps["103"]["slack_user_id"] == "U03"


def test_accounts_contacts_and_opportunities(landed):
    accounts = landed.a["accounts"]["rows"]
    assert {k: (a["segment"], a["employees"]) for k, a in accounts.items()} == {
        "201": ("smb", 50), "202": ("mid_market", 450), "203": ("enterprise", 12000)}
    contacts = landed.a["contacts"]["rows"]
    assert {k: c["buying_role"] for k, c in contacts.items()} == {
        "301": "decision_maker", "302": "champion", "303": "user", "304": None}
    assert contacts["301"]["account_id"] == "201" and contacts["301"]["contact_name"] == "Ann Buyer"

    opps = landed.a["opportunities"]["rows"]
    assert set(opps) == {"401", "402", "403", "405", "406", "407", "408", "409"}
    won = opps["403"]
    assert won["stage"] == "Closed Won" and won["is_closed"] is True and won["is_won"] is True
    assert won["close_date"] == dt.date(2026, 10, 1) and won["closed_at"] == dt.datetime(2026, 10, 1, 9, 0)
    assert won["account_id"] == "203" and won["owner_rep_id"] == "103" and won["amount"] == 250000.0
    assert won["source_url"] == "https://app.hubspot.com/contacts/4242/deal/403"
    assert (opps["402"]["amount"], opps["402"]["stage"], opps["402"]["_is_deleted"]) == (52000.0, "Closed Won", False)
    assert opps["401"]["_is_deleted"] is True  # archived in HubSpot: kept, flagged
    assert opps["407"]["closed_at"] is None and opps["407"]["next_step"] == "Send proposal"
    assert opps["406"]["loss_reason"] == "Chose a competitor" and opps["403"]["loss_reason"] is None  # closed_lost_reason
    assert opps["405"]["_source_file"] == DEALS and opps["402"]["_source_file"] == f"{DEALS}/402"


def test_stage_and_field_history(landed):
    history = sorted(landed.a["stage_history"]["rows"].values(), key=lambda h: (h["opportunity_id"], h["entered_at"]))
    by_deal: dict[str, list[str]] = {}
    for h in history:
        by_deal.setdefault(h["opportunity_id"], []).append(h["stage"])
    assert by_deal["402"] == ["Appointment Scheduled", "Contract Sent", "Closed Won"]
    assert by_deal["403"] == ["Appointment Scheduled", "Closed Won"]
    assert by_deal["409"] == ["Appointment Scheduled", "Qualified To Buy"]  # from hs_date_entered_<stage id>
    assert {h["_is_deleted"] for h in history if h["opportunity_id"] == "401"} == {True}
    assert "404" not in by_deal  # the quarantined deal takes its history with it
    fields = landed.a["field_history"]["rows"].values()
    pushes = sorted((f["opportunity_id"], f["field_name"], f["old_value"], f["new_value"]) for f in fields)
    assert ("402", "close_date", "2026-09-21", "2026-10-01") in pushes
    assert ("402", "amount", "48000", "52000") in pushes
    assert not [p for p in pushes if p[0] == "408"]  # one version: no change


def test_activities_and_their_contacts(landed):
    acts = landed.a["activities"]["rows"]
    assert {k: (a["activity_type"], a["opportunity_id"], a["account_id"], a["rep_id"]) for k, a in acts.items()} == {
        "501": ("meeting", "401", "201", "102"), "502": ("call", "402", "202", "102"),
        "503": ("email", "403", "203", "103"), "504": ("task", "405", "202", "103")}
    assert acts["501"]["subject"] == "Discovery call" and acts["503"]["subject"] == "Proposal"
    assert acts["504"]["_is_deleted"] is True  # archived task
    assert "506" not in acts  # NOT_STARTED: a planned task is not past activity
    links = {k: v["_is_deleted"] for k, v in landed.a["activity_contacts"]["rows"].items()}
    # Bob was removed from the meeting: his stale association row is not an attendee any more
    assert links == {("501", "301"): False, ("502", "303"): False, ("504", "303"): True}


def test_a_changed_mapping_config_changes_the_output_without_re_extracting(landed):
    # the third landing was incremental: the mapping tables were replaced, no record was re-listed
    assert not [c for c in landed.calls_3 if c.path == DEALS and c.query.get("archived") == "false"]
    assert not [c for c in landed.calls_3 if c.path == "/crm/v3/objects/tasks"]  # tasks are no activity any more
    b = landed.b
    assert b["stages"] == landed.a["stages"] | {"rows": b["stages"]["rows"]} and len(b["stages"]["rows"]) == 6
    assert {k: a["segment"] for k, a in b["accounts"]["rows"].items()} == {"201": "small", "202": "big", "203": "big"}
    assert b["contacts"]["rows"]["302"]["buying_role"] == "influencer"
    rita = b["reps"]["rows"]["102"]
    assert (rita["manager_id"], rita["segment"], rita["slack_user_id"], rita["hired_on"]) == (
        "104", "mid_market", "U02", dt.date(2025, 1, 6))  # the owner entry (by email, any case) wins over the team
    assert b["managers"]["rows"]["104"]["manager_name"] == "Wes Lead"
    assert {k: a["activity_type"] for k, a in b["activities"]["rows"].items()} == {
        "501": "meeting", "502": "phone_call", "503": "email"}
    assert {f["field_name"] for f in b["field_history"]["rows"].values()} == {"deal_value"}
    assert {o["source_url"] for o in b["opportunities"]["rows"].values()} == {None}
    # a fiscal year from February: Rita's July target falls in the quarter from May, August's and September's in August's
    assert {q: r["quota_amount"] for (rep, q), r in b["quotas"]["rows"].items() if rep == "102"} == {
        dt.date(2026, 5, 1): 10000.0, dt.date(2026, 8, 1): 20000.0}


def test_goal_targets_reach_fct_quotas_and_a_quotas_file_row_wins(landed):
    assert "fct_quotas" in landed.dbt_output
    q = dt.date
    got = {(rep, quarter): (amount, system) for rep, quarter, amount, system in landed.fct_quotas}
    team = {(rep, q(2026, m, 1)): (30000.0, "hubspot") for rep in ("103", "104") for m in (1, 4, 7)}
    assert got == {
        ("102", q(2026, 7, 1)): (30000.0, "hubspot"),  # three monthly targets (US time zone) in Q3; no calls goal
        ("103", q(2026, 10, 1)): (90000.0, "hubspot"),  # Ravi's own Q4 quota (starts Sep 30 in UTC)
        **team,  # the West team's yearly 240k: 60k a quarter, split over Ravi and Wes ...
        ("104", q(2026, 10, 1)): (70000.0, "quotas_file"),  # ... Wes alone in Q4 (Ravi has his own), the file wins
        ("101", q(2026, 7, 1)): (50000.0, "hubspot"),  # a goal by owner only
    }
    staged = landed.a["quotas"]["rows"]
    assert staged[("104", q(2026, 10, 1))]["quota_amount"] == 60000.0  # what HubSpot said, before the file
    report = {r["object"]: r for r in landed.first}["quotas"]
    assert report["present"] and report["rows"] == 6 and report["skipped"] == 1 and "Calls" not in (report["notes"] or "")
    assert "1 goal target(s) skipped: not named like a revenue quota" in report["notes"]


def test_without_the_goals_scope_quotas_are_not_applicable_and_the_landing_goes_on(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    with seed_portal(FakeHubSpotServer(max_page=50)) as server:
        server.fail_next("GET", "/crm/v3/objects/goal_targets", 403, category="MISSING_SCOPES",
                         message="This app hasn't been granted all required scopes to make this call.")
        reports = {r["object"]: r for r in land_source(HubSpotSource(TOKEN, server.base_url, _config()), warehouse,
                                                       tmp_path / "work", "run-1")}
    assert reports["opportunities"]["present"] and reports["opportunities"]["rows"] > 0  # everything else landed
    assert not reports["quotas"]["present"] and reports["quotas"]["rows"] == 0
    assert "HTTP 403 MISSING_SCOPES" in reports["quotas"]["notes"]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute(f"select count(*) from {DATASET}.goal_targets").fetchone() == (0,)
    [missing] = [m for m in landing_summary(warehouse, "run-1").missing if "quota" in m]
    assert "HubSpot goals are not readable" in missing and "crm.objects.goals.read" in missing
    assert "low_coverage and attainment_below_midpoint are not applicable" in missing


def test_a_server_error_on_goals_still_fails_the_read(hubspot):
    hubspot.fail_next("GET", "/crm/v3/objects/goal_targets", 400, category="VALIDATION_ERROR")
    with pytest.raises(HubSpotError, match="HTTP 400"):
        _read(HubSpotSource(TOKEN, hubspot.base_url, _config()), "goal_targets")


# --------------------------------------------------------------------------- the note writer


def _message(key: str = "delivery-7f3a:crm_note", deal: str | None = "402") -> OutboundMessage:
    return OutboundMessage(
        item_id="item-1", idempotency_key=key, opportunity_id=deal, subject_label="Initech renewal",
        rep_id="102", rep_name="Rita Rep", rep_slack_user_id=None, rep_email="rita@acme.test",
        manager_id="101", manager_name="Maria Manager", manager_email="maria@acme.test", approver_id="101",
        text="Book the security review <this week>.\nBring the DPA.", edited=False,
    )


@pytest.fixture
def live_ledger(tmp_path):
    with open_ledger(home=tmp_path / "var") as ledger:
        ledger.set_mode("live", actor="ops", reason="test", gates=GATES)
        yield ledger


def test_note_is_written_once_and_a_retry_finds_the_marker(hubspot, live_ledger):
    writer = HubSpotNoteWriter(live_ledger, TOKEN, hubspot.base_url)
    message = _message()
    claimed = dt.datetime.now(dt.UTC)
    assert writer.find_delivered(message, since=claimed) is None

    ref = writer.send(message)
    [post] = hubspot.calls_to("POST", "/crm/v3/objects/notes")
    assert post.body["associations"] == [{"to": {"id": "402"}, "types": [
        {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 214}]}]
    body = post.body["properties"]["hs_note_body"]
    assert "[sales-supervisor:delivery-7f3a:crm_note]" in body and "&lt;this week&gt;" in body
    assert post.body["properties"]["hubspot_owner_id"] == "101" and post.body["properties"]["hs_timestamp"].endswith("Z")

    # a retry (the publisher resuming a claim) checks first and finds the note instead of writing again
    assert writer.find_delivered(message, since=claimed) == ref
    assert len(hubspot.calls_to("POST", "/crm/v3/objects/notes")) == 1
    search = hubspot.calls_to("POST", "/crm/v3/objects/notes/search")[-1]
    assert {"propertyName": "associations.deal", "operator": "EQ", "value": "402"} in search.body["filterGroups"][0]["filters"]
    assert writer.find_delivered(_message(key="another-key"), since=claimed) is None


def test_note_writer_obeys_the_kill_switch_and_reports_unknown_outcomes(hubspot, live_ledger):
    writer = HubSpotNoteWriter(live_ledger, TOKEN, hubspot.base_url)
    hubspot.fail_next("POST", "/crm/v3/objects/notes", 502)
    with pytest.raises(OutcomeUnknown) as exc:  # a 5xx on create may have written: not retried blindly
        writer.send(_message())
    assert TOKEN not in str(exc.value)
    assert len(hubspot.calls_to("POST", "/crm/v3/objects/notes")) == 1

    live_ledger.engage_kill_switch(actor="ops", reason="incident")
    with pytest.raises(SendsHalted):
        writer.send(_message())
    assert len(hubspot.calls_to("POST", "/crm/v3/objects/notes")) == 1  # nothing more left


# --------------------------------------------------------------------------- safety


def test_extract_client_is_read_only(hubspot):
    source = HubSpotSource(TOKEN, hubspot.base_url, _config())
    before = len(hubspot.calls)
    with pytest.raises(ReadOnlyViolation):
        source.client.rest.post("/crm/v3/objects/notes", json={"properties": {}})
    with pytest.raises(ReadOnlyViolation):
        source.client.rest.request("/crm/v3/objects/deals/401", method="PATCH", json={})
    assert len(hubspot.calls) == before  # refused before leaving the process
    for module in ("source.py", "tables.py"):
        text = (Path(__file__).parents[1] / "connectors" / "hubspot" / module).read_text()
        assert "notes" not in [line.split()[1].rsplit(".", 1)[-1] for line in text.splitlines() if line.startswith(("import ", "from "))]


def test_credentials_never_appear_in_logs_or_errors(hubspot, caplog):
    caplog.set_level(logging.DEBUG)
    source = HubSpotSource(TOKEN, hubspot.base_url, _config())
    _read(source, "companies")  # a successful read, logged at DEBUG

    hubspot.fail_next("GET", "/crm/v3/pipelines/deals", 403)
    with pytest.raises(HubSpotError) as forbidden:
        _read(source, "pipeline_stages")
    assert "HTTP 403" in str(forbidden.value) and "scope" in str(forbidden.value)

    for _ in range(4):
        hubspot.fail_next("GET", "/crm/v3/objects/contacts", 503)
    with pytest.raises(HubSpotError) as unavailable:
        _read(source, "contacts")
    assert "HTTP 503" in str(unavailable.value)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    offline = HubSpotSource(TOKEN, f"http://127.0.0.1:{closed_port}", _config(retry={"max_attempts": 1}))
    with pytest.raises(HubSpotError) as refused:
        _read(offline, "companies")

    for exc in (forbidden.value, unavailable.value, refused.value):
        assert TOKEN not in str(exc) and TOKEN not in repr(exc)
        assert exc.__cause__ is None  # raised "from None": no chained request objects in tracebacks
    assert "/crm/v3/objects/companies" in caplog.text  # the requests were logged (dlt's REST client, DEBUG)
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(source) and TOKEN not in repr(source.client) and TOKEN not in repr(source.client.rest.auth)


def test_from_env_reads_the_token_base_url_and_config(hubspot, tmp_path):
    config = tmp_path / "hubspot.yaml"
    config.write_text("managers: [maria@acme.test]\nemployee_bands: [{below: 100, segment: small}, {below: null, segment: big}]\n")
    source = HubSpotSource.from_env({"HUBSPOT_TOKEN": TOKEN, "HUBSPOT_BASE_URL": hubspot.base_url,
                                     "HUBSPOT_PORTAL_ID": "77", "HUBSPOT_CONFIG": str(config)})
    assert source.config.portal_id == "77"
    assert {r["setting"]: r["value"] for r in _read(source, "map_settings").rows}["portal_id"] == "77"
    assert [r["owner"] for r in _read(source, "map_managers").rows] == ["maria@acme.test"]
    assert [(b["band_order"], b["segment"], b["below"]) for b in _read(source, "map_segment_bands").rows] == [
        (1, "small", 100), (2, "big", None)]
    assert len(_read(source, "companies").rows) == 3  # the token and base URL work
    with pytest.raises(HubSpotError, match="HUBSPOT_TOKEN"):
        HubSpotSource.from_env({})
