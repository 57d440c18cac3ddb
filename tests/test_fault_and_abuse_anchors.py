"""Fault-and-abuse (issue 11 item 5): rows cut from the end, or a chain recomputed from scratch, are detected
against a chain-head anchor kept outside the ledger, without anyone remembering a hash."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

import pytest
from slack_sdk import WebClient
from typer.testing import CliRunner

from agents.ledger import open_ledger, verify_audit
from agents.ledger.anchors import AnchorFile, anchor_targets, default_anchor_path, write_anchor
from agents.ledger.audit import GENESIS_HASH, compute_row_hash
from sales_supervisor.cli import app
from tests.fakes.slack_server import FakeSlackServer
from tests.test_review_fixtures import BOT_TOKEN

runner = CliRunner()


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home"
    with open_ledger(home=home) as ledger:
        for n in range(1, 6):
            ledger.record_event("tester", "test.event", "thing", f"t{n}", {"n": n})
        write_anchor(ledger, anchor_targets(home), reason="run test-1")
    return home


def _raw(home):
    con = sqlite3.connect(home / "ledger.sqlite", isolation_level=None)
    con.execute("drop trigger audit_refuse_update")
    con.execute("drop trigger audit_refuse_delete")
    return con


def _verify(home, *extra):
    return runner.invoke(app, ["audit", "verify", "--home", str(home), *extra])


def test_the_anchor_file_is_appended_never_rewritten(home):
    path = default_anchor_path(home)
    first = path.read_text()
    with open_ledger(home=home) as ledger:
        ledger.record_event("tester", "test.event", "thing", "t6")
        result = write_anchor(ledger, anchor_targets(home), reason="publish test-2")
    text = path.read_text()
    assert text.startswith(first) and len(text.splitlines()) == 2
    anchors = AnchorFile(path).anchors()
    assert [a.seq for a in anchors] == [6, 8]  # each anchoring is itself an audit row, and the head it anchors
    assert anchors[-1].pair == (result.anchor.seq, result.anchor.hash)
    assert anchors[-1].reason == "publish test-2"


def test_verify_uses_the_latest_anchor_by_default_and_says_which(home):
    result = _verify(home)
    assert result.exit_code == 0, result.output
    assert "Checked against anchor seq 6 " in result.output and "after run test-1" in result.output
    assert str(default_anchor_path(home)) in result.output


def test_rows_cut_from_the_end_are_detected(home):
    con = _raw(home)
    con.execute("delete from audit where seq >= 5")
    con.close()
    assert _verify(home, "--no-anchor").exit_code == 0  # the chain alone cannot see it
    result = _verify(home)
    assert result.exit_code == 1
    assert "seq 6: anchor mismatch (the anchored row is missing: rows cut from the end?)" in result.output


def test_a_chain_recomputed_from_the_first_row_is_detected(home):
    """The attacker edits a payload and re-hashes every row: the chain is internally consistent again."""
    con = _raw(home)
    rows = con.execute("select seq, at, actor, action, subject_type, subject_id, payload from audit order by seq").fetchall()
    prev = GENESIS_HASH
    for seq, at, actor, action, st, sid, payload in rows:
        if seq == 2:
            payload = json.dumps({"n": 99}, separators=(",", ":"))
        at_dt = dt.datetime.fromisoformat(at).replace(tzinfo=dt.timezone.utc)
        h = compute_row_hash(at=at_dt, actor=actor, action=action, subject_type=st, subject_id=sid, payload=payload, prev_hash=prev)
        con.execute("update audit set payload = ?, prev_hash = ?, row_hash = ? where seq = ?", (payload, prev, h, seq))
        prev = h
    con.close()
    with open_ledger(home=home) as ledger:
        assert verify_audit(ledger).ok  # without an anchor the rewrite is invisible
    result = _verify(home)
    assert result.exit_code == 1 and "seq 6: anchor mismatch (row_hash" in result.output


def test_no_anchor_is_said_plainly(tmp_path):
    with open_ledger(home=tmp_path) as ledger:
        ledger.record_event("tester", "test.event", "thing", "t1")
    result = _verify(tmp_path)
    assert result.exit_code == 0 and "No anchor at" in result.output and "cannot be detected" in result.output


def test_external_path_and_slack_channel_get_the_anchor_and_a_failing_target_does_not_stop_the_others(tmp_path):
    external = tmp_path / "elsewhere" / "anchors.jsonl"
    with FakeSlackServer() as slack, open_ledger(home=tmp_path / "home") as ledger:
        client = WebClient(token=BOT_TOKEN, base_url=slack.base_url)
        broken = tmp_path / "not-a-dir"
        broken.write_text("a file where a folder should be")
        targets = anchor_targets(tmp_path / "home", external_path=external, slack_channel="CANCHORS", slack_client=client)
        targets.append(AnchorFile(broken / "anchors.jsonl"))
        result = write_anchor(ledger, targets, reason="publish p-1")
        [posted] = slack.calls_to("chat.postMessage")
    assert posted.params["channel"] == "CANCHORS" and result.anchor.hash in posted.params["text"]
    assert AnchorFile(external).latest().pair == result.anchor.pair
    assert AnchorFile(default_anchor_path(tmp_path / "home")).latest().pair == result.anchor.pair
    assert len(result.written) == 3 and [n for n, _ in result.failed] == [f"file:{broken / 'anchors.jsonl'}"]
    # an external anchor file can be named when verifying
    out = _verify(tmp_path / "home", "--anchor-file", str(external))
    assert out.exit_code == 0 and str(external) in out.output


def test_a_publish_run_writes_an_anchor(tmp_path, monkeypatch):
    """The Dagster publish job (what the approval sensor runs) anchors the head when it finishes."""
    from sales_supervisor.pipeline import run_publish_job
    from sales_supervisor.settings import Settings

    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    settings = Settings(home=tmp_path / "home", crm_source="demo")
    summary = run_publish_job(settings)
    assert summary.success, summary.failures
    [anchor] = AnchorFile(default_anchor_path(settings.home_dir)).anchors()
    assert anchor.reason.startswith("publish ") and summary.metadata["audit_anchor"]["seq"] == anchor.seq
    with open_ledger(home=settings.home_dir) as ledger:
        assert ledger.audit_head() == anchor.pair
