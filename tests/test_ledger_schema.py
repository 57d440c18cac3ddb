"""The ledger's schema: created by the alembic migration on open, idempotent on reopen, matching the models."""

from __future__ import annotations

import os
import sqlite3

import pytest
from sqlalchemy import inspect

from agents.ledger import ledger_url, open_ledger, upgrade_schema
from agents.ledger.migrations import alembic_config

TABLES = {"meta", "digests", "items", "decisions", "deliveries", "snoozes", "audit", "alembic_version",
          "policy_versions", "action_outcomes"}
TABLES |= {"scorecard_verdicts"}  # issue 14: a rep's verdict history
TABLES |= {"deferred_sends", "recalls", "llm_spend"}  # migration 0006 (autonomy)


def _head() -> str:
    from alembic.script import ScriptDirectory

    (head,) = ScriptDirectory.from_config(alembic_config()).get_heads()
    return head


def test_open_creates_the_schema_from_empty(tmp_path):
    home = tmp_path / "state"  # does not exist yet
    with open_ledger(home=home) as ledger:
        assert set(inspect(ledger.engine).get_table_names()) == TABLES
    con = sqlite3.connect(home / "ledger.sqlite")
    assert con.execute("select version_num from alembic_version").fetchall() == [(_head(),)]
    assert con.execute("pragma journal_mode").fetchone() == ("wal",)
    triggers = {r[0] for r in con.execute("select name from sqlite_master where type = 'trigger' and tbl_name = 'audit'")}
    assert triggers == {"audit_refuse_update", "audit_refuse_delete"}


def test_reopen_is_idempotent_and_keeps_data(tmp_path):
    import datetime as dt

    with open_ledger(home=tmp_path) as ledger:
        ledger.create_digest("run-1", "mgr-1", dt.date(2026, 10, 1))
    for _ in range(2):
        with open_ledger(home=tmp_path) as ledger:
            assert upgrade_schema(ledger.engine) == [_head()]  # already current: nothing to do
            assert ledger.verify_audit().rows_checked == 1
    con = sqlite3.connect(tmp_path / "ledger.sqlite")
    assert con.execute("select count(*) from digests").fetchone() == (1,)
    assert con.execute("select count(*) from alembic_version").fetchone() == (1,)


def test_models_match_the_migration(tmp_path):
    """Autogenerate finds nothing to do: the frozen migration and the models describe one schema."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from agents.ledger.models import Base

    with open_ledger(home=tmp_path) as ledger, ledger.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def test_ledger_url_and_bad_targets(tmp_path):
    assert ledger_url(tmp_path) == f"sqlite:///{tmp_path.resolve()}/ledger.sqlite"
    with pytest.raises(ValueError, match="URL or the state folder"):
        open_ledger()
    with pytest.raises(ValueError, match="SQLite file"):
        open_ledger("sqlite://")


@pytest.mark.skipif(not os.environ.get("SALES_SUPERVISOR_TEST_POSTGRES_URL"), reason="no Postgres server configured")
def test_postgres_schema_and_append_only_audit():
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    url = os.environ["SALES_SUPERVISOR_TEST_POSTGRES_URL"]
    with open_ledger(url) as ledger:
        ledger.record_event("test", "postgres.check", "ledger", "pg")
        assert ledger.verify_audit().ok
        for statement in ("update audit set actor = 'x'", "delete from audit", "truncate audit"):
            with pytest.raises(DBAPIError, match="audit is append-only"), ledger.engine.begin() as conn:
                conn.execute(text(statement))
