"""Dagster resources. Values left unset fall back to sales_supervisor.settings.Settings,
which reads SALES_SUPERVISOR_* environment variables when a run starts (never at import)."""

from __future__ import annotations

import datetime as dt
import functools
import os
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

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
    warehouse: str | None = None
    warehouse_url: str | None = None

    def settings(self) -> Settings:
        overrides = {k: v for k, v in self.model_dump().items() if v not in (None, "")}
        settings = Settings(**overrides)
        settings.home_dir.mkdir(parents=True, exist_ok=True)
        # A file export without an as-of date is read as of its latest timestamp (as `sales-supervisor run`
        # does), also when the schedule or the UI starts the run: a frozen export is not "today".
        if settings.crm_source == "csv" and settings.as_of is None and settings.csv_folder is not None:
            export_date = _export_as_of(settings, _folder_state(settings.csv_folder, settings.csv_mapping))
            if export_date is not None:
                settings = settings.model_copy(update={"as_of": export_date})
        # dbt's profiles.yml reads the warehouse (target, DuckDB path or PostgreSQL parts) from the environment.
        os.environ.update(settings.warehouse_handle().dbt_env())
        return settings

    def as_of_date(self) -> dt.date:
        return self.settings().effective_as_of()

    def warehouse_handle(self):
        """The configured warehouse (agents.warehouse.Warehouse: DuckDB file or PostgreSQL)."""
        return self.settings().warehouse_handle()

    # One MetricFlow engine (and dbt adapter, and on a server warehouse one connection) per run: built on
    # first use by any asset of the run and shared by the rest (the in-process executor initialises this
    # resource once per run; a multiprocess run builds one per step process), closed when the resource goes.
    _semantic_layer: Any = PrivateAttr(default=None)
    # One warehouse connection per run on the DuckDB file (the single-process path): opened by the first step
    # after dbt that asks for it (risk_flags, coaching_drafts, manager_digests, their checks) and reused by every
    # warehouse read and write of the steps that follow in this process (agents.warehouse.RunConnection), closed
    # when the resource goes. Never before dbt: dbt builds in a subprocess, which needs the file unlocked.
    _run_connection: Any = PrivateAttr(default=None)

    def run_warehouse(self):
        """The warehouse for the steps after dbt; on DuckDB with the run's one connection opened (see above)."""
        wh = self.settings().warehouse_handle()
        if wh.dialect == "duckdb" and (self._run_connection is None or self._run_connection.closed):
            import weakref

            self._run_connection = wh.run_connection()
            weakref.finalize(self, self._run_connection.close)
        return wh

    def semantic_layer(self):
        """The run's semantic layer (agents.semantic_layer.SemanticLayer), shared by its assets."""
        if self._semantic_layer is None:
            from agents.semantic_layer import SemanticLayer
            from sales_supervisor.dbt import semantic_manifest_dir
            from sales_supervisor.settings import DBT_PROJECT_DIR

            settings = self.settings()
            wh = settings.warehouse_handle()
            self._semantic_layer = SemanticLayer(
                DBT_PROJECT_DIR, DBT_PROJECT_DIR, semantic_manifest_dir(settings),
                wh.path if wh.dialect == "duckdb" else None,
                target=wh.dialect, env={**os.environ, **wh.dbt_env()},
                # Opened as the run's warehouse connection is (read-write; MetricFlow only selects): DuckDB admits
                # one configuration per file within a process, and the run connection may be open (run_warehouse).
                read_only=False,
            )
            # Closed when the run's resource goes (no teardown hook: that would make this resource a context
            # manager, which sensors and tests building contexts by hand cannot open).
            import weakref

            weakref.finalize(self, self._semantic_layer.close)
        return self._semantic_layer



def _folder_state(folder: Path, mapping: Path | None) -> tuple:
    """What the export's latest timestamp depends on: its files and their modification times."""
    files = sorted(p for p in Path(folder).glob("*") if p.is_file()) + ([Path(mapping)] if mapping else [])
    return tuple((str(p), p.stat().st_mtime_ns) for p in files if p.exists())


@functools.lru_cache(maxsize=8)
def _export_as_of(settings: Settings, folder_state: tuple) -> dt.date | None:
    # Read once per state of the folder (every asset of a run asks for the as-of date).
    from connectors.registry import export_as_of

    try:
        return export_as_of(settings)
    except Exception:  # noqa: BLE001 - the landing reports the files' problems; the run falls back to today
        return None


class DrafterSettings(dg.ConfigurableResource):
    """The coaching drafter. Claude is used only when an API key is configured (ANTHROPIC_API_KEY);
    otherwise the offline template drafter drafts every item."""

    model: str | None = None
    base_url: str | None = None
    max_tokens: int | None = None
    budget_usd: float | None = None
    batch_threshold: int | None = None

    def config(self):
        from agents.drafting.config import DrafterConfig

        overrides = {k: v for k, v in self.model_dump().items() if v not in (None, "")}
        env = {
            "model": os.getenv("SALES_SUPERVISOR_DRAFTER_MODEL"),
            "base_url": os.getenv("ANTHROPIC_BASE_URL"),
            "budget_usd": os.getenv("SALES_SUPERVISOR_DRAFTING_BUDGET_USD"),
            "batch_threshold": os.getenv("SALES_SUPERVISOR_DRAFTING_BATCH_THRESHOLD"),
            "batch_poll_interval_s": os.getenv("SALES_SUPERVISOR_DRAFTING_BATCH_POLL_S"),
        }
        values = {k: v for k, v in env.items() if v} | overrides
        api_key = os.getenv("ANTHROPIC_API_KEY")  # read when a run starts, never at import
        return DrafterConfig(api_key=api_key or None, **values)
