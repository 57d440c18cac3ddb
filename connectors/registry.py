"""Open the configured CRM source (demo generator or a CSV export folder)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from connectors.csv_folder import CsvFolderSource
from connectors.mapping import MappingError, identity_mapping
from sales_supervisor.settings import Settings


def ensure_demo_crm(settings: Settings, progress: Callable[[str, int], None] | None = None) -> Path:
    """Generate the demo CRM for the configured seed/scale once; later runs reuse it, until the
    generator's version changes (a demo from an older version lacks newer planted cases)."""
    import json
    import shutil

    from connectors.demo.generator import generate_demo_crm
    from connectors.demo.params import GENERATOR_VERSION

    folder = settings.demo_dir
    manifest = folder / "manifest.json"
    if manifest.exists():
        try:
            version = json.loads(manifest.read_text(encoding="utf-8")).get("generator_version")
        except ValueError:
            version = None
        if version == GENERATOR_VERSION:
            return folder
        shutil.rmtree(folder)
    generate_demo_crm(folder, seed=settings.demo_seed, scale=settings.demo_scale, progress=progress)
    return folder


# API connectors: module, class. Each reads its credentials from the environment (never logged).
API_SOURCES = {
    "hubspot": ("connectors.hubspot", "HubSpotSource"),
    "salesforce": ("connectors.salesforce", "SalesforceSource"),
    "pipedrive": ("connectors.pipedrive", "PipedriveSource"),
}
NOTE_WRITERS = {
    "hubspot": ("connectors.hubspot.notes", "HubSpotNoteWriter"),
    "salesforce": ("connectors.salesforce.notes", "SalesforceNoteWriter"),
    "pipedrive": ("connectors.pipedrive.notes", "PipedriveNoteWriter"),
}


def _load(module: str, name: str):
    import importlib

    return getattr(importlib.import_module(module), name)


def open_crm_source(settings: Settings, progress: Callable[[str, int], None] | None = None):
    if settings.crm_source in API_SOURCES:
        return _load(*API_SOURCES[settings.crm_source]).from_env()
    if settings.crm_source == "demo":
        return CsvFolderSource(
            ensure_demo_crm(settings, progress), identity_mapping("demo"), work_dir=settings.home_dir / "landing" / "spill"
        )
    if settings.crm_source == "csv":
        if settings.csv_folder is None:
            raise MappingError("SALES_SUPERVISOR_CRM_SOURCE=csv needs SALES_SUPERVISOR_CSV_FOLDER (the export folder)")
        return CsvFolderSource(
            settings.csv_folder, settings.csv_mapping, as_of=settings.as_of, work_dir=settings.home_dir / "landing" / "spill"
        )
    raise MappingError(f"unknown CRM source {settings.crm_source!r} (expected demo, csv, {', '.join(API_SOURCES)})")


def crm_note_writer(crm_source: str, ledger):
    """The CRM's note writer for approved items (the publisher's only CRM write), or None for
    the demo and CSV sources, whose stand-in is the local notes table."""
    if crm_source not in NOTE_WRITERS:
        return None
    return _load(*NOTE_WRITERS[crm_source]).from_env(ledger)


def preflight(settings: Settings) -> None:
    """Check the configured source before a run starts: a bad folder, mapping or missing
    credentials is one clear message, not a failed run. Raises MappingError or ValueError."""
    if settings.crm_source in API_SOURCES:
        _load(*API_SOURCES[settings.crm_source]).from_env()
    elif settings.crm_source == "csv":
        open_crm_source(settings).check()


def export_as_of(settings: Settings):
    """The as-of date of a CSV export when none is given: the date of its latest event
    (None for other sources, and for an export without timestamps)."""
    if settings.crm_source != "csv" or settings.as_of is not None or settings.csv_folder is None:
        return None
    latest = CsvFolderSource(settings.csv_folder, settings.csv_mapping, work_dir=settings.home_dir / "landing" / "spill").latest_timestamp()
    return latest.date() if latest else None
