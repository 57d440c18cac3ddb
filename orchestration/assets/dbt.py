"""dbt staging and marts as Dagster assets; dbt tests surface as asset checks."""


import functools
import json
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, DbtProject, dbt_assets

from orchestration.resources import SupervisorSettings
from sales_supervisor.dbt import prepare_dbt_project
from sales_supervisor.settings import DBT_PROJECT_DIR

# The manifest comes from the preparation step (sales_supervisor.dbt.prepare_dbt_project: `make prepare`,
# the CLI, `dagster dev`), so the asset graph matches what `dbt build` runs. This module is imported only
# when the code location loads (orchestration.definitions imports it lazily) or when a caller imports an
# asset module directly; either way a missing or stale manifest (a pull or merge that changed the dbt
# project) is re-parsed here, before @dbt_assets reads it, never a graph that disagrees with dbt build.
dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
prepare_dbt_project(DBT_PROJECT_DIR, str(dbt_project.target_path))

DEFAULT_OWNERS = ["team:analytics-engineering"]


@functools.cache
def native_feeds() -> dict[str, dict[str, str]]:
    """dataset (raw_<crm>) -> native table -> the canonical object it feeds."""
    from connectors.landing import native_table_specs

    return {
        dataset: {name: obj.feeds or "opportunities" for name, obj in tables.items()}
        for dataset, tables in native_table_specs().items()
    }


class SupervisorDbtTranslator(DagsterDbtTranslator):
    """Keys and groups come from dbt metadata (schema and folder), never from model names."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        schema = dbt_resource_props.get("schema") or "main"
        if dbt_resource_props["resource_type"] == "source" and schema in native_feeds():
            # A CRM-native table (raw_<crm>.<table>) is drawn as the canonical landing asset it feeds
            # (raw/<object>), which the landing materializes whatever the source: the landing group
            # stays one asset per canonical object and the graph is the same for every CRM.
            feeds = native_feeds()[schema].get(dbt_resource_props["name"])
            if feeds:
                return dg.AssetKey(["raw", feeds])
        return dg.AssetKey([schema, dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "source":
            return "landing"
        fqn = dbt_resource_props.get("fqn") or []
        # fqn = [project, folder, ..., name]; a model at the root of models/ belongs to the semantic layer
        return fqn[1] if len(fqn) > 2 else "semantic_layer"

    def get_owners(self, dbt_resource_props: Mapping[str, Any]):
        meta = {**(dbt_resource_props.get("config", {}).get("meta") or {}), **(dbt_resource_props.get("meta") or {})}
        owner = meta.get("owner")
        return [owner] if owner else DEFAULT_OWNERS


dbt_translator = SupervisorDbtTranslator(
    # several native tables of a CRM feed one canonical object: their dbt sources share its key
    settings=DagsterDbtTranslatorSettings(enable_asset_checks=True, enable_duplicate_source_asset_keys=True)
)


@dbt_assets(manifest=dbt_project.manifest_path, dagster_dbt_translator=dbt_translator, pool="warehouse")
def dbt_models(context: AssetExecutionContext, dbt: DbtCliResource, supervisor: SupervisorSettings):
    settings = supervisor.settings()
    dbt_vars = {"as_of_date": settings.effective_as_of().isoformat()}
    yield from dbt.cli(["build", "--vars", json.dumps(dbt_vars)], context=context).stream()
