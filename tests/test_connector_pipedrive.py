"""The Pipedrive connector against a local fake of its API: typed rows, paging, retries, drift,
deletions, quarantine, history from the change log, incremental runs, landing, the note writer
and a token that never leaks."""

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
from agents.review.channels import CannotCheck, OutboundMessage, PermanentSendError
from connectors.csv_folder import Batch
from connectors.landing import (
    RejectSpool,
    crm_dlt_pipeline,
    crm_dlt_source,
    finish_landing,
    load_cursors,
    save_cursors,
    write_rejections,
)
from connectors.pipedrive import PipedriveConfig, PipedriveError, PipedriveSource
from connectors.pipedrive.notes import PipedriveNoteWriter
from connectors.schema import RAW_OBJECTS
from tests.fakes.pipedrive_server import COMPANY, EMP_FIELD, ROLE_FIELD, TOKEN, FakePipedrive

GATES = {"eval": True, "shadow_agreement": True}


def _config(**kw) -> PipedriveConfig:
    base = dict(
        page_size=2, backoff_factor=0.01, max_retry_delay_s=2.0, account_employees_field=EMP_FIELD,
        buying_role_field=ROLE_FIELD, buying_role_options={"7": "Decision Maker", "8": "Champion"},
    )
    return PipedriveConfig(**{**base, **kw})


def _read_all(source: PipedriveSource, cursors: dict[str, str] | None = None) -> dict[str, Batch]:
    out = {}
    for name in RAW_OBJECTS:
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


def _by(rows, key):
    return {r[key]: r for r in rows}


# --------------------------------------------------------------------------- one full read


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

    stages = _by(got["stages"].rows, "stage")
    assert list(stages) == ["Qualified", "Demo", "Proposal", "Negotiation", "Renewal Review", "Won", "Lost"]
    assert stages["Won"]["is_closed"] and stages["Won"]["is_won"] and stages["Lost"]["is_closed"] and not stages["Lost"]["is_won"]
    assert stages["Renewal Review"]["stage_order"] == 5

    assert [m["manager_id"] for m in got["managers"].rows] == ["1"]  # the admin
    reps = _by(got["reps"].rows, "rep_id")
    assert set(reps) == {"2", "3"} and reps["2"]["manager_id"] == "1" and reps["3"]["is_active"] is False
    assert reps["2"]["hired_on"] == dt.date(2025, 3, 1)

    accounts = _by(got["accounts"].rows, "account_id")
    assert accounts["101"]["employees"] == 50 and accounts["101"]["segment"] == "SMB"
    assert accounts["102"]["segment"] == "Enterprise" and accounts["103"]["segment"] is None
    contacts = _by(got["contacts"].rows, "contact_id")
    assert contacts["201"]["buying_role"] == "decision_maker" and contacts["202"]["buying_role"] == "champion"
    assert contacts["202"]["email"] == "bob@acme.test" and contacts["201"]["title"] == "CFO"

    opps = _by(got["opportunities"].rows, "opportunity_id")
    o = opps["1001"]
    assert (o["stage"], o["amount"], o["owner_rep_id"], o["account_id"]) == ("Demo", 12000.0, "2", "101")
    assert o["created_at"] == dt.datetime(2026, 8, 1, 9, 0) and o["close_date"] == dt.date(2026, 10, 15)
    assert o["is_closed"] is False and o["source_url"] == f"https://{COMPANY}.pipedrive.com/deal/1001"
    assert (opps["1002"]["stage"], opps["1002"]["is_won"], opps["1002"]["closed_at"]) == ("Won", True, dt.datetime(2026, 9, 3, 12))
    assert (opps["1003"]["stage"], opps["1003"]["is_closed"], opps["1003"]["is_won"]) == ("Lost", True, False)
    assert opps["1004"]["_is_deleted"] is True and opps["1001"]["_is_deleted"] is False
    assert opps["1006"]["_extra"]["origin_channel"] == "webinar"  # a field only this record has
    assert "origin_channel" not in opps["1001"]["_extra"] and opps["1001"]["_extra"]["currency"] == "USD"

    rejected = {r["raw_record"] and json.loads(r["raw_record"])["id"]: r for r in got["opportunities"].rejected}
    assert set(rejected) == {1005, 1008}
    assert rejected[1005]["field"] == "amount" and "negative amount" in rejected[1005]["reason"]
    assert rejected[1008]["reason"] == "stage: unknown stage id 99"
    assert rejected[1008]["source_file"] == "GET /api/v2/deals" and rejected[1008]["row_number"] == 8
    assert source.reports["opportunities"].rows == 6 and source.reports["opportunities"].rejected == 2

    # stage history from the change log: the creation stage, each stage change, the close
    history = [(h["opportunity_id"], h["stage"], h["entered_at"]) for h in got["stage_history"].rows]
    assert [h for h in history if h[0] == "1002"] == [
        ("1002", "Qualified", dt.datetime(2026, 8, 1, 9, 0)),
        ("1002", "Proposal", dt.datetime(2026, 8, 5, 10, 0)),
        ("1002", "Negotiation", dt.datetime(2026, 8, 20, 10, 0)),
        ("1002", "Won", dt.datetime(2026, 9, 3, 12, 0)),
    ]
    assert [h[1] for h in history if h[0] == "1001"] == ["Qualified", "Demo"]
    assert [h[1] for h in history if h[0] == "1003"] == ["Qualified", "Lost"]
    assert "1004" not in {h[0] for h in history}  # a deleted deal's change log is not fetched
    assert [r["reason"] for r in got["stage_history"].rejected] == ["stage: unknown stage id 99"]
    changes = {(f["opportunity_id"], f["field_name"]): (f["old_value"], f["new_value"]) for f in got["field_history"].rows}
    assert changes == {
        ("1001", "amount"): ("10000", "12000"), ("1001", "close_date"): ("2026-09-30", "2026-10-15"),
        ("1002", "amount"): ("40000", "50000"),
    }

    acts = _by(got["activities"].rows, "activity_id")
    assert acts["3001"]["activity_type"] == "meeting" and acts["3001"]["occurred_at"] == dt.datetime(2026, 8, 15, 14, 0)
    assert acts["3004"]["activity_type"] == "task"  # a custom type: the configured default
    assert acts["3005"]["_is_deleted"] is True
    assert [r["reason"] for r in got["activities"].rejected] == ["occurred_at: no due date or done time"]
    pairs = {(r["activity_id"], r["contact_id"]) for r in got["activity_contacts"].rows}
    assert pairs == {("3001", "201"), ("3001", "202"), ("3002", "203"), ("3004", "201"), ("3005", "203")}

    assert source.cursors["opportunities"] == "2026-09-09T08:00:00Z"
    assert source.cursors["activities"] == "2026-08-28T11:00:00Z"
    assert source.reports["quotas"].present is False


def test_flow_endpoint_and_qualified_stage_names(pd):
    pd.data.stages.append({**pd.data.stages[0], "id": 6, "pipeline_id": 2, "order_nr": 2})  # a second "Qualified"
    source = PipedriveSource(TOKEN, pd.base_url, _config(history_endpoint="flow", company_domain="acme"))
    names = [r["stage"] for b in source.read("stages") for r in b.rows]
    assert "Sales / Qualified" in names and "Renewals / Qualified" in names and "Demo" in names
    history = [r for b in source.read("stage_history") for r in b.rows if r["opportunity_id"] == "1002"]
    assert [h["stage"] for h in history] == ["Sales / Qualified", "Proposal", "Negotiation", "Won"]
    assert pd.calls("/v1/deals/1002/flow")[0].query["start"] == "0"
    pd.fail("/v1/deals/1001/changelog", 404)  # e.g. deleted between the listing and the change log
    lone = [r for b in PipedriveSource(TOKEN, pd.base_url, _config()).read("stage_history") for r in b.rows]
    assert [h["stage"] for h in lone if h["opportunity_id"] == "1001"] == ["Demo"]  # its current stage, from creation
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
    assert len(deal_calls) == 2  # one listing shared by deals and both histories; 3 records at 2 a page
    assert deal_calls[0].query["updated_since"] == "2026-09-09T08:00:00Z"
    opps = _by(got["opportunities"].rows, "opportunity_id")
    assert set(opps) == {"1009", "1001", "1007"} and got["opportunities"].rejected[0]["row_number"] == 1  # 1008 again (boundary)
    assert opps["1001"]["stage"] == "Proposal" and opps["1007"]["_is_deleted"] is True
    # change logs only of the changed, live deals
    assert {c.path for c in pd.calls("/v1/deals/*")} == {"/v1/deals/1001/changelog", "/v1/deals/1009/changelog", "/v1/deals/1008/changelog"}
    assert ("1001", "Proposal") in {(h["opportunity_id"], h["stage"]) for h in got["stage_history"].rows}
    # nothing else changed: the other objects come back empty with their filter sent
    assert pd.calls("/api/v2/activities")[0].query["updated_since"] == cursors["activities"]
    assert {r["activity_id"] for r in got["activities"].rows} == set()  # 3006 (the boundary) is rejected again
    assert second.cursors["opportunities"] == "2026-09-22T08:00:00Z"
    assert "activities" in second.cursors  # the boundary record keeps the cursor where it was
    assert second.cursors["activities"] == cursors["activities"]


# --------------------------------------------------------------------------- landing end to end


def _land(source, warehouse, tmp, run):
    spool = RejectSpool(tmp / f"rej-{run}.jsonl")
    pipeline = crm_dlt_pipeline(warehouse, tmp / "dlt")
    cursors = load_cursors(warehouse, source.source_system)
    pipeline.run(crm_dlt_source(source, None, None, spool, run, cursors=cursors))
    write_rejections(warehouse, spool)
    save_cursors(warehouse, source.source_system, source.cursors, run)
    finish_landing(warehouse, source, run, dt.datetime(2026, 10, 1))
    return cursors


def test_landing_twice_merges_changes_into_duckdb(pd, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    first_cursors = _land(PipedriveSource(TOKEN, pd.base_url, _config()), warehouse, tmp_path, "run-1")
    assert first_cursors == {}
    _change_things(pd)
    pd.reset_calls()
    second_cursors = _land(PipedriveSource(TOKEN, pd.base_url, _config()), warehouse, tmp_path, "run-2")
    assert second_cursors["opportunities"] == "2026-09-09T08:00:00Z"
    assert pd.calls("/api/v2/deals")[0].query["updated_since"] == "2026-09-09T08:00:00Z"

    with duckdb.connect(str(warehouse), read_only=True) as con:
        opps = {r[0]: r[1:] for r in con.execute(
            "select opportunity_id, stage, amount, _is_deleted, _extra, _source_system from raw.opportunities").fetchall()}
        assert set(opps) == {"1001", "1002", "1003", "1004", "1006", "1007", "1009"}  # merged: nothing twice, nothing lost
        assert opps["1001"][:2] == ("Proposal", 15000.0) and opps["1007"][2] is True and opps["1004"][2] is True
        assert json.loads(opps["1006"][3])["origin_channel"] == "webinar" and opps["1001"][4] == "pipedrive"
        history = con.execute(
            "select stage from raw.stage_history where opportunity_id = '1001' order by entered_at").fetchall()
        assert [h[0] for h in history] == ["Qualified", "Demo", "Proposal"]
        rejected = con.execute("select object, source_file, reason from raw.rejected_rows order by landing_id, object").fetchall()
        assert ("opportunities", "GET /api/v2/deals", "amount: negative amount: -5") in rejected
        stored = dict(con.execute("select object, cursor from raw._crm_cursors where source_system = 'pipedrive'").fetchall())
        assert stored["opportunities"] == "2026-09-22T08:00:00Z"
        assert con.execute("select count(*) from raw.stages").fetchone()[0] == 7
        assert con.execute("select count(*) from raw.activity_contacts").fetchone()[0] == 5


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
    with pytest.raises(PipedriveError):  # not retried in place: the note might exist
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
        list(PipedriveSource(TOKEN, pd.base_url, _config(token_in=token_in, max_attempts=2)).read("contacts"))
    assert "HTTP 500" in str(failed.value) and "/api/v2/persons" in str(failed.value)
    with pytest.raises(PipedriveError) as unauthorised:
        list(PipedriveSource(TOKEN + "x", pd.base_url, _config(token_in=token_in)).read("accounts"))
    assert unauthorised.value.status == 401
    with socket.socket() as s:  # a port nobody listens on: a connection error carries the URL
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(PipedriveError) as unreachable:
        list(PipedriveSource(TOKEN, dead, _config(token_in=token_in, max_attempts=1)).read("accounts"))
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
    assert [r["stage"] for b in local.read("stages") for r in b.rows][:2] == ["Qualified", "Demo"]
    with pytest.raises(PipedriveError, match="PIPEDRIVE_API_TOKEN"):
        PipedriveSource.from_env(environ={})
