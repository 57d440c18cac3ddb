"""Open the configured CRM source (demo generator or a CSV export folder)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from connectors.csv_folder import CsvFolderSource
from connectors.mapping import MappingError, identity_mapping
from sales_supervisor.settings import Settings


def ensure_demo_crm(settings: Settings, progress: Callable[[str, int], None] | None = None) -> Path:
    """Generate the demo CRM for the configured seed/scale once; later runs reuse it."""
    from connectors.demo.generator import generate_demo_crm

    folder = settings.demo_dir
    if not (folder / "manifest.json").exists():
        generate_demo_crm(folder, seed=settings.demo_seed, scale=settings.demo_scale, progress=progress)
    return folder


def open_crm_source(settings: Settings, progress: Callable[[str, int], None] | None = None) -> CsvFolderSource:
    if settings.crm_source == "demo":
        return CsvFolderSource(ensure_demo_crm(settings, progress), identity_mapping("demo"))
    if settings.crm_source == "csv":
        if settings.csv_folder is None:
            raise MappingError("SALES_SUPERVISOR_CRM_SOURCE=csv needs SALES_SUPERVISOR_CSV_FOLDER (the export folder)")
        return CsvFolderSource(settings.csv_folder, settings.csv_mapping)
    raise MappingError(f"unknown CRM source {settings.crm_source!r} (expected demo or csv)")
