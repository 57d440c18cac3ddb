"""One warehouse connection per run on the DuckDB file (issue 13 item 4): the steps after dbt (risk flags,
coaching drafts, manager digests and their checks) share the run's one connection, owned by the Dagster resource,
instead of each opening the file; and the daily job's executor follows the warehouse (in-process on DuckDB)."""

from __future__ import annotations

import shutil

import duckdb
import pytest

from agents.warehouse import Warehouse, WarehouseError, close_run_connections
from sales_supervisor.settings import Settings


def test_a_run_connection_is_what_every_connect_to_its_file_gets_until_closed(tmp_path, monkeypatch):
    opened: list[bool] = []
    real = Warehouse._open_driver
    monkeypatch.setattr(Warehouse, "_open_driver", lambda self, read_only=False: opened.append(read_only) or real(self, read_only))
    wh = Warehouse.duckdb(tmp_path / "w.duckdb")
    run = wh.run_connection()
    with Warehouse.coerce(str(tmp_path / "w.duckdb")).connect() as con:  # the same file by another spelling
        con.execute("create table t (i integer)")
    with wh.connect(read_only=True) as con:  # read-only requests share it too (one configuration per file)
        assert con is run.connection
        con.execute("insert into t values (1)")
    assert Warehouse.duckdb(tmp_path / "other.duckdb").run_connection().connection is not run.connection
    assert opened == [False, False]  # this file once, the other file once
    assert wh.run_connection().connection is run.connection  # a second asker shares, it does not reopen
    run.close()
    assert run.closed and close_run_connections() == 1  # the other file's
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:  # released: the file opens read-only
        assert con.execute("select i from t").fetchall() == [(1,)]
    with pytest.raises(WarehouseError, match="DuckDB file"):
        Warehouse("postgres", url="postgresql://u@h/db").run_connection()


def test_the_executor_follows_the_warehouse_chosen_at_run_time(monkeypatch):
    from orchestration.jobs import executor_mode

    assert executor_mode(None, "duckdb") == "in_process"
    assert executor_mode({"mode": "auto"}, "postgres") == "multiprocess"
    assert executor_mode({"mode": "in_process"}, "postgres") == "in_process"
    monkeypatch.setenv("SALES_SUPERVISOR_WAREHOUSE", "postgres")
    monkeypatch.setenv("SALES_SUPERVISOR_WAREHOUSE_URL", "postgresql://u@h/db")
    assert executor_mode({}) == "multiprocess"  # the settings, read when the run starts
    monkeypatch.setenv("SALES_SUPERVISOR_WAREHOUSE", "duckdb")
    assert executor_mode({}) == "in_process"
    with pytest.raises(ValueError, match="unknown executor mode"):
        executor_mode({"mode": "threads"})


@pytest.mark.slow
def test_risk_drafts_and_digests_share_one_warehouse_connection_per_run(built_warehouse, tmp_path, monkeypatch):
    from sales_supervisor.pipeline import run_daily_job

    home = tmp_path / "home"  # a copy of the built demo home: this run adds a risk run, drafts and digests
    shutil.copytree(built_warehouse.home, home, ignore=shutil.ignore_patterns("outbox", "logs", "dagster"))
    settings = Settings(home=home, crm_source="demo", as_of=built_warehouse.summary.as_of)
    mine = str(settings.warehouse_path.resolve())
    opened: list[tuple[str, bool]] = []
    real = Warehouse._open_driver

    def counting(self, read_only=False):
        opened.append((str(self.path.resolve()) if self.path else self.url, read_only))
        return real(self, read_only)

    monkeypatch.setattr(Warehouse, "_open_driver", counting)
    summary = run_daily_job(settings, selection=["risk/risk_flags", "risk/coaching_drafts", "review/manager_digests"])
    assert summary.success, summary.failures
    assert summary.executor == "in_process" and len(set(summary.step_pids.values())) == 1
    assert {"risk/risk_flags", "risk/coaching_drafts", "review/manager_digests"} <= set(summary.materialized)
    checks = {(c["asset"], c["check"]) for c in summary.checks}
    assert {("risk/risk_flags", "evidence_rate"), ("review/manager_digests", "every_flag_reaches_a_manager")} <= checks
    assert [o for o in opened if o[0] == mine] == [(mine, False)], opened  # one open for the whole run
    assert summary.asset_metadata["risk/risk_flags"]["flags"] > 0
    with duckdb.connect(mine, read_only=True) as con:  # closed at the end of the run
        assert con.execute("select count(distinct run_id) from risk.risk_flags").fetchone()[0] == 2
