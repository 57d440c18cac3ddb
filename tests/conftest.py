"""Shared fixtures. The full pipeline runs once per test session (real DuckDB, dbt, MetricFlow, Dagster)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from sales_supervisor.settings import DBT_PROJECT_DIR, Settings


@pytest.fixture(autouse=True, scope="session")
def _isolated_state(tmp_path_factory):
    """No test writes under the checkout's var/ or reads a developer's .env settings."""
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
