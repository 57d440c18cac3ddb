"""The same pipeline on a server warehouse (issue 13 item 6): one setting, SALES_SUPERVISOR_WAREHOUSE=postgres,
and dlt lands into PostgreSQL, dbt-postgres builds and tests the marts, MetricFlow queries them, the risk engine
flags the same deals there, drafts and digests follow, every asset check runs, the Dagster instance stores its
runs there, and the job's steps run in separate processes (Dagster's multiprocess executor). The PostgreSQL tests
need a server (SALES_SUPERVISOR_TEST_POSTGRES_URL; .ci/run starts one) and are skipped without it."""

from __future__ import annotations

import math

import pytest

from sales_supervisor.settings import Settings

@pytest.fixture(autouse=True)
def _warehouse_env_restored(monkeypatch):
    """A PostgreSQL run sets the dbt target and connection variables in the process; later tests use DuckDB."""
    from agents.warehouse import DBT_TARGET_ENV, DUCKDB_PATH_ENV, PG_ENV

    for var in (DBT_TARGET_ENV, DUCKDB_PATH_ENV, "SALES_SUPERVISOR_WAREHOUSE_URL", *PG_ENV.values()):
        monkeypatch.setenv(var, "")  # recorded, so the teardown restores (or removes) it
        monkeypatch.delenv(var)


def _close(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def test_dagster_yaml_follows_the_warehouse_and_never_holds_a_password(tmp_path, monkeypatch):
    from sales_supervisor.pipeline import use_local_dagster_home

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    duck = Settings(home=tmp_path)
    use_local_dagster_home(duck)
    assert "postgres_db" not in (tmp_path / "dagster" / "dagster.yaml").read_text()  # local files (history/runs)
    pg = Settings(home=tmp_path, warehouse="postgres", warehouse_url="postgresql://ops:s3cret@db:5433/sales")
    use_local_dagster_home(pg)
    text = (tmp_path / "dagster" / "dagster.yaml").read_text()
    assert "postgres_db:" in text and "env: SALES_SUPERVISOR_PG_PASSWORD" in text and "s3cret" not in text
    import os

    assert os.environ["SALES_SUPERVISOR_PG_PASSWORD"] == "s3cret" and os.environ["SALES_SUPERVISOR_PG_PORT"] == "5433"
    mine = "storage:\n  sqlite:\n    base_dir: /somewhere\n"
    (tmp_path / "dagster" / "dagster.yaml").write_text(mine)
    use_local_dagster_home(pg)  # a file the user wrote is theirs
    assert (tmp_path / "dagster" / "dagster.yaml").read_text() == mine


@pytest.mark.slow
def test_one_metricflow_engine_serves_every_asset_of_a_run(built_warehouse):
    meta = built_warehouse.summary.asset_metadata
    engines = {k: v["semantic_engine"] for k, v in meta.items() if "semantic_engine" in v}
    assert {"risk/risk_flags", "semantic/deal_outcomes_by_segment"} <= set(engines)
    assert len(set(engines.values())) == 1, engines


@pytest.mark.slow
def test_the_daily_job_runs_on_postgres_like_on_duckdb(postgres_warehouse_url, built_warehouse, tmp_path, monkeypatch):
    import time

    from agents.warehouse import Warehouse
    from sales_supervisor.pipeline import run_daily_job

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    duck = built_warehouse.summary
    settings = Settings(home=tmp_path / "var", crm_source="demo", warehouse="postgres", warehouse_url=postgres_warehouse_url,
                        as_of=duck.as_of)
    started = time.monotonic()
    summary = run_daily_job(settings)
    elapsed = time.monotonic() - started
    print(f"PostgreSQL daily job: {elapsed:.0f} s wall")

    # 1. What ran on PostgreSQL: the whole daily job (landing, every dbt model and test, every saved query, risk
    # flags, drafts, digests) and every asset check the DuckDB run ran, each step in its own process.
    assert summary.success, summary.failures
    ran = set(summary.materialized)
    assert set(duck.materialized) <= ran, sorted(set(duck.materialized) - ran)
    assert {"risk/risk_flags", "risk/coaching_drafts", "review/manager_digests"} <= ran
    checks = {(c["asset"], c["check"]) for c in summary.checks}
    assert {(c["asset"], c["check"]) for c in duck.checks} <= checks
    assert not summary.failed_error_checks, summary.failed_error_checks
    import os

    assert summary.executor == "multiprocess" and duck.executor == "in_process"
    pids = set(summary.step_pids.values())
    assert len(pids) > 1 and os.getpid() not in pids, summary.step_pids  # steps in separate processes
    dbt_checks = [c for c in summary.checks if c["asset"].startswith(("marts/", "staging/", "raw/"))]
    assert dbt_checks and not [c for c in summary.failed_error_checks if c["asset"].startswith(("marts/", "staging/"))]

    # 2. The marts hold the same rows as the DuckDB run's, and the governed baselines the same answers.
    pg = Warehouse("postgres", url=postgres_warehouse_url)
    dk = Warehouse.duckdb(built_warehouse.warehouse)
    marts = ["fct_opportunities", "fct_stage_history", "fct_activities", "dim_reps", "dim_accounts", "dim_contacts",
             "fct_field_history", "bridge_activity_contacts", "fct_deal_remedies", "fct_stage_exits"]
    with pg.connect(read_only=True) as p, dk.connect(read_only=True) as d:
        for mart in marts:
            n_pg = p.execute(f"select count(*) from marts.{mart}").scalar()
            assert n_pg and n_pg == d.execute(f"select count(*) from marts.{mart}").scalar(), mart
        ids = "select opportunity_id, stage, is_won, cycle_days from marts.fct_opportunities order by 1"
        assert p.execute(ids).fetchall() == d.execute(ids).fetchall()
        for name in ("deal_outcomes_by_segment", "deal_curve_by_segment_stage", "activity_baseline_by_segment_stage"):
            cols = d.columns("semantic", name)
            order = ", ".join(f'"{c}"' for c in cols if not c.endswith(("_p50", "_p75", "rate", "per_week")))
            q = f'select {", ".join(chr(34) + c + chr(34) for c in cols)} from semantic."{name}" order by {order}'
            rows_pg, rows_dk = p.execute(q).fetchall(), d.execute(q).fetchall()
            assert len(rows_pg) == len(rows_dk) > 0, name
            for a, b in zip(rows_pg, rows_dk):
                assert all(_close(x, y) for x, y in zip(a, b)), (name, a, b)
        # 3. The Dagster instance stored this run in the same database (dagster-postgres).
        assert p.execute("select count(*) from runs where run_id = :id", {"id": summary.run_id}).scalar() == 1

        # 4. The same flags (deal or rep, rule) as the DuckDB run's on the same demo CRM, the same drafts, each
        # flag's evidence resolving there (the evidence_rate check passed), and digests to the outbox.
        flags = "select coalesce(opportunity_id, rep_id), rule_id from risk.risk_flags where run_id = :id order by 1, 2"
        pg_flags = p.execute(flags, {"id": summary.run_id}).fetchall()
        assert pg_flags and pg_flags == d.execute(flags, {"id": duck.run_id}).fetchall()
        drafts = "select flag_id, rule_id from risk.coaching_drafts where run_id = :id order by 1"
        pg_drafts = p.execute(drafts, {"id": summary.run_id}).fetchall()
        assert pg_drafts and len(pg_drafts) == len(d.execute(drafts, {"id": duck.run_id}).fetchall())
    assert summary.asset_metadata["risk/risk_flags"]["flags"] == len(pg_flags)
    digests_pg, digests_dk = summary.asset_metadata["review/manager_digests"], duck.asset_metadata["review/manager_digests"]
    assert digests_pg["digests"] == digests_dk["digests"] > 0 and digests_pg["items"] == digests_dk["items"]
    assert digests_pg["written_to_outbox"] > 0 and not digests_pg["failed"]
    assert list((tmp_path / "var" / "outbox").rglob("*.md")), "no digest reached the outbox"
