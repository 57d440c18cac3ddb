"""Landing: one Dagster asset per canonical CRM object (raw/<object>), through dlt (connectors/landing.py)."""


import dagster as dg
from dagster import AssetExecutionContext

from connectors.landing import (
    land_source,
    native_table_specs,
    source_dataset,
    tables_for_objects,
)
from connectors.registry import open_crm_source
from connectors.schema import RAW_OBJECTS
from orchestration.resources import SupervisorSettings

LANDING_GROUP = "landing"
OWNERS = ["team:data-ops"]


def raw_key(object_name: str) -> dg.AssetKey:
    return dg.AssetKey(["raw", object_name])


def raw_table_spec(object_name: str) -> dg.AssetSpec:
    obj = RAW_OBJECTS[object_name]
    return dg.AssetSpec(
        key=raw_key(obj.name),
        group_name=LANDING_GROUP,
        description=f"Landed CRM extract: {obj.description} Read-only; bad rows go to raw.rejected_rows.",
        owners=OWNERS,
        kinds={"dlt", "duckdb"},
        metadata={"primary_key": ", ".join(obj.primary_key)},
    )


def native_table_key(dataset: str, table: str) -> dg.AssetKey:
    return dg.AssetKey([dataset, table])


def active_source_asset() -> dg.AssetSpec:
    """raw.active_source, the one landing asset besides the canonical objects. A native CRM's own
    tables are not assets of their own: dbt draws each as the canonical object it feeds
    (orchestration/assets/dbt.py), so the graph shows one landing asset per object for every source."""
    return native_table_assets()[0]


def native_table_assets() -> list[dg.AssetSpec]:
    """Every native CRM connector's landed tables (raw_<crm>.<table>), always in the graph,
    whichever CRM is the source: each hangs off the landing asset of the object it feeds, and
    the landing records a materialization for the tables it wrote. dbt's per-CRM staging
    models (stg_<crm>__<object>) read them."""
    specs = [
        dg.AssetSpec(
            key=dg.AssetKey(["raw", "active_source"]),
            deps=[raw_key(name) for name in RAW_OBJECTS],
            group_name=LANDING_GROUP,
            description="Which dataset the last landing wrote (raw for the demo CRM and CSV exports, raw_<crm> for "
            "a native CRM connector); stg_crm__<object> reads only that source's rows.",
            owners=OWNERS,
            kinds={"duckdb"},
        )
    ]
    for dataset, tables in native_table_specs().items():
        crm = dataset.removeprefix("raw_")
        for name, obj in tables.items():
            specs.append(
                dg.AssetSpec(
                    key=native_table_key(dataset, name),
                    deps=[raw_key(obj.feeds or "opportunities")],
                    group_name=LANDING_GROUP,
                    description=f"{crm} native table{' (mapping configuration)' if name.startswith('map_') else ''}: "
                    f"{obj.description or name} Landed with raw/{obj.feeds}; "
                    f"{'replaced' if obj.snapshot else 'merged by ' + ', '.join(obj.primary_key)} on each run.",
                    owners=OWNERS,
                    kinds={"dlt", "duckdb"},
                    metadata={"crm": crm, "primary_key": ", ".join(obj.primary_key)},
                )
            )
    return specs


# The specs are the canonical objects; the dlt source and pipeline are built per run from
# configuration (land_source), never when the code location loads.
@dg.multi_asset(
    specs=[raw_table_spec(name) for name in RAW_OBJECTS],
    can_subset=True,
    name="crm_landing",
    pool="warehouse",
)
def crm_landing(context: AssetExecutionContext, supervisor: SupervisorSettings):
    """One asset per canonical object, whatever the source: a canonical source (demo, CSV) lands
    ``raw.<object>``; a CRM-native one (HubSpot, Salesforce, Pipedrive) lands the tables of
    ``raw_<crm>`` that feed the object, which its dbt staging models map. So switching the
    source never changes the asset graph."""
    settings = supervisor.settings()
    warehouse = settings.warehouse_handle()
    context.log.info(f"CRM source: {settings.crm_source}; warehouse: {warehouse.label}")

    def progress(phase: str, count: int) -> None:
        context.log.info(f"demo CRM: {phase} {count:,}")

    source = open_crm_source(settings, progress)
    selected = [key.path[-1] for key in context.selected_asset_keys]
    tables = tables_for_objects(source, selected)
    context.log.info(f"landing {len(tables)} table(s) into {source_dataset(source)}: {', '.join(tables)}")
    reports = {
        r["object"]: r
        for r in land_source(
            source, warehouse, settings.home_dir, context.run.run_id, objects=selected,
            batch_size=settings.landing_batch_size,
        )
    }
    for report in reports.values():  # an object the source could not read, and what that disables
        if not report["present"] and report.get("notes"):
            context.log.warning(f"{report['object']}: {report['notes']}")
    # The quotas file beside any source (issue 14): raw.quota_file, read by stg_crm__quota_file.
    if "quotas" in selected:
        from agents.accountability.quotas import land_quotas_file
        from agents.warehouse import Warehouse

        with Warehouse.from_settings(settings).connect() as con:
            n = land_quotas_file(con, settings.quotas_file)
        if settings.quotas_file:
            context.log.info(f"quotas file {settings.quotas_file}: {n} row(s) landed in raw.quota_file")
    dataset = source_dataset(source)
    if dataset != "raw":  # the native tables written, as materializations of their (external) assets
        for name in tables:
            rep = source.reports.get(name)
            context.log_event(
                dg.AssetMaterialization(
                    asset_key=native_table_key(dataset, name),
                    metadata={
                        "dagster/row_count": dg.MetadataValue.int(rep.rows if rep else 0),
                        "rows_rejected": dg.MetadataValue.int(rep.rejected if rep else 0),
                        "source_file": str(rep.source_file if rep else None),
                        "landing_id": context.run.run_id,
                    },
                )
            )
    for key in context.selected_asset_keys:
        report = reports[key.path[-1]]
        yield dg.MaterializeResult(
            asset_key=key,
            metadata={
                "dagster/row_count": dg.MetadataValue.int(report["rows"]),
                "source_system": report["source_system"],
                "dataset": source_dataset(source),
                "source_file": str(report["source_file"]),
                "rows_landed": dg.MetadataValue.int(report["rows"]),
                "rows_rejected": dg.MetadataValue.int(report["rejected"]),
                "rows_skipped": dg.MetadataValue.int(report["skipped"]),
                "rows_input": dg.MetadataValue.int(report["input_rows"]),
                "absent_fields": str(report.get("absent_fields") or ""),
                "present_in_source": report["present"],
            },
        )
