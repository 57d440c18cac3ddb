"""The sales-supervisor code location (loaded by workspace.yaml).

Importing this module does no work: no dbt parse, no dlt pipeline, no environment
read, no file opened. Dagster's loader finds :func:`load_definitions` (``@dg.definitions``)
and calls it when it loads the code location; that reads the dbt manifest the
preparation step wrote (``make prepare``, or ``dagster dev``, which prepares a stale
project through DbtProject.prepare_if_dev). Code that wants the objects directly (the
CLI, tests) uses ``defs``, which prepares the dbt project when its manifest is stale
and builds the definitions once per process.
"""

from __future__ import annotations

import dagster as dg

_DEFS: dg.Definitions | None = None


def build_definitions() -> dg.Definitions:
    from orchestration.assets.accountability import rep_scorecards, weekly_scorecards_job, weekly_scorecards_schedule
    from orchestration.assets.dbt import SupervisorDbtCli, dbt_models, dbt_project
    from orchestration.assets.landing import active_source_asset, crm_landing
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
    from sales_supervisor.dbt import dbt_executable

    return dg.Definitions(
        assets=[crm_landing, active_source_asset(), dbt_models, semantic_layer, risk_flags, coaching_drafts, manager_digests, published_coaching,
                rep_scorecards],
        asset_checks=[*rejected_rows_checks, *gx_checks(), *semantic_checks, risk_flags_evidence_rate, every_flag_reaches_a_manager],
        jobs=[daily_supervisor_job, publish_job, weekly_scorecards_job],
        sensors=[approval_sensor],
        schedules=[weekday_morning_schedule(), weekly_scorecards_schedule()],
        resources={
            "supervisor": SupervisorSettings(),
            "drafter": DrafterSettings(),
            "dbt": SupervisorDbtCli(project_dir=dbt_project, dbt_executable=dbt_executable()),
        },
        # DuckDB admits one writing process: run a job's steps one after another, in one process.
        executor=dg.in_process_executor,
    )


@dg.definitions
def load_definitions() -> dg.Definitions:
    """What Dagster's loader calls (workspace.yaml, ``dagster dev -m orchestration.definitions``)."""
    from sales_supervisor.pycache import keep_bytecode_cache

    keep_bytecode_cache()  # `dagster dev`: the run processes and their dbt inherit the bytecode cache
    return _cached()


def _cached() -> dg.Definitions:
    global _DEFS
    if _DEFS is None:
        _DEFS = build_definitions()
    return _DEFS


def __getattr__(name: str):
    # ``from orchestration.definitions import defs``: the CLI and tests, outside Dagster's loader.
    if name == "defs":
        from sales_supervisor.dbt import prepare_dbt_project

        prepare_dbt_project()
        return _cached()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
