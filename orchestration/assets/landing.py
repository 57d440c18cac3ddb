"""Landing: one Dagster asset per canonical CRM object (raw/<object>), through dlt."""


import datetime as dt
import tempfile
from pathlib import Path

import dagster as dg
from dagster import AssetExecutionContext
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from connectors.landing import (
    RejectSpool,
    crm_dlt_pipeline,
    crm_dlt_source,
    finish_landing,
    load_cursors,
    save_cursors,
    write_rejections,
)
from connectors.registry import open_crm_source
from connectors.schema import RAW_OBJECTS
from orchestration.resources import SupervisorSettings

LANDING_GROUP = "landing"
OWNERS = ["team:data-ops"]


def raw_key(object_name: str) -> dg.AssetKey:
    return dg.AssetKey(["raw", object_name])


class RawTableTranslator(DagsterDltTranslator):
    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        spec = super().get_asset_spec(data)
        obj = RAW_OBJECTS[data.resource.name]
        return spec.replace_attributes(
            key=raw_key(obj.name),
            deps=[],
            group_name=LANDING_GROUP,
            description=f"Landed CRM extract: {obj.description} Read-only; bad rows go to raw.rejected_rows.",
            owners=OWNERS,
            kinds={"dlt", "duckdb"},
        ).merge_attributes(metadata={"primary_key": ", ".join(obj.primary_key)})


# The shape only: the real source and pipeline are built per run from configuration.
_SHAPE_PIPELINE = crm_dlt_pipeline(
    Path(tempfile.gettempdir()) / "sales_supervisor_shape.duckdb",
    Path(tempfile.gettempdir()) / "sales_supervisor_dlt_shape",
)


@dlt_assets(
    dlt_source=crm_dlt_source(None),
    dlt_pipeline=_SHAPE_PIPELINE,
    name="crm_landing",
    dagster_dlt_translator=RawTableTranslator(),
    pool="warehouse",
)
def crm_landing(context: AssetExecutionContext, dlt: DagsterDltResource, supervisor: SupervisorSettings):
    settings = supervisor.settings()
    context.log.info(f"CRM source: {settings.crm_source}; warehouse: {settings.warehouse_path}")

    def progress(phase: str, count: int) -> None:
        context.log.info(f"demo CRM: {phase} {count:,}")

    source = open_crm_source(settings, progress)
    loaded_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    spool = RejectSpool(settings.home_dir / "landing" / f"rejected-{context.run.run_id}.jsonl")
    selected = [key.path[-1] for key in context.selected_asset_keys]
    cursors = load_cursors(settings.warehouse_path, source.source_system) if source.incremental else {}
    results = []
    try:
        for result in dlt.run(
            context=context,
            dlt_source=crm_dlt_source(source, loaded_at, selected, spool, context.run.run_id, cursors),
            dlt_pipeline=crm_dlt_pipeline(settings.warehouse_path, settings.home_dir / "dlt"),
        ):
            results.append(result)
    finally:
        # Quarantined rows are kept even when the load itself fails.
        write_rejections(settings.warehouse_path, spool)
    if source.incremental:
        # only after a successful load: a failed landing re-fetches from the old cursors
        save_cursors(settings.warehouse_path, source.source_system, source.cursors, context.run.run_id)
    reports = {r["object"]: r for r in finish_landing(settings.warehouse_path, source, context.run.run_id, loaded_at)}
    for result in results:
        report = reports[result.asset_key.path[-1]]
        yield dg.MaterializeResult(
            asset_key=result.asset_key,
            metadata={
                **(result.metadata or {}),
                "source_system": report["source_system"],
                "source_file": str(report["source_file"]),
                "rows_landed": dg.MetadataValue.int(report["rows"]),
                "rows_rejected": dg.MetadataValue.int(report["rejected"]),
                "present_in_source": report["present"],
            },
        )
