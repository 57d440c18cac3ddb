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
