"""The Salesforce connector against a local fake of the REST API: SOQL paging, retries, typing,
rejections, schema drift, deletions, incremental cursors, landing, the note writer, and secrecy."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import traceback
from pathlib import Path

import duckdb
import pytest

from agents.ledger import SendsHalted
from agents.review.channels import OutboundMessage, PermanentSendError
from connectors.landing import RejectSpool, crm_dlt_pipeline, crm_dlt_source, finish_landing, load_cursors, save_cursors, write_rejections
from connectors.salesforce import SalesforceApiError, SalesforceAuthError, SalesforceConfig, SalesforceSource
from connectors.salesforce.notes import SalesforceNoteWriter
from connectors.schema import RAW_OBJECTS
from tests.fakes.salesforce_server import CLIENT_ID, CLIENT_SECRET, TOKEN, FakeSalesforce, sf_id


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
MANAGER, RITA = sf_id("User", 1), sf_id("User", 2)
CONTACT = [sf_id("Contact", n) for n in range(1, 4)]


def test_opportunities_typed_paged_retried_with_extra_fields_and_rejections(sf):
    # locator 1 is the stage list (read first, to validate stages), 2 the opportunities
    sf.fail("/query/01gFAKE00000002-3", 429, [{"message": "busy", "errorCode": "REQUEST_LIMIT_EXCEEDED"}], {"Retry-After": "1"})
    sf.fail("/sobjects/Opportunity/describe", 503)  # no Retry-After: exponential backoff
    sf.fail("FROM Account", 500)
    source = SalesforceSource(sf.instance_url, TOKEN, config=fast_config())

    started = time.monotonic()
    rows, rejected = read_all(source, "opportunities")
    assert time.monotonic() - started >= 0.9  # the 429's Retry-After was honoured

    # 8 records in pages of 3: the first query plus two queryMore calls (one retried after the 429)
    opp_requests = [r for r in sf.requests if r.sobject == "Opportunity" or "/query/01gFAKE00000002" in r.path]
    assert [r.path.rsplit("/", 1)[-1] for r in opp_requests] == ["query", "01gFAKE00000002-3", "01gFAKE00000002-3", "01gFAKE00000002-6"]
    assert {r.method for r in sf.requests} == {"GET"}  # the source never writes

    by_id = {r["opportunity_id"]: r for r in rows}
    assert set(by_id) == {OPP[0], OPP[1], OPP[2], OPP[3], OPP[4], OPP[7]}
    first = by_id[OPP[0]]
    assert first["amount"] == 12000.0 and first["stage"] == "Qualification" and first["next_step"] == "Send proposal"
    assert first["created_at"] == dt.datetime(2025, 10, 13, 9, 0) and first["close_date"] == dt.date(2026, 3, 11)
    assert first["is_closed"] is False and by_id[OPP[3]]["is_won"] is True
    assert first["source_url"] == f"{sf.instance_url}/{OPP[0]}"
    assert first["_extra"]["Priority__c"] == "High"  # a custom field outside the canonical shape
    assert first["_is_deleted"] is False and first["_source_file"] == "Opportunity"
    assert by_id[OPP[7]]["stage"] == "Prospecting"  # the org's spelling of a stage

    reasons = {json.loads(r["raw_record"])["Id"]: r for r in rejected}
    assert set(reasons) == {OPP[5], OPP[6]}
    assert reasons[OPP[5]]["field"] == "amount" and "negative amount" in reasons[OPP[5]]["reason"]
    assert reasons[OPP[6]]["field"] == "stage" and "unknown stage 'Discovery'" in reasons[OPP[6]]["reason"]
    assert reasons[OPP[6]]["source_file"] == "Opportunity" and reasons[OPP[6]]["row_number"] >= 1
    assert source.reports["opportunities"].rows == 6 and source.reports["opportunities"].rejected == 2

    accounts, _ = read_all(source, "accounts")  # the 500 was retried
    assert len([r for r in sf.requests if r.sobject == "Account"]) == 2
    assert {a["account_name"]: a["segment"] for a in accounts} == {"Acme": "smb", "Globex": "enterprise"}


def test_every_object_maps_into_the_canonical_shape(sf):
    source = SalesforceSource(sf.instance_url, TOKEN, config=fast_config(rep_segment_field="Department", rep_segment_map={"SMB": "smb"}))
    got = {name: read_all(source, name) for name in RAW_OBJECTS}
    for name, (rows, _) in got.items():
        for row in rows:
            assert set(RAW_OBJECTS[name].field_names) <= set(row), name
    assert source.reports["quotas"].present is False

    stages = {r["stage"]: r for r in got["stages"][0]}
    assert stages["Closed Won"]["is_won"] and stages["Closed Lost"]["is_closed"] and not stages["Closed Lost"]["is_won"]
    assert stages["Legacy Stage"]["_extra"]["IsActive"] is False
    assert [r["manager_id"] for r in got["managers"][0]] == [MANAGER]
    reps = {r["rep_id"]: r for r in got["reps"][0]}
    assert sf_id("User", 4) not in reps  # the integration user is not a rep (rep_filter)
    assert reps[RITA]["manager_id"] == MANAGER and reps[RITA]["segment"] == "smb" and reps[sf_id("User", 3)]["is_active"] is False
    roles = {r["contact_id"]: r["buying_role"] for r in got["contacts"][0]}
    assert roles == {CONTACT[0]: "decision_maker", CONTACT[1]: "champion", CONTACT[2]: "user"}
    assert [(r["stage"], r["opportunity_id"]) for r in got["stage_history"][0]][2:4] == [("Prospecting", OPP[2]), ("Prospecting", OPP[2])]
    assert {(r["field_name"], r["old_value"], r["new_value"]) for r in got["field_history"][0]} == {
        ("close_date", "2026-02-01", "2026-03-11"), ("amount", "25000", "30000")}
    acts = {r["activity_id"]: r for r in got["activities"][0]}
    assert {a["activity_type"] for a in acts.values()} == {"call", "email", "meeting"}
    assert sf_id("Task", 2) not in acts  # on an account, not an opportunity
    assert acts[sf_id("Event", 1)]["occurred_at"] == dt.datetime(2026, 1, 8, 10, 0)
    pairs = {(r["activity_id"], r["contact_id"]) for r in got["activity_contacts"][0]}
    assert pairs == {(sf_id("Task", 1), CONTACT[0]), (sf_id("Event", 1), CONTACT[1]), (sf_id("Event", 1), CONTACT[2])}
    assert {r.method for r in sf.requests} == {"GET"}


def _change_the_org(sf: FakeSalesforce) -> None:
    org = sf.org
    org.add_field("Opportunity", "Health__c")  # a field created in the org between runs
    org.update("Opportunity", OPP[1], Amount=35000.0, Health__c="green")
    org.delete("Opportunity", OPP[2])
    org.add("Opportunity", Name="Acme new", AccountId=sf_id("Account", 1), OwnerId=RITA, StageName="Prospecting", Amount=5000.0,
            CreatedDate="2026-01-11T08:00:00.000+0000", CloseDate="2026-04-01", IsClosed=False, IsWon=False, NextStep=None, Priority__c=None)
    # Cy gains a role on a deal; his Contact record itself is unchanged
    org.add("OpportunityContactRole", ContactId=CONTACT[2], OpportunityId=OPP[0], Role="Technical Buyer", IsPrimary=False)


def test_second_run_fetches_only_changes_since_the_cursor(sf):
    first = SalesforceSource(sf.instance_url, TOKEN, config=fast_config())
    for name in RAW_OBJECTS:
        read_all(first, name)
    cursors = dict(first.cursors)
    assert json.loads(cursors["opportunities"]) == {"Opportunity": "2026-01-10T09:24:00Z"}
    assert json.loads(cursors["field_history"]) == {"OpportunityFieldHistory": "2026-01-10T09:34:00Z"}  # CreatedDate

    _change_the_org(sf)
    sf.reset_requests()
    second = SalesforceSource(sf.instance_url, TOKEN, config=fast_config())
    got = {name: read_all(second, name, cursors.get(name)) for name in RAW_OBJECTS}

    opps = {r["opportunity_id"]: r for r in got["opportunities"][0]}
    assert set(opps) == {OPP[1], OPP[2], OPP[8]}
    assert opps[OPP[1]]["amount"] == 35000.0 and opps[OPP[1]]["_extra"]["Health__c"] == "green"
    assert opps[OPP[2]]["_is_deleted"] is True and opps[OPP[1]]["_is_deleted"] is False
    opp_queries = [r for r in sf.requests if r.sobject == "Opportunity"]
    assert len(opp_queries) == 1 and opp_queries[0].path.endswith("/queryAll")  # one page, deletions included
    assert "WHERE SystemModstamp > 2026-01-10T09:24:00Z" in opp_queries[0].soql
    assert "Health__c" in opp_queries[0].soql  # selected because describe now lists it
    assert not sf.query_more("Opportunity")  # 3 changes: one page, nothing to page through
    assert json.loads(second.cursors["opportunities"])["Opportunity"] > "2026-01-10T09:24:00Z"

    assert got["accounts"] == ([], []) and got["stage_history"] == ([], [])
    assert "SystemModstamp > 2026-01-10T09:13:00Z" in sf.soql_sent("Account")[0]
    assert second.cursors["accounts"] == cursors["accounts"]  # nothing changed: the cursor stays
    assert "CreatedDate > 2026-01-10T09:34:00Z" in sf.soql_sent("OpportunityFieldHistory")[0]
    # a changed role re-lands its contact with the new role, though the Contact did not change
    assert [(r["contact_id"], r["buying_role"]) for r in got["contacts"][0]] == [(CONTACT[2], "technical_evaluator")]


def _land(source, warehouse: Path, tmp: Path, run: str) -> None:
    spool = RejectSpool(tmp / f"rej-{run}.jsonl")
    pipeline = crm_dlt_pipeline(warehouse, tmp / "dlt")
    cursors = load_cursors(warehouse, source.source_system)
    pipeline.run(crm_dlt_source(source, None, None, spool, run, cursors=cursors))
    write_rejections(warehouse, spool)
    save_cursors(warehouse, source.source_system, source.cursors, run)
    finish_landing(warehouse, source, run, dt.datetime(2026, 1, 12))


def test_lands_into_duckdb_twice_merging_changes(sf, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    _land(SalesforceSource(sf.instance_url, TOKEN, config=fast_config()), warehouse, tmp_path, "run-1")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from raw.opportunities").fetchone()[0] == 6
        assert con.execute("select count(*) from raw.rejected_rows where object = 'opportunities'").fetchone()[0] == 2
        assert con.execute("select count(*) from raw.activity_contacts").fetchone()[0] == 3
        assert con.execute("select _source_system from raw.stages limit 1").fetchone()[0] == "salesforce"
    first_cursors = load_cursors(warehouse, "salesforce")
    assert set(first_cursors) == set(RAW_OBJECTS) - {"quotas"}

    _change_the_org(sf)
    sf.reset_requests()
    _land(SalesforceSource(sf.instance_url, TOKEN, config=fast_config()), warehouse, tmp_path, "run-2")
    assert "SystemModstamp > 2026-01-10T09:24:00Z" in sf.soql_sent("Opportunity")[0]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        opps = {r[0]: r[1:] for r in con.execute("select opportunity_id, amount, _is_deleted, _extra from raw.opportunities").fetchall()}
        assert len(opps) == 7  # 6 + 1 new, merged by key: nothing duplicated
        assert opps[OPP[1]][0] == 35000.0 and json.loads(opps[OPP[1]][2])["Health__c"] == "green"
        assert opps[OPP[2]][1] is True
        assert con.execute("select count(*) from raw.accounts").fetchone()[0] == 2  # unchanged, kept
        role = con.execute("select buying_role from raw.contacts where contact_id = ?", [CONTACT[2]]).fetchone()[0]
        assert role == "technical_evaluator"
    assert load_cursors(warehouse, "salesforce")["opportunities"] != first_cursors["opportunities"]


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
    with pytest.raises(SalesforceApiError):
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
    read_all(source, "accounts")
    assert any("Making GET request" in r.getMessage() for r in caplog.records)  # dlt's request logging was captured
    assert "Bearer" not in caplog.text and TOKEN not in caplog.text
    assert TOKEN not in repr(source) and TOKEN not in repr(source.client)

    sf.token = "rotated"  # the token we hold is now invalid
    with pytest.raises(SalesforceAuthError) as info:
        read_all(SalesforceSource(sf.instance_url, TOKEN, config=fast_config()), "opportunities")
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
    assert read_all(direct, "accounts")[0]
    sf.token = "issued-by-client-credentials"
    flow = SalesforceSource.from_env(
        config=fast_config(),
        env={"SALESFORCE_INSTANCE_URL": sf.instance_url, "SALESFORCE_CLIENT_ID": CLIENT_ID, "SALESFORCE_CLIENT_SECRET": CLIENT_SECRET},
    )
    assert len(read_all(flow, "accounts")[0]) == 2
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
