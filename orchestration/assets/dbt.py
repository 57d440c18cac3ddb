"""dbt staging and marts as Dagster assets; dbt tests surface as asset checks."""


import functools
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
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


AS_OF_ENV = "SALES_SUPERVISOR_AS_OF_DATE"  # read by dbt_project/macros/as_of.sql

# dbt's unit tests check the models' SQL on fixture rows, never the run's data: they belong to development
# and CI (the test suite runs every one of them, tests/test_dbt_tests.py), not to each daily build, where
# they were a quarter of dbt's node time. The data tests (the asset checks) all run.
DBT_BUILD_ARGS = ["build", "--exclude-resource-type", "unit_test"]


class SupervisorDbtCli(DbtCliResource):
    """dagster-dbt's dbt CLI resource without two fixed costs it pays on every invocation:

    - ``dbt --version`` in a subprocess (a whole dbt start-up, about 3 CPU-s) to learn the version: when the
      executable is this environment's own dbt, the installed dbt-core package says it;
    - a dbt adapter initialised inside the Dagster process (importing dbt-core and loading its macros, a few
      CPU-s) that dagster-dbt uses only to fetch row counts and column metadata, which this project does not
      ask for (``.stream()`` without ``fetch_row_counts``/``fetch_column_metadata``).
    """

    @cached_property
    def _cli_version(self):
        from importlib.metadata import PackageNotFoundError, version as installed

        from packaging import version

        from sales_supervisor.dbt import dbt_executable

        if Path(self.dbt_executable).resolve() == Path(dbt_executable()).resolve():
            try:
                return version.parse(installed("dbt-core"))
            except PackageNotFoundError:
                pass
        return super()._cli_version

    def _initialize_dbt_core_adapter(self, args: Sequence[str]):
        return None  # no in-process adapter: nothing here reads metadata through it (see the class docstring)


def dbt_build_target(settings) -> Path:
    """One dbt target folder per home, kept between runs (not dagster-dbt's new folder per invocation): dbt
    re-parses only what changed since the home's last run (partial parsing), and its run artifacts
    (run_results.json, dbt.log) stay under the home instead of piling up in the project."""
    return settings.home_dir / "dbt_target"


@dbt_assets(manifest=dbt_project.manifest_path, dagster_dbt_translator=dbt_translator, pool="warehouse")
def dbt_models(context: AssetExecutionContext, dbt: DbtCliResource, supervisor: SupervisorSettings):
    import os

    settings = supervisor.settings()
    # The as-of date reaches dbt through the environment, not --vars: a changed --vars (every day) throws away
    # dbt's whole partial parse, a changed environment variable re-parses only the models that read it.
    previous = os.environ.get(AS_OF_ENV)
    os.environ[AS_OF_ENV] = settings.effective_as_of().isoformat()
    try:
        yield from dbt.cli(DBT_BUILD_ARGS, context=context, target_path=dbt_build_target(settings)).stream()
    finally:
        if previous is None:
            os.environ.pop(AS_OF_ENV, None)
        else:
            os.environ[AS_OF_ENV] = previous
