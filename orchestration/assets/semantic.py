"""The semantic layer in Dagster: one asset per MetricFlow saved query (found in the dbt manifest)."""

import json
from pathlib import Path

import dagster as dg
from dagster import AssetExecutionContext

from orchestration.assets.dbt import dbt_project, dbt_translator
from orchestration.resources import SupervisorSettings

SEMANTIC_GROUP = "semantic_layer"


def _model_deps(manifest: dict, unique_id: str, seen: set[str] | None = None) -> set[str]:
    """The dbt models a saved query ultimately reads (saved query -> metrics -> semantic models -> models)."""
    seen = seen if seen is not None else set()
    node = next(
        (manifest[kind][unique_id] for kind in ("saved_queries", "metrics", "semantic_models", "nodes") if unique_id in manifest.get(kind, {})),
        None,
    )
    if node is None or unique_id in seen:
        return set()
    seen.add(unique_id)
    if unique_id.startswith("model."):
        return {unique_id}
    found: set[str] = set()
    for dep in node.get("depends_on", {}).get("nodes", []):
        found |= _model_deps(manifest, dep, seen)
    return found


def saved_query_specs(manifest_path: Path) -> list[dg.AssetSpec]:
    manifest = json.loads(manifest_path.read_text())
    specs = []
    for unique_id, sq in sorted(manifest.get("saved_queries", {}).items()):
        deps = [dbt_translator.get_asset_key(manifest["nodes"][m]) for m in sorted(_model_deps(manifest, unique_id))]
        params = sq.get("query_params", {})
        specs.append(
            dg.AssetSpec(
                key=dg.AssetKey(["semantic", sq["name"]]),
                deps=deps,
                group_name=SEMANTIC_GROUP,
                description=(sq.get("description") or f"Saved query {sq['name']}.")
                + " Stored in semantic."
                + sq["name"]
                + "; every request is kept with its SQL and manifest hash in semantic.semantic_queries.",
                owners=["team:analytics-engineering"],
                kinds={"metricflow", "duckdb"},
                metadata={
                    "metrics": ", ".join(params.get("metrics", [])),
                    "group_by": ", ".join(params.get("group_by", [])),
                },
            )
        )
    return specs


@dg.multi_asset(specs=saved_query_specs(dbt_project.manifest_path), can_subset=True, name="semantic_layer", pool="warehouse")
def semantic_layer(context: AssetExecutionContext, supervisor: SupervisorSettings):
    from agents.baselines import run_saved_query, store_result

    settings = supervisor.settings()
    as_of = settings.effective_as_of()
    layer = supervisor.semantic_layer()  # the run's one MetricFlow engine
    warehouse = settings.warehouse_handle()
    # One warehouse session for the step's queries (not a DuckDB open and close per query).
    with layer.session():
        results = [run_saved_query(layer, key.path[-1]) for key in sorted(context.selected_asset_keys)]
        # The risk step's baselines and rep metrics, asked on this warm engine and kept by query id (risk_flags reads them).
        try:
            from agents.baselines import prefetch_risk_queries

            prefetch_risk_queries(layer, warehouse, as_of=as_of, run_id=context.run.run_id,
                                  policy=settings.risk_policy_in_force())
        except Exception as exc:  # risk_flags then asks MetricFlow itself; the log says why
            context.log.warning(f"risk baselines not prefetched: {exc!r}"[:500])
    for key, result in zip(sorted(context.selected_asset_keys), results):
        store_result(warehouse, result, as_of=as_of, run_id=context.run.run_id)
        yield dg.MaterializeResult(
            asset_key=key,
            metadata={
                "query_id": result.query_id,
                "manifest_hash": result.manifest_hash,
                "rows": dg.MetadataValue.int(len(result.rows)),
                "sql": dg.MetadataValue.md(f"```sql\n{result.sql}\n```"),
                "preview": dg.MetadataValue.md(result.to_dataframe().head(20).to_markdown(index=False)),
                "as_of": as_of.isoformat(),
                "semantic_engine": layer.engine_id,
            },
        )


COVERAGE_CHECK = "covers_every_segment"


def coverage_result(con, spec: dg.AssetSpec) -> dg.AssetCheckResult:
    """covers_every_segment for one saved query's table, on an open read-only warehouse connection."""
    name = spec.key.path[-1]
    key = {"asset_key": spec.key, "check_name": COVERAGE_CHECK}
    upstream_marts = [d.asset_key.path for d in spec.deps if d.asset_key.path[0] == "marts"]
    empty = [
        ".".join(path) for path in upstream_marts
        if con.execute(f'select count(*) from (select 1 from "{path[0]}"."{path[-1]}" limit 1) t').fetchone()[0] == 0
    ]
    if empty:
        # e.g. no activity log or stage history in the source: the baseline cannot exist
        return dg.AssetCheckResult(
            **key,
            passed=True,
            description=f"not applicable: {', '.join(empty)} has no rows in this source, so semantic.{name} has no baselines",
            metadata={"applicable": False, "empty_inputs": ", ".join(empty)},
        )
    columns = con.columns("semantic", name)
    segment_col = next((c for c in columns if c.endswith("segment")), None)
    segments = {r[0] for r in con.execute("select distinct segment from marts.fct_opportunities where segment is not null").fetchall()}
    if segment_col is None:
        return dg.AssetCheckResult(**key, passed=True, description=f"semantic.{name} is not sliced by segment")
    covered = {r[0] for r in con.execute(f'select distinct "{segment_col}" from semantic."{name}"').fetchall()}
    missing = sorted(segments - covered)
    return dg.AssetCheckResult(
        **key,
        passed=not missing,
        description=(
            f"semantic.{name}.{segment_col}: no baseline for segment(s) {', '.join(missing)}"
            if missing
            else f"semantic.{name} covers all {len(segments)} segments"
        ),
        metadata={"segments_missing": dg.MetadataValue.int(len(missing))},
    )


_COVERAGE_SPECS = [
    dg.AssetCheckSpec(
        COVERAGE_CHECK,
        asset=spec.key,
        description=f"semantic.{spec.key.path[-1]} has a row with values for every segment that has deals in marts.fct_opportunities.",
        blocking=False,
    )
    for spec in semantic_layer.specs
]
_SPEC_OF = {spec.key: spec for spec in semantic_layer.specs}


# One step for every saved query's coverage check (orchestration/checks.py: evaluate_each).
@dg.multi_asset_check(
    name="semantic_coverage_checks",
    specs=_COVERAGE_SPECS,
    can_subset=True,
    description="covers_every_segment for every saved query of the semantic layer, in one step.",
)
def semantic_coverage_checks(context: dg.AssetCheckExecutionContext, supervisor: SupervisorSettings):
    from orchestration.checks import evaluate_each_on_connection

    yield from evaluate_each_on_connection(
        context, _COVERAGE_SPECS, supervisor.warehouse_handle(),
        lambda con, check: coverage_result(con, _SPEC_OF[check.asset_key]),
    )


semantic_checks = [semantic_coverage_checks]
