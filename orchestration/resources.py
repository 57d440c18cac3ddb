"""Dagster resources. Values left unset fall back to sales_supervisor.settings.Settings,
which reads SALES_SUPERVISOR_* environment variables when a run starts (never at import)."""

from __future__ import annotations

import datetime as dt
import os

import dagster as dg

from sales_supervisor.settings import Settings


class SupervisorSettings(dg.ConfigurableResource):
    """Where local state lives, which CRM to read, and the run's as-of date."""

    home: str | None = None
    crm_source: str | None = None
    csv_folder: str | None = None
    csv_mapping: str | None = None
    demo_seed: int | None = None
    demo_scale: int | None = None
    as_of: str | None = None

    def settings(self) -> Settings:
        overrides = {k: v for k, v in self.model_dump().items() if v not in (None, "")}
        settings = Settings(**overrides)
        settings.home_dir.mkdir(parents=True, exist_ok=True)
        # dbt's profiles.yml reads the warehouse path from the environment.
        os.environ["SALES_SUPERVISOR_WAREHOUSE"] = str(settings.warehouse_path)
        return settings

    def as_of_date(self) -> dt.date:
        return self.settings().effective_as_of()
