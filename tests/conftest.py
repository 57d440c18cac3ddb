"""Shared fixtures. The full pipeline runs once per test session (real DuckDB, dbt, MetricFlow, Dagster)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from sales_supervisor.settings import DBT_PROJECT_DIR, Settings


def _xdist_worker(config) -> str | None:
    """The worker's id (gw0, gw1, ...) when this process is a pytest-xdist worker (`make test` runs
    the suite with ``-n auto``), else None."""
    return getattr(config, "workerinput", {}).get("workerid")


_TERMINAL_ENV = ("COLUMNS", "LINES")


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: called in the controller for each worker it starts
def pytest_configure_node(node):
    """Each worker gets the controller's terminal-size variables: a worker process starts with COLUMNS=80 and
    LINES=24 set, which would fix the width of the CLI's rich consoles (created at import) before a test sets
    COLUMNS, so tables would wrap differently than in a serial run."""
    node.workerinput["terminal_env"] = {k: os.environ.get(k) for k in _TERMINAL_ENV}


def pytest_configure(config):
    """Under pytest-xdist the workers import the code location while they collect, at the same moment, and
    that import parses the dbt project when its manifest is stale (a fresh clone): one worker at a time
    prepares the project's target/ behind a file lock, so the others find it parsed instead of writing the
    same files. A serial run (``-n 0`` or ``-p no:xdist``) does nothing here."""
    if _xdist_worker(config) is None:
        return
    for key, value in config.workerinput.get("terminal_env", {}).items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    from filelock import FileLock

    from sales_supervisor.dbt import prepare_dbt_project

    target = Path(DBT_PROJECT_DIR) / "target"
    target.mkdir(exist_ok=True)
    with FileLock(str(target / ".prepare.lock")):
        prepare_dbt_project()


@pytest.fixture(autouse=True, scope="session")
def _isolated_state(tmp_path_factory, request):
    """No test writes under the checkout's var/ or reads a developer's .env settings."""
    from sales_supervisor.pycache import keep_bytecode_cache

    # Where the environment disables bytecode, the suite's many dbt and CLI subprocesses would recompile every
    # import: keep one cache for all sessions under pytest's temporary root (never under the checkout).
    # (An xdist worker's temporary root is one level deeper, <session root>/popen-gwN: the same cache.)
    root = tmp_path_factory.getbasetemp().parent
    keep_bytecode_cache(root.parent if _xdist_worker(request.config) else root)
    home = tmp_path_factory.mktemp("dagster_home")
    old = {k: os.environ.get(k) for k in ("DAGSTER_HOME", "SALES_SUPERVISOR_HOME")}
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ["SALES_SUPERVISOR_HOME"] = str(tmp_path_factory.mktemp("var"))
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def built_warehouse(tmp_path_factory):
    """The daily job materialised once on the demo CRM, in-process, through Dagster."""
    from sales_supervisor.pipeline import run_daily_job

    home = tmp_path_factory.mktemp("pipeline_var")
    settings = Settings(home=home, crm_source="demo")
    summary = run_daily_job(settings)
    assert summary.success, "the daily job failed:\n" + "\n".join(summary.failures)
    return SimpleNamespace(
        settings=settings,
        home=home,
        warehouse=settings.warehouse_path,
        demo_dir=settings.demo_dir,
        dbt_target=Path(DBT_PROJECT_DIR) / "target",
        summary=summary,
    )


@pytest.fixture
def postgres_warehouse_url():
    """A fresh, empty PostgreSQL database on the server SALES_SUPERVISOR_TEST_POSTGRES_URL names
    (.ci/run starts one), dropped afterwards; the test is skipped when no server is configured."""
    base = os.environ.get("SALES_SUPERVISOR_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("no Postgres server configured (SALES_SUPERVISOR_TEST_POSTGRES_URL)")
    yield from _fresh_postgres_database(base)


def _fresh_postgres_database(base: str):
    import uuid

    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(base)
    name = f"ss_test_{uuid.uuid4().hex[:12]}"
    admin = dict(host=url.host, port=url.port or 5432, user=url.username, password=url.password or "", dbname=url.database or "postgres")
    with psycopg.connect(**admin, autocommit=True) as con:
        con.execute(f'create database "{name}"')
    try:
        yield url.set(drivername="postgresql", database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(**admin, autocommit=True) as con:
            con.execute(f'drop database if exists "{name}" with (force)')
