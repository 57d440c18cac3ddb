"""The daily job and its weekday-morning schedule."""

from __future__ import annotations

import dagster as dg

daily_supervisor_job = dg.define_asset_job(
    "daily_supervisor_job",
    # Publishing is not part of the morning run: the approval sensor triggers it.
    selection=dg.AssetSelection.all() - dg.AssetSelection.keys(dg.AssetKey(["review", "published_coaching"])),
    description="Land the CRM, build marts and the semantic layer, flag deals, draft coaching, post manager digests.",
)


def weekday_morning_schedule() -> dg.ScheduleDefinition:
    """Dagster needs a schedule's time when the code location loads (never at import): the time and
    timezone are the two settings read there (Dagster's EnvVar, with defaults)."""
    return dg.ScheduleDefinition(
        name="weekday_morning",
        job=daily_supervisor_job,
        cron_schedule=dg.EnvVar("SALES_SUPERVISOR_SCHEDULE_CRON").get_value("30 6 * * 1-5"),
        execution_timezone=dg.EnvVar("SALES_SUPERVISOR_SCHEDULE_TIMEZONE").get_value("Europe/London"),
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Every weekday morning: run the supervisor on the latest CRM extract.",
    )


# -- the executor: chosen at run time from the warehouse ------------------------------------------------------
# DuckDB admits one writing process, so a run on the DuckDB file executes its steps one after another in one
# process; a server warehouse (PostgreSQL) has no such limit, so its runs may execute steps in separate
# processes (Dagster's multiprocess executor) and independent steps side by side.
EXECUTOR_MODES = ("auto", "in_process", "multiprocess")


def executor_mode(config: dict | None, warehouse: str | None = None) -> str:
    """``in_process`` or ``multiprocess`` for an executor config: ``mode`` when it names one, else (``auto``) by
    the warehouse (``warehouse``, or the run's settings read now, at run time, never at import)."""
    mode = (config or {}).get("mode") or "auto"
    if mode not in EXECUTOR_MODES:
        raise ValueError(f"unknown executor mode {mode!r}: choose one of {', '.join(EXECUTOR_MODES)}")
    if mode != "auto":
        return mode
    if warehouse is None:
        from sales_supervisor.settings import Settings

        warehouse = Settings().warehouse
    return "multiprocess" if warehouse == "postgres" else "in_process"


def _executor_requirements(config):
    from dagster._core.definitions.executor_definition import multiple_process_executor_requirements

    return multiple_process_executor_requirements() if executor_mode(config) == "multiprocess" else []


@dg.executor(
    name="warehouse_executor",
    config_schema={
        "mode": dg.Field(
            str, default_value="auto",
            description="auto (in-process on DuckDB, multiprocess on PostgreSQL), in_process or multiprocess.",
        ),
        "max_concurrent": dg.Field(
            int, default_value=2, description="Step processes at a time (multiprocess; the machine's cores)."
        ),
    },
    requirements=_executor_requirements,
)
def warehouse_executor(init_context):
    """In-process on the DuckDB file (one writer), multiprocess on a server warehouse."""
    from dagster._core.definitions.executor_definition import (
        _core_in_process_executor_creation,
        _core_multiprocess_executor_creation,
    )

    config = init_context.executor_config
    retries = {"enabled": {}}
    if executor_mode(config) == "multiprocess":
        # Step processes fork from a server that loaded the definitions once (orchestration/preload.py).
        return _core_multiprocess_executor_creation({
            "max_concurrent": config.get("max_concurrent") or 2, "retries": retries,
            "start_method": {"forkserver": {"preload_modules": ["orchestration.preload"]}},
        })
    return _core_in_process_executor_creation({"retries": retries})
