"""Asset checks run batched: one Dagster step per family of checks (not one per check), every check still
visible by its own name, and a check that raises does not stop its siblings."""

from __future__ import annotations

import dagster as dg


def test_the_daily_job_runs_each_family_of_checks_in_one_step():
    from orchestration.definitions import defs

    job = defs.resolve_job_def("daily_supervisor_job")
    ops = {node.name for node in job.nodes}
    assert {"landing_quarantine_checks", "raw_great_expectations", "marts_great_expectations",
            "semantic_coverage_checks"} <= ops
    graph = defs.resolve_asset_graph()
    by_name: dict[str, int] = {}
    for key in graph.asset_check_keys:
        by_name[key.name] = by_name.get(key.name, 0) + 1
    # still one check per table, each by its own name (10 landed objects, raw and marts suites, saved queries)
    assert by_name["no_rejected_rows"] >= 10 and by_name["great_expectations"] >= 19 and by_name["covers_every_segment"] >= 7
    # 4 batched steps instead of one step per check
    per_check = sum(n for name, n in by_name.items() if name in ("no_rejected_rows", "great_expectations", "covers_every_segment"))
    batched = [name for name in ops if name.endswith(("_checks", "_great_expectations"))]
    assert len(batched) == 4 and per_check >= 36, (batched, per_check)


def test_a_check_that_raises_does_not_stop_its_siblings():
    from orchestration.checks import evaluate_each

    @dg.asset
    def table_a() -> None:
        return None

    @dg.asset
    def table_b() -> None:
        return None

    specs = [dg.AssetCheckSpec("fine", asset=table_a), dg.AssetCheckSpec("broken", asset=table_a),
             dg.AssetCheckSpec("fine", asset=table_b)]

    def evaluate(spec: dg.AssetCheckSpec) -> dg.AssetCheckResult:
        if spec.name == "broken":
            raise RuntimeError("the table could not be read")
        return dg.AssetCheckResult(asset_key=spec.asset_key, check_name=spec.name, passed=True)

    @dg.multi_asset_check(specs=specs, can_subset=True, name="batch")
    def batch(context):
        yield from evaluate_each(context, specs, evaluate)

    result = dg.materialize([table_a, table_b, batch], raise_on_error=False)
    assert not result.success  # the run says a check could not run
    evaluated = {(e.asset_key.to_user_string(), e.check_name): e.passed for e in result.get_asset_check_evaluations()}
    assert evaluated == {("table_a", "fine"): True, ("table_b", "fine"): True}
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "table_a:broken: RuntimeError: the table could not be read" in failure.step_failure_data.error.message
