"""The sales-supervisor code location (loaded by workspace.yaml)."""

from __future__ import annotations

import dagster as dg
from dagster_dbt import DbtCliResource

from orchestration.assets.dbt import dbt_models, dbt_project
from sales_supervisor.dbt import DBT_EXECUTABLE
from orchestration.assets.landing import crm_landing, native_table_assets
from orchestration.assets.review import (
    approval_sensor,
    every_flag_reaches_a_manager,
    manager_digests,
    publish_job,
    published_coaching,
)
from orchestration.assets.risk import coaching_drafts, risk_flags, risk_flags_evidence_rate
from orchestration.assets.semantic import semantic_checks, semantic_layer
from orchestration.checks import gx_checks, rejected_rows_checks
from orchestration.jobs import daily_supervisor_job, weekday_morning_schedule
from orchestration.resources import DrafterSettings, SupervisorSettings

defs = dg.Definitions(
    assets=[crm_landing, *native_table_assets(), dbt_models, semantic_layer, risk_flags, coaching_drafts, manager_digests, published_coaching],
    asset_checks=[*rejected_rows_checks, *gx_checks(), *semantic_checks, risk_flags_evidence_rate, every_flag_reaches_a_manager],
    jobs=[daily_supervisor_job, publish_job],
    sensors=[approval_sensor],
    schedules=[weekday_morning_schedule],
    resources={
        "supervisor": SupervisorSettings(),
        "drafter": DrafterSettings(),
        "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE),
    },
    # DuckDB admits one writing process: run a job's steps one after another, in one process.
    executor=dg.in_process_executor,
)
