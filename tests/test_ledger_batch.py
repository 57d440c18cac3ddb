"""A digest and its items are written in one ledger transaction (one commit, not one per item);
an error inside a batch rolls every write of it back; the audit chain stays intact."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from agents.ledger import open_ledger
from agents.review import build_digests
from agents.review.posting import record_digest
from tests.test_review_fixtures import AS_OF, MANAGERS, REPS, Clock, pairs


@pytest.fixture
def ledger(tmp_path):
    with open_ledger(home=tmp_path / "home", clock=Clock()) as ledger:
        yield ledger


def _count_commits(ledger) -> list[int]:
    commits = [0]
    event.listen(ledger.engine, "commit", lambda conn: commits.__setitem__(0, commits[0] + 1))
    return commits


def test_a_digest_and_its_items_are_one_commit(ledger):
    digest = max(build_digests(pairs(), REPS, MANAGERS, AS_OF, 5), key=lambda d: len(d.entries))
    assert len(digest.entries) >= 2
    commits = _count_commits(ledger)
    digest_id = record_digest(ledger, digest)
    assert commits[0] == 1
    assert len(ledger.items_for_digest(digest_id)) == len(digest.entries)
    assert all(e.item_id for e in digest.entries)
    before = commits[0]
    again = record_digest(ledger, digest)  # idempotent, still one transaction
    assert again == digest_id and commits[0] == before + 1
    assert ledger.verify_audit().ok


def test_an_error_in_a_batch_rolls_back_every_write(ledger):
    with pytest.raises(RuntimeError):
        with ledger.batch():
            row = ledger.create_digest("run-x", "mgr-1", AS_OF)
            raise RuntimeError("boom")
    assert ledger.get_digest(row.digest_id) is None
    assert ledger.verify_audit().ok
