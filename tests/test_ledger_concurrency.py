"""A Slack-app-like writer in another process waits for the write lock (WAL + busy timeout) instead of failing."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agents.ledger import open_ledger, verify_audit

REPO_ROOT = Path(__file__).resolve().parent.parent

SLACK_APP_WRITER = textwrap.dedent(
    """
    import json, sys, time
    from agents.ledger import open_ledger
    home, item_id, busy = sys.argv[1], sys.argv[2], float(sys.argv[3])
    ledger = open_ledger(home=home, busy_timeout_s=busy)
    pending = [i.item_id for i in ledger.pending_items("mgr-1")]  # reads never wait in WAL mode
    print("ready", flush=True)
    started = time.monotonic()
    try:
        decision = ledger.record_decision(item_id, "approve", "mgr-1", "slack")
        print(json.dumps({"ok": True, "decision_id": decision.decision_id, "waited": time.monotonic() - started, "pending": pending}))
    except Exception as exc:
        print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}", "waited": time.monotonic() - started}))
    """
)


@pytest.fixture
def home_and_item(tmp_path):
    with open_ledger(home=tmp_path) as ledger:
        digest = ledger.create_digest("run-1", "mgr-1", dt.date(2026, 10, 1))
        item = ledger.add_item(digest.digest_id, flag_id="f-1", rule_id="r", severity="high", draft={}, evidence={})
    return tmp_path, item.item_id


def _writer_while_locked(home: Path, item_id: str, *, busy_s: float, hold_s: float) -> dict:
    holder = sqlite3.connect(home / "ledger.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # e.g. a pipeline step in the middle of writing a digest
    holder.execute("insert into snoozes (opportunity_id, until, by, created_at) values ('opp-x', '2026-10-09', 'pipeline', '2026-10-01 08:00:00')")
    proc = subprocess.Popen(
        [sys.executable, "-c", SLACK_APP_WRITER, str(home), item_id, str(busy_s)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        time.sleep(hold_s)
        holder.execute("COMMIT")
        out, err = proc.communicate(timeout=60)
    finally:
        holder.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_second_process_waits_for_the_lock_and_then_writes(home_and_item):
    home, item_id = home_and_item
    result = _writer_while_locked(home, item_id, busy_s=15, hold_s=1.0)
    assert result["ok"], result
    assert result["pending"] == [item_id]
    assert result["waited"] >= 0.5  # it really waited for the holder's commit
    with open_ledger(home=home) as ledger:
        assert ledger.get_decision(item_id).approver_channel == "slack"
        assert len(ledger.active_snoozes(dt.date(2026, 10, 2))) == 1  # the holder's write landed too
        assert verify_audit(ledger).ok


def test_busy_timeout_is_what_makes_it_wait(home_and_item):
    home, item_id = home_and_item
    result = _writer_while_locked(home, item_id, busy_s=0.1, hold_s=1.0)
    assert not result["ok"] and "database is locked" in result["error"]
    with open_ledger(home=home) as ledger:
        assert ledger.get_decision(item_id) is None
        assert verify_audit(ledger).ok
