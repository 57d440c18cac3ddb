"""The Salesforce connector against a local fake of the REST API.

Extraction (native rows of ``raw_salesforce``): SOQL paging, retries, typing, rejections, schema
drift, deletions, incremental cursors, GET only. Mapping (dbt ``stg_salesforce__*``): the fake
org landed with ``land_source`` and built once per module, then the canonical outputs asserted;
a changed config re-landed into a copy changes them. Plus the note writer and secrecy."""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import time
import traceback
from pathlib import Path

import duckdb
import pytest

from agents.accountability.quotas import land_quotas_file
from agents.ledger import SendsHalted
from agents.review.channels import OutboundMessage, OutcomeUnknown, PermanentSendError
from agents.warehouse import Warehouse
from connectors.landing import land_source, load_cursors
from connectors.salesforce import SalesforceApiError, SalesforceAuthError, SalesforceConfig, SalesforceSource
from connectors.salesforce.notes import SalesforceNoteWriter
from connectors.salesforce.source import SOBJECT_FIELDS, snake_case
from connectors.salesforce.tables import DATASET, TABLES
from connectors.schema import RAW_OBJECTS
from sales_supervisor.pipeline import landing_summary
from tests.fakes.salesforce_server import CLIENT_ID, CLIENT_SECRET, TOKEN, FakeSalesforce, sf_id
from tests.support import dbt_build


def fast_config(**overrides) -> SalesforceConfig:
    return SalesforceConfig(**{"backoff_factor": 0.01, "max_retry_delay": 2.0, "max_attempts": 4, **overrides})


@pytest.fixture
def sf():
    with FakeSalesforce(page_size=3) as server:
        yield server


def read_all(source: SalesforceSource, name: str, cursor: str | None = None) -> tuple[list[dict], list[dict]]:
    rows, rejected = [], []
    for batch in source.read(name, batch_size=4, cursor=cursor):
        rows += batch.rows
        rejected += batch.rejected
    return rows, rejected


OPP = [sf_id("Opportunity", n) for n in range(1, 10)]
MANAGER, RITA, RAVI = sf_id("User", 1), sf_id("User", 2), sf_id("User", 3)
ACME, GLOBEX = sf_id("Account", 1), sf_id("Account", 2)
CONTACT = [sf_id("Contact", n) for n in range(1, 4)]
TASK = [sf_id("Task", n) for n in range(1, 4)]
EVENT1 = sf_id("Event", 1)


# -- the native tables ---------------------------------------------------------------------------
def test_native_tables_follow_the_api_names_and_feed_every_canonical_object():
    assert DATASET == "raw_salesforce"
    fed = {t.feeds for t in TABLES.values()}
    assert fed == set(RAW_OBJECTS)  # quotas too: ForecastingQuota
    assert TABLES["opportunity_contact_role"].feeds == "contacts" and TABLES["manager"].feeds == "managers"
    assert TABLES["forecasting_quota"].feeds == "quotas"
    assert {n for n, t in TABLES.items() if t.snapshot} == {
        "opportunity_stage", "manager", "forecasting_quota", *(n for n in TABLES if n.startswith("map_"))}
    # not plain API fields (forecasting_type: ForecastingType.DeveloperName)
    configured = {"api_name", "segment_value", "slack_user_id", "tags_value", "forecasting_type"}
    for table, (_, fields) in SOBJECT_FIELDS.items():
        from_api = {snake_case(f) for f in ("Id", *fields)}
        declared = set(TABLES[table].field_names)
        assert from_api <= declared, table
        assert declared - from_api - configured <= {"system_modstamp"}, table
    assert snake_case("CompletedDateTime") == "completed_date_time" and snake_case("SystemModstamp") == "system_modstamp"


# -- extraction --------------------------------------------------------------------------------------
def test_opportunity_rows_typed_paged_retried_with_extra_fields_and_rejections(sf):
    # locator 1 is the stage list (read first, to validate stages), 2 the opportunities
    sf.fail("/query/01gFAKE00000002-3", 429, [{"message": "busy", "errorCode": "REQUEST_LIMIT_EXCEEDED"}], {"Retry-After": "1"})
    sf.fail("/sobjects/Opportunity/describe", 503)  # no Retry-After: exponential backoff
    sf.fail("FROM Account", 500)
    source = SalesforceSource(sf.instance_url, TOKEN, config=fast_config())

    started = time.monotonic()
    rows, rejected = read_all(source, "opportunity")
    assert time.monotonic() - started >= 0.9  # the 429's Retry-After was honoured

    # 8 records in pages of 3: the first query plus two queryMore calls (one retried after the 429)
    opp_requests = [r for r in sf.requests if r.sobject == "Opportunity" or "/query/01gFAKE00000002" in r.path]
    assert [r.path.rsplit("/", 1)[-1] for r in opp_requests] == ["query", "01gFAKE00000002-3", "01gFAKE00000002-3", "01gFAKE00000002-6"]
    assert len([r for r in sf.requests if r.path.endswith("/sobjects/Opportunity/describe")]) == 2  # the 503, then success
    assert {r.method for r in sf.requests} == {"GET"}  # the source never writes

    by_id = {r["id"]: r for r in rows}
    assert set(by_id) == {OPP[0], OPP[1], OPP[2], OPP[3], OPP[4], OPP[7]}
    first = by_id[OPP[0]]
    assert first["amount"] == 12000.0 and first["stage_name"] == "Qualification" and first["next_step"] == "Send proposal"
    assert first["created_date"] == dt.datetime(2025, 10, 13, 9, 0) and first["close_date"] == dt.date(2026, 3, 11)
    assert first["is_closed"] is False and by_id[OPP[3]]["is_won"] is True and first["owner_id"] == RITA
    assert first["_extra"]["Priority__c"] == "High"  # a custom field outside the declared columns
    assert "StageName" not in first["_extra"] and "IsDeleted" not in first["_extra"]
    assert first["_is_deleted"] is False and first["_source_file"] == "Opportunity" and first["_source_row"] == 1
    assert set(TABLES["opportunity"].field_names) | {"_is_deleted", "_extra", "_source_file", "_source_row"} == set(first)
    assert by_id[OPP[7]]["stage_name"] == "Prospecting"  # the org's spelling of a stage

    reasons = {json.loads(r["raw_record"])["Id"]: r for r in rejected}
    assert set(reasons) == {OPP[5], OPP[6]}
    assert reasons[OPP[5]]["field"] == "amount" and "negative amount" in reasons[OPP[5]]["reason"]
    assert reasons[OPP[6]]["field"] == "stage_name" and "unknown stage 'Discovery'" in reasons[OPP[6]]["reason"]
    assert reasons[OPP[6]]["object"] == "opportunity" and reasons[OPP[6]]["source_file"] == "Opportunity"
    assert reasons[OPP[6]]["row_number"] >= 1
    assert source.reports["opportunity"].rows == 6 and source.reports["opportunity"].rejected == 2

    accounts, _ = read_all(source, "account")  # the 500 was retried
    assert len([r for r in sf.requests if r.sobject == "Account"]) == 2
    assert {a["name"]: a["number_of_employees"] for a in accounts} == {"Acme": 50, "Globex": 5000}
    assert accounts[0]["_extra"]["Tier__c"] == "Gold"


def test_implausible_dates_and_amounts_are_quarantined_like_csv_rows(sf):
    """A 1900 placeholder close date, a 2099 one and an amount in cents are refused with the CSV
    quarantine's words; the window and ceiling come from the config's plausibility."""
    owner, account = RITA, ACME
    common = dict(AccountId=account, OwnerId=owner, StageName="Qualification", IsClosed=False, IsWon=False)
    placeholder = sf.org.add("Opportunity", Name="Placeholder", Amount=100.0, CloseDate="1900-01-01", **common)
    far = sf.org.add("Opportunity", Name="Far future", Amount=100.0, CloseDate="2099-06-30", **common)
    cents = sf.org.add("Opportunity", Name="Cents", Amount=25_000_000_000_000.0, CloseDate="2026-06-30", **common)

    _, rejected = read_all(SalesforceSource(sf.instance_url, TOKEN, config=fast_config()), "opportunity")
    bad = {json.loads(r["raw_record"])["Id"]: r for r in rejected}
    assert bad[placeholder]["field"] == "close_date"
    assert "date outside the plausible window 1990-01-01 to" in bad[placeholder]["reason"]
    assert "(plausibility): 1900-01-01" in bad[placeholder]["reason"]
    assert bad[far]["field"] == "close_date" and "outside the plausible window" in bad[far]["reason"]
    assert bad[cents]["field"] == "amount"
    assert "amount above the ceiling of 10,000,000,000 (plausibility.max_amount)" in bad[cents]["reason"]

    generous = SalesforceSource(sf.instance_url, TOKEN, config=fast_config(plausibility={"max_amount": 1e14, "max_years_ahead": 80}))
    rows, rejected = read_all(generous, "opportunity")
    assert {far, cents} <= {r["id"] for r in rows} and placeholder in {json.loads(r["raw_record"])["Id"] for r in rejected}
    assert generous.max_quarantine_share == 0.2


def test_every_table_reads_native_rows_and_the_config_as_map_tables(sf):
    config = fast_config(rep_segment_field="Department", rep_segment_map={"SMB": "smb"}, default_buying_role="other")
    source = SalesforceSource(sf.instance_url, TOKEN, config=config)
    got = {name: read_all(source, name) for name in TABLES}
    for name, (rows, rejected) in got.items():
        for row in rows:
            assert set(TABLES[name].field_names) <= set(row), name
            assert isinstance(row["_is_deleted"], bool) and isinstance(row["_extra"], dict), name
        assert source.reports[name].rows == len(rows), name
    with pytest.raises(KeyError):
        source.read("quotas")  # no such native table, raised at once
    with pytest.raises(KeyError):
        source.read("opportunities")  # canonical names are not native tables

    stages = {r["master_label"]: r for r in got["opportunity_stage"][0]}
    assert stages["Closed Won"]["is_won"] and stages["Closed Lost"]["is_closed"] and not stages["Closed Lost"]["is_won"]
    assert stages["Legacy Stage"]["is_active"] is False and stages["Prospecting"]["sort_order"] == 1
    users = {r["id"]: r for r in got["user"][0]}
    assert sf_id("User", 4) not in users  # the integration user is not a rep (rep_filter)
    assert users[RITA]["manager_id"] == MANAGER and users[RITA]["segment_value"] == "SMB" and users[RAVI]["is_active"] is False
    assert "Department" not in users[RITA]["_extra"] and users[RITA]["_extra"]["UserType"] == "Standard"
    assert [r["id"] for r in got["manager"][0]] == [MANAGER]
    roles = {(r["contact_id"], r["role"]) for r in got["opportunity_contact_role"][0]}
    assert roles == {(CONTACT[0], "Decision Maker"), (CONTACT[1], "Influencer"), (CONTACT[1], "Executive Sponsor")}
    assert {r["field"] for r in got["opportunity_field_history"][0]} == {"CloseDate", "Amount"}  # StageName not fetched
    # Task 2 is on an account, not an opportunity; Task 4 (planned) lands, and dbt leaves it out of activities
    assert {r["id"] for r in got["task"][0]} == {TASK[0], TASK[2], sf_id("Task", 4)}
    assert {r["id"]: r["_extra"]["Status"] for r in got["task"][0]}[sf_id("Task", 4)] == "Not Started"
    assert {(r["task_id"], r["relation_id"]) for r in got["task_relation"][0]} == {(TASK[0], CONTACT[0])}
    assert {r["relation_id"] for r in got["event_relation"][0]} == {CONTACT[2], RITA}  # the user is filtered in dbt

    maps = {name: rows for name, (rows, _) in got.items() if name.startswith("map_")}
    strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]  # noqa: E731
    assert strip(maps["map_rep_segments"]) == [{"source_value": "SMB", "segment": "smb"}]
    assert strip(maps["map_segment_bands"]) == [
        {"band_order": 1, "segment": "smb", "max_employees": 200},
        {"band_order": 2, "segment": "mid_market", "max_employees": 1000},
        {"band_order": 3, "segment": "enterprise", "max_employees": None},
    ]
    priority = {r["buying_role"]: (r["priority"], r["is_default"]) for r in maps["map_buying_role_priority"]}
    assert priority["decision_maker"] == (1, False) and priority["user"] == (5, False) and priority["other"] == (None, True)
    assert {"source_value": "Economic Buyer", "buying_role": "decision_maker"} in strip(maps["map_buying_roles"])
    assert strip(maps["map_field_history"]) == [{"field": "CloseDate", "field_name": "close_date"}, {"field": "Amount", "field_name": "amount"}]
    assert strip(maps["map_settings"]) == [{"setting": "instance_url", "value": sf.instance_url},
                                           {"setting": "quota_forecasting_type", "value": None},
                                           {"setting": "fiscal_year_start_month", "value": "1"}]
    assert maps["map_task_types"][0]["_source_file"] == "config: task_types"
    # the segment field wins over bands: no bands are emitted then
    with_field = SalesforceSource(sf.instance_url, TOKEN, config=fast_config(account_segment_field="Tier__c"))
    assert read_all(with_field, "map_segment_bands") == ([], [])
    assert {r["name"]: r["segment_value"] for r in read_all(with_field, "account")[0]} == {"Acme": "Gold", "Globex": None}

    assert set(source.cursors) == {n for n, t in TABLES.items() if not t.snapshot}  # snapshots carry no cursor
    assert {r.method for r in sf.requests} == {"GET"}


def _change_the_org(sf: FakeSalesforce) -> None:
    org = sf.org
    org.add_field("Opportunity", "Health__c")  # a field created in the org between runs
    org.update("Opportunity", OPP[1], Amount=35000.0, Health__c="green")
    org.delete("Opportunity", OPP[2])
    org.add("Opportunity", Name="Acme new", AccountId=ACME, OwnerId=RITA, StageName="Prospecting", Amount=5000.0,
            CreatedDate="2026-01-11T08:00:00.000+0000", CloseDate="2026-04-01", IsClosed=False, IsWon=False, NextStep=None, Priority__c=None)
    # Cy gains a role on a deal; his Contact record itself is unchanged
    org.add("OpportunityContactRole", ContactId=CONTACT[2], OpportunityId=OPP[0], Role="Technical Buyer", IsPrimary=False)
    # Bob's Executive Sponsor role is removed: his other role (Influencer) is what counts now
    sponsor = next(r for r in org.records["OpportunityContactRole"].values() if r["Role"] == "Executive Sponsor")
    org.delete("OpportunityContactRole", sponsor["Id"])
    org.delete("Task", TASK[0])  # its WhoId and TaskRelation links go with it
    org.update("ForecastingQuota", sf_id("ForecastingQuota", 5), QuotaAmount=120000.0)  # Ravi's Q1 quota raised


def test_second_run_fetches_only_changes_since_the_cursor(sf):
    first = SalesforceSource(sf.instance_url, TOKEN, config=fast_config())
    for name in TABLES:
        read_all(first, name)
    cursors = dict(first.cursors)
    assert json.loads(cursors["opportunity"])["Opportunity"] == "2026-01-10T09:24:00Z"
    assert json.loads(cursors["opportunity_field_history"])["OpportunityFieldHistory"] == "2026-01-10T09:34:00Z"  # CreatedDate

    _change_the_org(sf)
    sf.reset_requests()
    second = SalesforceSource(sf.instance_url, TOKEN, config=fast_config())
    got = {name: read_all(second, name, cursors.get(name)) for name in TABLES}

    opps = {r["id"]: r for r in got["opportunity"][0]}
    assert set(opps) == {OPP[1], OPP[2], OPP[8]}
    assert opps[OPP[1]]["amount"] == 35000.0 and opps[OPP[1]]["_extra"]["Health__c"] == "green"
    assert opps[OPP[2]]["_is_deleted"] is True and opps[OPP[1]]["_is_deleted"] is False
    opp_queries = [r for r in sf.requests if r.sobject == "Opportunity"]
    assert len(opp_queries) == 1 and opp_queries[0].path.endswith("/queryAll")  # one page, deletions included
    assert "WHERE SystemModstamp > 2026-01-10T09:24:00Z" in opp_queries[0].soql
    assert "Health__c" in opp_queries[0].soql  # selected because describe now lists it
    assert not sf.query_more("Opportunity")  # 3 changes: one page, nothing to page through
    assert json.loads(second.cursors["opportunity"])["Opportunity"] > "2026-01-10T09:24:00Z"

    assert got["account"] == ([], []) and got["opportunity_history"] == ([], []) and got["contact"] == ([], [])
    assert "SystemModstamp > 2026-01-10T09:13:00Z" in sf.soql_sent("Account")[0]
    assert second.cursors["account"] == cursors["account"]  # nothing changed: the cursor stays
    assert "CreatedDate > 2026-01-10T09:34:00Z" in sf.soql_sent("OpportunityFieldHistory")[0]
    roles = {(r["contact_id"], r["role"], r["_is_deleted"]) for r in got["opportunity_contact_role"][0]}
    assert roles == {(CONTACT[2], "Technical Buyer", False), (CONTACT[1], "Executive Sponsor", True)}
    assert [(r["id"], r["_is_deleted"]) for r in got["task"][0]] == [(TASK[0], True)]
    assert len(got["opportunity_stage"][0]) == 7 and len(got["map_buying_roles"][0]) == 9  # snapshots: whole again

    # a config that changes what a table selects (a new segment field) re-reads that table whole
    third = SalesforceSource(sf.instance_url, TOKEN, config=fast_config(account_segment_field="Tier__c"))
    sf.reset_requests()
    accounts, _ = read_all(third, "account", second.cursors["account"])
    assert {a["id"]: a["segment_value"] for a in accounts} == {ACME: "Gold", GLOBEX: None}
    assert "SystemModstamp >" not in sf.soql_sent("Account")[0]


# -- the mapping, end to end: land with land_source, dbt build the staging models -------------------
STAGING = "staging.stg_salesforce__"


def _query(warehouse: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


@pytest.fixture(scope="module")
def landed(tmp_path_factory):
    """The fake org landed twice (an incremental second run after changes), then
    a quotas file, then ``dbt build --select stg_salesforce__* +fct_quotas`` once. Yields (server,
    warehouse, dbt output)."""
    tmp = tmp_path_factory.mktemp("salesforce")
    warehouse = tmp / "warehouse.duckdb"
    # account_segment_map is unused while bands apply (no account_segment_field), but landing it now
    # creates the table through dlt; see the report: a map table first landed empty cannot be loaded later
    config = fast_config(rep_segment_field="Department", rep_segment_map={"SMB": "smb"}, account_segment_map={"Gold": "gold"})
    with FakeSalesforce(page_size=3) as server:
        land_source(SalesforceSource(server.instance_url, TOKEN, config=config), warehouse, tmp / "work", "run-1",
                    dt.datetime(2026, 1, 11))
        _change_the_org(server)
        server.reset_requests()
        land_source(SalesforceSource(server.instance_url, TOKEN, config=config), warehouse, tmp / "work", "run-2",
                    dt.datetime(2026, 1, 12))
        # a quotas file beside the CRM's quotas: its row for Rita's Q2 wins over ForecastingQuota's
        quotas_file = tmp / "quotas.csv"
        quotas_file.write_text("rep,period,amount\nrita@example.com,2026-Q2,55000\n")
        with Warehouse.coerce(warehouse).connect() as con:
            land_quotas_file(con, quotas_file)
        # fct_quotas and what it reads; 'cautious': no tests of other staging models half-selected
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("DBT_INDIRECT_SELECTION", "cautious")
            output = dbt_build(warehouse, "stg_salesforce__* +fct_quotas")
        yield server, warehouse, output


def test_landing_merges_native_tables_and_quarantines(landed):
    server, warehouse, output = landed
    assert "stg_salesforce__contacts_buying_role_priority_across_roles" in output  # the dbt unit tests ran
    assert "ERROR=0" in output
    # the second landing was incremental: only the changes were queried
    assert "SystemModstamp > 2026-01-10T09:24:00Z" in server.soql_sent("Opportunity")[0]
    assert {r.method for r in server.requests} == {"GET"}
    assert _query(warehouse, f"select count(*), count(distinct id) from {DATASET}.opportunity")[0] == (7, 7)  # merged by key
    extra = _query(warehouse, f"select _extra from {DATASET}.opportunity where id = ?", [OPP[1]])[0][0]
    assert json.loads(extra)["Health__c"] == "green"
    rejected = _query(warehouse, "select object, field, source_file from raw.rejected_rows order by field")
    assert [(o, f) for o, f, _ in rejected] == [("opportunities", "amount"), ("opportunities", "stage_name")]
    assert all("opportunity" in s for _, _, s in rejected)
    assert _query(warehouse, f"select count(*) from {DATASET}.map_buying_roles")[0][0] == 9  # replaced, not appended
    assert set(load_cursors(warehouse, "salesforce")) == {n for n, t in TABLES.items() if not t.snapshot}


def test_stages_reps_managers_and_accounts(landed):
    _, warehouse, _ = landed
    stages = _query(warehouse, f"select stage, stage_order, is_closed, is_won from {STAGING}stages order by stage_order")
    assert [s[0] for s in stages][:2] == ["Prospecting", "Qualification"] and len(stages) == 7
    assert ("Closed Won", 5, True, True) in stages and ("Closed Lost", 6, True, False) in stages
    assert _query(warehouse, f"select manager_id, manager_name from {STAGING}managers") == [(MANAGER, "Maria Manager")]
    reps = {r[0]: r[1:] for r in _query(warehouse, f"select rep_id, manager_id, segment, is_active from {STAGING}reps")}
    assert reps[RITA] == (MANAGER, "smb", True)  # mapped through rep_segment_map
    assert reps[RAVI] == (MANAGER, "Enterprise", False)  # a value the map lacks is kept
    assert sf_id("User", 4) not in reps
    accounts = dict(_query(warehouse, f"select account_name, segment from {STAGING}accounts"))
    assert accounts == {"Acme": "smb", "Globex": "enterprise"}  # NumberOfEmployees bands


def test_contacts_get_their_highest_priority_live_buying_role(landed):
    _, warehouse, _ = landed
    roles = dict(_query(warehouse, f"select contact_id, buying_role from {STAGING}contacts"))
    # Ann: Decision Maker; Bob: Executive Sponsor (deleted, ignored) + Influencer; Cy: a new Technical Buyer role
    assert roles == {CONTACT[0]: "decision_maker", CONTACT[1]: "influencer", CONTACT[2]: "technical_evaluator"}


def test_opportunities_and_history(landed):
    server, warehouse, _ = landed
    opps = {r[0]: r[1:] for r in _query(
        warehouse, f"select opportunity_id, stage, amount, is_closed, is_won, source_url, owner_rep_id, _is_deleted from {STAGING}opportunities")}
    assert len(opps) == 7
    assert opps[OPP[0]] == ("Qualification", 12000.0, False, False, f"{server.instance_url}/{OPP[0]}", RITA, False)
    assert opps[OPP[1]][1] == 35000.0 and opps[OPP[3]][2:4] == (True, True)
    assert opps[OPP[2]][-1] is True  # deleted in Salesforce: flagged, not dropped
    assert opps[OPP[7]][0] == "Prospecting"
    history = _query(warehouse, f"select opportunity_id, stage from {STAGING}stage_history order by entered_at, stage_history_id")
    assert history.count((OPP[2], "Prospecting")) == 2 and (OPP[0], "Qualification") in history and len(history) == 5
    changes = set(_query(warehouse, f"select opportunity_id, field_name, old_value, new_value from {STAGING}field_history"))
    assert changes == {(OPP[0], "close_date", "2026-02-01", "2026-03-11"), (OPP[1], "amount", "25000", "30000")}


def test_activities_and_their_contacts(landed):
    _, warehouse, _ = landed
    acts = {r[0]: r[1:] for r in _query(
        warehouse, f"select activity_id, activity_type, opportunity_id, rep_id, occurred_at, _is_deleted from {STAGING}activities")}
    assert set(acts) == {TASK[0], TASK[2], EVENT1}  # Task 2 is on an account
    assert acts[TASK[0]] == ("call", OPP[0], RITA, dt.datetime(2026, 1, 5, 15, 0), True)  # deleted in the second run
    assert acts[TASK[2]][0] == "email" and acts[TASK[2]][3] == dt.datetime(2026, 1, 7)  # ActivityDate when not completed
    assert acts[EVENT1][0] == "meeting" and acts[EVENT1][3] == dt.datetime(2026, 1, 8, 12, 0)  # counts once it ended
    assert sf_id("Task", 4) not in acts  # Status 'Not Started': planned, not past activity
    pairs = {(a, c): d for a, c, d in _query(warehouse, f"select activity_id, contact_id, _is_deleted from {STAGING}activity_contacts")}
    # the WhoId link of Task 1 duplicates its TaskRelation (one pair); Rita (a user) is no contact
    # the planned Task 4's link stays in staging; the marts' bridge keeps only links of activities in fct_activities
    assert pairs == {(TASK[0], CONTACT[0]): True, (EVENT1, CONTACT[1]): False, (EVENT1, CONTACT[2]): False,
                     (sf_id("Task", 4), CONTACT[0]): False}


def test_forecasting_quotas_reach_fct_quotas_and_a_quotas_file_row_wins(landed):
    _, warehouse, output = landed
    assert "fct_quotas" in output and "ERROR=0" in output
    got = {(r, q.isoformat()): (a, s) for r, q, a, s in _query(
        warehouse, "select rep_id, quarter_start, quota_amount, source_system from marts.fct_quotas")}
    assert got == {
        (RITA, "2026-01-01"): (30000.0, "salesforce"),  # three monthly quotas of the Revenue forecast type
        (RITA, "2026-04-01"): (55000.0, "quotas_file"),  # the file's row wins over ForecastingQuota's 20000
        (RAVI, "2026-01-01"): (120000.0, "salesforce"),  # re-read whole: the raised quota; no Hardware split
    }  # nor the other forecast type's 99,999, the manager's roll-up, nor the quantity quota
    staged = _query(warehouse, f"select rep_id, quarter_start, quota_amount from {STAGING}quotas order by 1, 2")
    assert [(r, q.isoformat(), a) for r, q, a in staged] == [
        (RITA, "2026-01-01", 30000.0), (RITA, "2026-04-01", 20000.0), (RAVI, "2026-01-01", 120000.0)]
    report = _query(warehouse, "select present, rows, source_file from raw.landing_reports "
                               "where object = 'quotas' and landing_id = 'run-2'")
    assert report == [(True, 9, f"{DATASET}.forecasting_quota (9)")]


def test_quota_type_and_fiscal_year_are_configurable(landed, tmp_path):
    server, warehouse, _ = landed
    copy = tmp_path / "copy" / warehouse.name
    copy.parent.mkdir()
    shutil.copy(warehouse, copy)
    config = fast_config(quota_forecasting_type="OpportunitySplitRevenue", fiscal_year_start_month=2)
    land_source(SalesforceSource(server.instance_url, TOKEN, config=config), copy, tmp_path / "work", "run-3", dt.datetime(2026, 1, 13))
    rows = _query(copy, f"select rep_id, quarter_start, quota_amount from {STAGING}quotas")
    assert rows == [(RITA, dt.date(2025, 11, 1), 99999.0)]  # January sits in the fiscal quarter from November


@pytest.mark.parametrize("status, code", [(None, "NOT_FOUND"), (400, "INVALID_TYPE"), (403, "INSUFFICIENT_ACCESS")])
def test_unreadable_forecasting_quota_makes_quotas_not_applicable_without_failing_the_landing(tmp_path, status, code):
    warehouse = tmp_path / "warehouse.duckdb"
    with FakeSalesforce(page_size=50) as server:
        if status is None:  # an org without Collaborative Forecasts: the fake answers describe with 404 NOT_FOUND
            server.org.records.pop("ForecastingQuota")
        else:
            server.fail("/sobjects/ForecastingQuota/describe", status, [{"message": "no forecasts for you", "errorCode": code}])
        reports = land_source(SalesforceSource(server.instance_url, TOKEN, config=fast_config()), warehouse, tmp_path / "work", "run-1")
    by_object = {r["object"]: r for r in reports}
    assert by_object["reps"]["rows"] == 3 and by_object["opportunities"]["present"]  # the rest landed
    quotas = by_object["quotas"]
    assert not quotas["present"] and quotas["rows"] == 0
    assert f"ForecastingQuota is not readable ({status or 404} {code}: " in quotas["notes"]
    assert _query(warehouse, f"select count(*) from {DATASET}.forecasting_quota") == [(0,)]
    summary = landing_summary(warehouse, "run-1")
    [missing] = [m for m in summary.missing if "quota" in m]
    assert "low_coverage and attainment_below_midpoint are not applicable" in missing
    assert "View All Forecasts" in missing and code in missing


def test_an_outage_or_a_bad_token_on_forecasting_quota_still_fails(sf):
    sf.fail("/sobjects/ForecastingQuota/describe", 500, times=2)
    with pytest.raises(SalesforceApiError, match="500"):
        read_all(SalesforceSource(sf.instance_url, TOKEN, config=fast_config(max_attempts=2)), "forecasting_quota")
    with pytest.raises(SalesforceAuthError):
        read_all(SalesforceSource(sf.instance_url, "wrong-token", config=fast_config()), "forecasting_quota")


def test_staging_models_output_exactly_the_canonical_columns(landed):
    _, warehouse, _ = landed
    lineage = ["_source_system", "_source_file", "_source_row", "_loaded_at", "_is_deleted"]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for name, obj in RAW_OBJECTS.items():
            cur = con.execute(f"select * from {STAGING}{name} limit 1")
            assert [d[0] for d in cur.description] == [*obj.field_names, *lineage], name
            system, loaded = con.execute(f"select min(_source_system), min(_loaded_at) from {STAGING}{name}").fetchone()
            assert system == "salesforce" and loaded is not None, name


def test_a_changed_config_changes_the_mapping(landed, tmp_path):
    server, warehouse, _ = landed
    copy = tmp_path / "copy" / warehouse.name  # same file name: the views name the database by it
    copy.parent.mkdir()
    shutil.copy(warehouse, copy)
    config = fast_config(
        account_segment_field="Tier__c", account_segment_map={"Gold": "strategic"},
        buying_roles={**SalesforceConfig().buying_roles, "Influencer": "champion"},
        task_subtypes={"Call": "phone"}, event_types={"Meeting": "workshop"}, rep_filter=None,
    )
    land_source(SalesforceSource(server.instance_url, TOKEN, config=config), copy, tmp_path / "work", "run-3", dt.datetime(2026, 1, 13))
    # the staging models are views: the new map_* tables (and re-read accounts) change them without a dbt run
    assert dict(_query(copy, f"select account_name, segment from {STAGING}accounts")) == {"Acme": "strategic", "Globex": None}
    assert dict(_query(copy, f"select contact_id, buying_role from {STAGING}contacts"))[CONTACT[1]] == "champion"
    types = dict(_query(copy, f"select activity_id, activity_type from {STAGING}activities"))
    assert types[TASK[0]] == "phone" and types[EVENT1] == "workshop" and types[TASK[2]] == "email"  # Type Email still maps
    assert sf_id("User", 4) in dict(_query(copy, f"select rep_id, rep_name from {STAGING}reps"))  # no rep_filter: every user
    # the original warehouse is untouched
    assert dict(_query(warehouse, f"select account_name, segment from {STAGING}accounts"))["Acme"] == "smb"


# -- the note writer and secrecy -----------------------------------------------------------------------
class _Ledger:
    def __init__(self, allowed: bool = True):
        self.allowed = allowed

    def sends_allowed(self):
        return (True, "") if self.allowed else (False, "shadow mode: nothing reaches reps or the CRM")


def _message(key: str, opportunity_id: str | None = OPP[0]) -> OutboundMessage:
    return OutboundMessage(
        item_id=f"item-{key}", idempotency_key=key, opportunity_id=opportunity_id, subject_label="Acme expansion",
        rep_id=RITA, rep_name="Rita Rep", rep_slack_user_id=None, rep_email="rita@example.com", manager_id=MANAGER,
        manager_name="Maria Manager", manager_email="maria@example.com", approver_id=MANAGER,
        text="Book the economic buyer before the proposal.", edited=False,
    )


def test_note_writer_writes_once_and_a_retry_finds_the_marker(sf):
    writer = SalesforceNoteWriter(_Ledger(), sf.instance_url, TOKEN, config=fast_config())
    message = _message("coach-1")
    assert writer.find_delivered(message) is None

    ref = writer.send(message)
    posts = [r for r in sf.requests if r.method == "POST"]
    assert len(posts) == 1 and posts[0].path.endswith("/sobjects/Task")
    body = posts[0].body
    assert body["WhatId"] == OPP[0] and body["Status"] == "Completed" and body["OwnerId"] == MANAGER
    assert "[sales-supervisor:coach-1]" in body["Description"] and "economic buyer" in body["Description"]
    # the publisher's retry checks first and records the existing note instead of writing again
    assert writer.find_delivered(message, since=dt.datetime.now(dt.timezone.utc)) == ref
    assert writer.find_delivered(_message("coach-other")) is None

    # the write happened but its answer was lost: the send fails, the check finds it
    sf.fail(lambda r: r.method == "POST", 500, after=True)
    lost = _message("coach-2")
    with pytest.raises(OutcomeUnknown):
        writer.send(lost)
    assert writer.find_delivered(lost) is not None
    assert len([r for r in sf.requests if r.method == "POST"]) == 2  # no retry inside send after a 500

    sf.fail(lambda r: r.method == "POST", 400, [{"message": "invalid id", "errorCode": "INVALID_CROSS_REFERENCE_KEY"}])
    with pytest.raises(PermanentSendError):
        writer.send(_message("coach-3"))


def test_note_writer_checks_the_kill_switch_before_writing(sf):
    writer = SalesforceNoteWriter(_Ledger(allowed=False), sf.instance_url, TOKEN, config=fast_config())
    with pytest.raises(SendsHalted):
        writer.send(_message("coach-halted"))
    with pytest.raises(PermanentSendError):
        SalesforceNoteWriter(_Ledger(), sf.instance_url, TOKEN).send(_message("no-opp", opportunity_id=None))
    assert not [r for r in sf.requests if r.method == "POST"]


@pytest.fixture
def debug_logs(caplog):
    """Everything at DEBUG, dlt's request logging (which prints request headers) included."""
    saved = {n: (logging.getLogger(n).level, logging.getLogger(n).propagate) for n in ("dlt", "urllib3", "connectors")}
    caplog.set_level(logging.DEBUG)
    for name in saved:
        logging.getLogger(name).setLevel(logging.DEBUG)
        logging.getLogger(name).propagate = True
    yield caplog
    for name, (level, propagate) in saved.items():
        logging.getLogger(name).setLevel(level)
        logging.getLogger(name).propagate = propagate


def test_the_token_never_appears_in_logs_or_errors(sf, debug_logs):
    caplog = debug_logs
    source = SalesforceSource(sf.instance_url, TOKEN, config=fast_config())
    read_all(source, "account")
    assert any("Making GET request" in r.getMessage() for r in caplog.records)  # dlt's request logging was captured
    assert "Bearer" not in caplog.text and TOKEN not in caplog.text
    assert TOKEN not in repr(source) and TOKEN not in repr(source.client)

    sf.token = "rotated"  # the token we hold is now invalid
    with pytest.raises(SalesforceAuthError) as info:
        read_all(SalesforceSource(sf.instance_url, TOKEN, config=fast_config()), "opportunity")
    exc = info.value
    assert exc.status == 401 and exc.error_code == "INVALID_SESSION_ID"
    text = "".join(traceback.format_exception(exc)) + repr(exc) + caplog.text
    assert TOKEN not in text and "Bearer" not in text

    with pytest.raises(SalesforceAuthError) as bad_secret:
        SalesforceSource.from_env(env={"SALESFORCE_INSTANCE_URL": sf.instance_url, "SALESFORCE_CLIENT_ID": CLIENT_ID,
                                       "SALESFORCE_CLIENT_SECRET": "wrong-" + CLIENT_SECRET})
    assert "invalid_client" in str(bad_secret.value) and CLIENT_SECRET not in str(bad_secret.value)
    assert CLIENT_SECRET not in caplog.text


def test_from_env(sf):
    with pytest.raises(ValueError, match="SALESFORCE_INSTANCE_URL"):
        SalesforceSource.from_env(env={})
    with pytest.raises(ValueError, match="SALESFORCE_ACCESS_TOKEN"):
        SalesforceSource.from_env(env={"SALESFORCE_INSTANCE_URL": sf.instance_url})
    direct = SalesforceSource.from_env(env={"SALESFORCE_INSTANCE_URL": sf.instance_url, "SALESFORCE_ACCESS_TOKEN": TOKEN})
    assert read_all(direct, "account")[0]
    sf.token = "issued-by-client-credentials"
    flow = SalesforceSource.from_env(
        config=fast_config(),
        env={"SALESFORCE_INSTANCE_URL": sf.instance_url, "SALESFORCE_CLIENT_ID": CLIENT_ID, "SALESFORCE_CLIENT_SECRET": CLIENT_SECRET},
    )
    assert len(read_all(flow, "account")[0]) == 2
    token_call = next(r for r in sf.requests if r.path == "/services/oauth2/token")
    assert token_call.method == "POST" and token_call.body["grant_type"] == "client_credentials"


def test_salesforce_config_from_a_yaml_file_with_errors_naming_file_and_field(sf, tmp_path):
    from connectors.mapping import MappingError

    good = tmp_path / "sf.yaml"
    good.write_text("account_segment_bands:\n  - {segment: smb, max_employees: 50}\n  - {segment: enterprise}\n")
    env = {"SALESFORCE_INSTANCE_URL": sf.instance_url, "SALESFORCE_ACCESS_TOKEN": TOKEN, "SALESFORCE_CONFIG": str(good)}
    source = SalesforceSource.from_env(env=env)
    assert source.config.account_segment_bands != SalesforceConfig().account_segment_bands
    bad = tmp_path / "bad.yaml"
    bad.write_text("max_attempts: lots\n")
    with pytest.raises(MappingError, match=r"bad.yaml: max_attempts"):
        SalesforceSource.from_env(env={**env, "SALESFORCE_CONFIG": str(bad)})
