"""The HubSpot connector against a local fake of the CRM v3 API: canonical rows, paging, retries,
schema drift, archived records, rejections, incremental reads, landing twice, the note writer,
and no credential in any log or error."""

from __future__ import annotations

import datetime as dt
import logging
import socket
import time
from pathlib import Path

import duckdb
import pytest

from agents.ledger import SendsHalted, open_ledger
from agents.review.channels import OutboundMessage, OutcomeUnknown
from connectors.csv_folder import Batch
from connectors.hubspot import HubSpotConfig, HubSpotError, HubSpotSource
from connectors.hubspot.client import ReadOnlyViolation
from connectors.hubspot.notes import HubSpotNoteWriter
from connectors.landing import (
    RejectSpool,
    crm_dlt_pipeline,
    crm_dlt_source,
    finish_landing,
    load_cursors,
    save_cursors,
    write_rejections,
)
from connectors.schema import RAW_OBJECTS
from tests.fakes.hubspot_server import T0, FakeHubSpotServer, iso, seed_portal

TOKEN = "pat-na1-00000000-SECRET-TOKEN-0000"
GATES = {"eval": True, "shadow_agreement": True}
DEALS = "/crm/v3/objects/deals"


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


def _by(rows, key):
    return {r[key]: r for r in rows}


# --------------------------------------------------------------------------- one full read


def test_full_read_follows_pages_survives_429_and_500_and_maps_every_object(hubspot):
    hubspot.fail_next("GET", DEALS, 429, retry_after="1", after="3")  # page 2: rate limited once
    hubspot.fail_next("GET", DEALS, 500, after="6")  # page 3: a server error, then success
    source = HubSpotSource(TOKEN, hubspot.base_url, _config())

    started = time.monotonic()
    opps = _read(source, "opportunities")
    assert time.monotonic() - started >= 0.9  # Retry-After: 1 honoured

    deal_calls = hubspot.calls_to("GET", DEALS)
    assert [c.query.get("after") for c in deal_calls] == [None, "3", "3", "6", "6"]  # 3 pages, 2 retries
    first = deal_calls[0]
    assert first.headers["Authorization"] == f"Bearer {TOKEN}"
    assert first.query["propertiesWithHistory"] == "dealstage,closedate,amount"
    assert first.query["associations"] == "companies" and first.query["archived"] == "false"
    assert int(first.query["limit"]) <= 50  # HubSpot's cap with propertiesWithHistory

    rows = _by(opps.rows, "opportunity_id")
    assert set(rows) == {"401", "402", "403", "405", "406", "407"}
    won = rows["403"]
    assert won["stage"] == "Closed Won" and won["is_closed"] is True and won["is_won"] is True
    assert won["amount"] == 250000.0 and isinstance(won["created_at"], dt.datetime) and won["created_at"].tzinfo is None
    assert won["close_date"] == dt.date(2026, 10, 1) and won["closed_at"] == dt.datetime(2026, 10, 1, 9, 0)
    assert won["account_id"] == "203" and won["owner_rep_id"] == "103"
    assert won["source_url"] == "https://app.hubspot.com/contacts/4242/deal/403"
    assert won["_is_deleted"] is False and won["_source_file"] == DEALS
    # a property HubSpot started returning mid-stream (page 2) is kept, not lost
    assert rows["405"]["_extra"]["hs_object_source_label"] == "CRM_UI"
    assert "hs_object_source_label" not in rows["401"]["_extra"]
    # the bad record is quarantined with its reason and the record as read
    [bad] = opps.rejected
    assert bad["object"] == "opportunities" and bad["field"] == "amount" and "negative amount" in bad["reason"]
    assert bad["source_file"] == DEALS and '"id": "404"' in bad["raw_record"] and bad["row_number"] == 4
    assert source.reports["opportunities"].rows == 6 and source.reports["opportunities"].rejected == 1
    assert source.cursors["opportunities"] == iso(T0 + dt.timedelta(hours=6))

    stages = _read(source, "stages").rows
    assert [s["stage"] for s in stages][:2] == ["Appointment Scheduled", "Qualified To Buy"]
    assert [(s["stage_order"], s["is_closed"], s["is_won"]) for s in stages][-2:] == [(5, True, True), (6, True, False)]

    history = _read(source, "stage_history").rows
    assert {(h["opportunity_id"], h["stage"]) for h in history} >= {("403", "Appointment Scheduled"), ("403", "Closed Won")}
    fields = _read(source, "field_history").rows
    pushes = [f for f in fields if f["opportunity_id"] == "402"]
    assert [(f["field_name"], f["old_value"], f["new_value"]) for f in pushes] == [("close_date", "2026-09-21", "2026-10-01")]
    assert len(hubspot.calls_to("GET", DEALS)) == 5  # the three deal objects share one read

    managers = _by(_read(source, "managers").rows, "manager_id")
    assert set(managers) == {"101", "104"}
    reps = _by(_read(source, "reps").rows, "rep_id")
    assert reps["102"]["manager_id"] == "101" and reps["102"]["segment"] == "smb"
    assert reps["103"]["manager_id"] == "104" and reps["103"]["segment"] == "enterprise"
    assert reps["105"]["is_active"] is False and reps["105"]["_is_deleted"] is False  # deactivated, still owns deals

    accounts = _by(_read(source, "accounts").rows, "account_id")
    assert {k: (a["segment"], a["employees"]) for k, a in accounts.items()} == {
        "201": ("smb", 50), "202": ("mid_market", 450), "203": ("enterprise", 12000)}
    contacts = _by(_read(source, "contacts").rows, "contact_id")
    assert {k: c["buying_role"] for k, c in contacts.items()} == {
        "301": "decision_maker", "302": "champion", "303": "user", "304": None}
    assert contacts["301"]["account_id"] == "201" and contacts["301"]["contact_name"] == "Ann Buyer"

    acts = _by(_read(source, "activities").rows, "activity_id")
    assert {k: (a["activity_type"], a["opportunity_id"], a["rep_id"]) for k, a in acts.items()} == {
        "501": ("meeting", "401", "102"), "502": ("call", "402", "102"),
        "503": ("email", "403", "103"), "504": ("task", "405", "103")}
    links = {(r["activity_id"], r["contact_id"]) for r in _read(source, "activity_contacts").rows}
    assert links == {("501", "301"), ("501", "302"), ("502", "303"), ("504", "303")}
    assert _read(source, "quotas").rows == [] and source.reports["quotas"].present is False  # no quota object in CRM v3
    assert not [c for c in hubspot.calls if c.method != "GET"]  # a full read is all GETs


# --------------------------------------------------------------------------- incremental


def _change_portal(hubspot: FakeHubSpotServer) -> None:
    later = T0 + dt.timedelta(days=10)
    hubspot.update("deals", "402", later, amount="52000", dealstage="closedwon", hs_is_closed="true", hs_is_closed_won="true")
    hubspot.archive("deals", "401", later + dt.timedelta(days=1))
    hubspot.add("deals", "408", {"dealname": "Globex phase 2", "dealstage": "qualifiedtobuy", "pipeline": "default",
                                 "amount": "15000", "hubspot_owner_id": "102"},
                created=later, updated=later + dt.timedelta(days=2),
                history={"dealstage": [("qualifiedtobuy", later)]}, associations={"companies": ["201"]})


def test_second_run_asks_only_for_changes_since_the_cursor(hubspot):
    first = HubSpotSource(TOKEN, hubspot.base_url, _config())
    for name in ("opportunities", "accounts"):
        _read(first, name)
    cursors = dict(first.cursors)
    _change_portal(hubspot)
    before = len(hubspot.calls)

    second = HubSpotSource(TOKEN, hubspot.base_url, _config(lookback_s=0))  # default 300 s re-reads the boundary
    opps = _read(second, "opportunities", cursors["opportunities"])
    accounts = _read(second, "accounts", cursors["accounts"])
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

    rows = _by(opps.rows, "opportunity_id")
    assert set(rows) == {"401", "402", "408"}
    assert rows["402"]["amount"] == 52000.0 and rows["402"]["stage"] == "Closed Won" and rows["402"]["is_won"] is True
    assert rows["402"]["_source_file"] == f"{DEALS}/402"
    assert rows["401"]["_is_deleted"] is True and rows["408"]["_is_deleted"] is False
    assert second.cursors["opportunities"] == iso(T0 + dt.timedelta(days=12))  # the newest change seen
    assert accounts.rows == [] and second.cursors["accounts"] == cursors["accounts"]  # nothing changed


# --------------------------------------------------------------------------- landing, twice


def _land(source: HubSpotSource, warehouse: Path, tmp: Path, run: str) -> list[dict]:
    spool = RejectSpool(tmp / f"rejected-{run}.jsonl")
    pipeline = crm_dlt_pipeline(warehouse, tmp / "dlt")
    cursors = load_cursors(warehouse, source.source_system)
    pipeline.run(crm_dlt_source(source, None, None, spool, run, cursors))
    write_rejections(warehouse, spool)
    save_cursors(warehouse, source.source_system, source.cursors, run)
    return finish_landing(warehouse, source, run, dt.datetime(2026, 10, 1))


def test_landing_twice_merges_changes_by_key(hubspot, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    _land(HubSpotSource(TOKEN, hubspot.base_url, _config()), warehouse, tmp_path, "run-1")
    first_cursors = load_cursors(warehouse, "hubspot")
    assert first_cursors["opportunities"] == iso(T0 + dt.timedelta(hours=6))

    _change_portal(hubspot)
    before = len(hubspot.calls)
    second = HubSpotSource(TOKEN, hubspot.base_url, _config())
    _land(second, warehouse, tmp_path, "run-2")
    assert not [c for c in hubspot.calls[before:] if c.path == DEALS and c.query.get("archived") == "false"]

    with duckdb.connect(str(warehouse), read_only=True) as con:
        opps = {r[0]: r[1:] for r in con.execute(
            "select opportunity_id, amount, stage, _is_deleted, _extra, _source_system from raw.opportunities").fetchall()}
        counts = {name: con.execute(f"select count(*) from raw.{name}").fetchone()[0] for name in RAW_OBJECTS}
        rejected = con.execute("select object, field, reason, _source_system from raw.rejected_rows").fetchall()
        history_402 = con.execute(
            "select stage from raw.stage_history where opportunity_id = '402' order by entered_at").fetchall()
    assert set(opps) == {"401", "402", "403", "405", "406", "407", "408"}  # merged: nothing duplicated or lost
    assert opps["402"][:3] == (52000.0, "Closed Won", False)
    assert opps["401"][2] is True  # archived in HubSpot: kept, flagged
    assert '"hs_object_source_label": "CRM_UI"' in opps["405"][3] and opps["405"][4] == "hubspot"
    assert counts["stages"] == 6 and counts["reps"] == 5 and counts["managers"] == 2 and counts["accounts"] == 3
    assert counts["activities"] == 4 and counts["activity_contacts"] == 4 and counts["quotas"] == 0
    assert [s for (s,) in history_402] == ["Appointment Scheduled", "Contract Sent", "Closed Won"]
    assert ("opportunities", "amount", "amount: negative amount: -5", "hubspot") in rejected
    assert load_cursors(warehouse, "hubspot")["opportunities"] == iso(T0 + dt.timedelta(days=12))
    assert load_cursors(warehouse, "hubspot")["accounts"] == first_cursors["accounts"]


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
    text = (Path(__file__).parents[1] / "connectors" / "hubspot" / "source.py").read_text()
    assert "notes" not in [line.split()[1].rsplit(".", 1)[-1] for line in text.splitlines() if line.startswith(("import ", "from "))]


def test_credentials_never_appear_in_logs_or_errors(hubspot, caplog):
    caplog.set_level(logging.DEBUG)
    source = HubSpotSource(TOKEN, hubspot.base_url, _config())
    _read(source, "accounts")  # a successful read, logged at DEBUG

    hubspot.fail_next("GET", "/crm/v3/pipelines/deals", 403)
    with pytest.raises(HubSpotError) as forbidden:
        _read(source, "stages")
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
        _read(offline, "accounts")

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
    assert source.config.portal_id == "77" and set(_by(_read(source, "managers").rows, "manager_id")) == {"101"}
    assert {a["segment"] for a in _read(source, "accounts").rows} == {"small", "big"}
    with pytest.raises(HubSpotError, match="HUBSPOT_TOKEN"):
        HubSpotSource.from_env({})
