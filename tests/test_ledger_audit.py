"""The append-only, hash-chained audit trail: the database refuses changes, and verify pinpoints tampering."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from agents.ledger import open_ledger, verify_audit
from agents.ledger.audit import GENESIS_HASH, canonical_json, compute_row_hash, format_timestamp


@pytest.fixture
def ledger(tmp_path):
    with open_ledger(home=tmp_path) as ledger:
        for n in range(1, 7):
            ledger.record_event("tester", "test.event", "thing", f"t{n}", {"n": n, "note": "ünïcode ok"})
        yield ledger


@pytest.fixture
def raw(ledger):
    """Someone with write access to the file, who first drops the append-only triggers."""
    con = sqlite3.connect(ledger.engine.url.database, isolation_level=None)
    con.execute("drop trigger audit_refuse_update")
    con.execute("drop trigger audit_refuse_delete")
    yield con
    con.close()


def _row(con, seq):
    cols = ("seq", "at", "actor", "action", "subject_type", "subject_id", "payload", "prev_hash", "row_hash")
    return dict(zip(cols, con.execute(f"select {', '.join(cols)} from audit where seq = ?", (seq,)).fetchone()))


def _hash(row) -> str:
    at = dt.datetime.fromisoformat(row["at"]).replace(tzinfo=dt.timezone.utc)
    return compute_row_hash(**{k: row[k] for k in ("actor", "action", "subject_type", "subject_id", "payload", "prev_hash")}, at=at)


@pytest.mark.parametrize("statement", ["update audit set actor = 'mallory' where seq = 2", "delete from audit where seq = 2"])
def test_database_refuses_update_and_delete(ledger, statement):
    verb = statement.split()[0].upper()
    with pytest.raises(IntegrityError, match=f"audit is append-only: {verb} refused"):
        with ledger.engine.begin() as conn:
            conn.execute(text(statement))
    # and through a plain sqlite3 connection, outside SQLAlchemy
    con = sqlite3.connect(ledger.engine.url.database)
    with pytest.raises(sqlite3.IntegrityError, match=f"audit is append-only: {verb} refused"):
        con.execute(statement)
    assert verify_audit(ledger).ok


def test_clean_chain_verifies(ledger):
    report = verify_audit(ledger)
    assert report.ok and report.problems == ()
    assert report.rows_checked == 6
    assert (report.head_seq, report.head_hash) == ledger.audit_head()
    assert str(report) == f"audit trail OK: 6 rows verified, chain intact (head seq 6 {report.head_hash})"
    first = ledger.audit_rows(limit=1)[0]
    assert first.prev_hash == GENESIS_HASH


def test_altered_row_is_pinpointed(ledger, raw):
    raw.execute("""update audit set payload = '{"n":3,"note":"nothing to see"}' where seq = 3""")
    report = verify_audit(ledger)
    assert not report.ok
    assert [(p.seq, p.kind) for p in report.problems] == [(3, "altered")]
    assert report.problems[0].message.startswith("seq 3: row altered (stored row_hash ")
    assert "audit trail TAMPERED: 1 problem(s) in 6 rows" in str(report)


def test_altered_and_rehashed_row_breaks_the_chain_at_the_next_row(ledger, raw):
    row = _row(raw, 3)
    row["actor"] = "mallory"
    raw.execute("update audit set actor = ?, row_hash = ? where seq = 3", (row["actor"], _hash(row)))
    report = verify_audit(ledger)
    assert [(p.seq, p.kind) for p in report.problems] == [(4, "chain_broken")]
    assert "seq 3 was altered and re-hashed, or replaced" in report.problems[0].message


def test_deleted_row_is_pinpointed(ledger, raw):
    raw.execute("delete from audit where seq = 4")
    report = verify_audit(ledger)
    assert [(p.seq, p.kind, p.message) for p in report.problems] == [(4, "deleted", "seq 4: row deleted (seq 5 follows seq 3)")]


def test_deleted_rows_at_the_start_are_pinpointed(ledger, raw):
    raw.execute("delete from audit where seq in (1, 2)")
    report = verify_audit(ledger)
    assert [p.message for p in report.problems] == ["seq 1..2: 2 rows deleted (seq 3 follows the start)"]


def test_inserted_row_is_pinpointed(ledger, raw):
    """A forged row slipped in at seq 4 (later rows renumbered), correctly linked to seq 3 and correctly hashed."""
    for seq in range(6, 3, -1):
        raw.execute("update audit set seq = seq + 1 where seq = ?", (seq,))
    forged = {
        "seq": 4, "at": _row(raw, 3)["at"], "actor": "mallory", "action": "decision.recorded", "subject_type": "item",
        "subject_id": "i-42", "payload": canonical_json({"action": "approve"}), "prev_hash": _row(raw, 3)["row_hash"],
    }
    forged["row_hash"] = _hash(forged)
    raw.execute(f"insert into audit ({', '.join(forged)}) values ({', '.join('?' * len(forged))})", tuple(forged.values()))
    report = verify_audit(ledger)
    assert [(p.seq, p.kind, p.message) for p in report.problems] == [
        (4, "inserted", "seq 4: row inserted (seq 5 links to seq 3, skipping it)")
    ]


def test_renumbering_to_hide_a_gap_is_reported(ledger, raw):
    for seq in range(6, 3, -1):
        raw.execute("update audit set seq = seq + 1 where seq = ?", (seq,))
    report = verify_audit(ledger)
    assert [(p.seq, p.kind) for p in report.problems] == [(4, "renumbered")]


def test_anchor_catches_rows_cut_from_the_end(ledger, raw):
    anchor = ledger.audit_head()
    assert verify_audit(ledger, anchor=anchor).ok
    raw.execute("delete from audit where seq = 6")
    assert verify_audit(ledger).ok  # a chain alone cannot see a cut tail...
    report = verify_audit(ledger, anchor=anchor)  # ...an anchor published elsewhere can
    assert [(p.seq, p.kind) for p in report.problems] == [(6, "anchor_mismatch")]


def test_new_rows_continue_the_chain_after_reopen(ledger):
    url = str(ledger.engine.url)
    ledger.close()
    with open_ledger(url) as again:
        again.record_event("tester", "test.event", "thing", "t7")
        report = verify_audit(again)
    assert report.ok and report.rows_checked == 7


def test_row_hash_covers_every_field():
    at = dt.datetime(2026, 10, 1, 9, 30, tzinfo=dt.timezone.utc)
    base = dict(at=at, actor="a", action="x", subject_type="item", subject_id="1", payload="{}", prev_hash=GENESIS_HASH)
    h = compute_row_hash(**base)
    for field, value in [("actor", "b"), ("action", "y"), ("subject_type", "digest"), ("subject_id", "2"),
                         ("payload", '{"a":1}'), ("prev_hash", "1" * 64), ("at", at + dt.timedelta(microseconds=1))]:
        assert compute_row_hash(**{**base, field: value}) != h, field
    assert canonical_json({"b": 1, "a": [dt.date(2026, 1, 2)]}) == '{"a":["2026-01-02"],"b":1}'
    assert format_timestamp(at) == "2026-10-01T09:30:00.000000Z"
