"""Asset checks on landed and modelled data: quarantined rows per object and Great Expectations suites.

Each family of checks runs as ONE Dagster step (a ``@multi_asset_check``) instead of one step per check:
every check keeps its own name, asset and blocking flag in the UI, but the step's fixed cost (process
bookkeeping, resource set-up, the Great Expectations import) is paid once, not once per table. A check
that raises does not stop its siblings: the others are still evaluated and reported, then the step fails
naming it (it shows as "execution failed", as it did as its own step).
"""

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import dagster as dg

from connectors.landing import latest_landing_report, quarantine_verdict, with_reasons
from connectors.schema import RAW_OBJECTS
from orchestration.assets.landing import raw_key
from orchestration.resources import SupervisorSettings


def evaluate_each(
    context: dg.AssetCheckExecutionContext,
    specs: Sequence[dg.AssetCheckSpec],
    evaluate: Callable[[dg.AssetCheckSpec], dg.AssetCheckResult],
) -> Iterator[dg.AssetCheckResult]:
    """Evaluate the selected checks of a batched step, in the order of ``specs``; ``evaluate`` returns
    the result for one spec (asset_key and check_name set). A check that raises is logged, the others
    still run, and the step fails at the end naming every check that could not be evaluated."""
    selected = context.selected_asset_check_keys
    errors: list[str] = []
    for spec in specs:
        if spec.key not in selected:
            continue
        try:
            result = evaluate(spec)
        except Exception as exc:  # noqa: BLE001 - reported below, after the sibling checks ran
            label = f"{spec.asset_key.to_user_string()}:{spec.name}"
            context.log.exception(f"check {label} could not be evaluated")
            errors.append(f"{label}: {type(exc).__name__}: {exc}")
            continue
        yield result
    if errors:
        raise dg.Failure(
            description=f"{len(errors)} check(s) could not be evaluated: " + "; ".join(errors),
            allow_retries=False,
        )


@contextlib.contextmanager
def step_connection(warehouse) -> Iterator:
    """One read-only connection for all the checks of a batched step on DuckDB (opening the file costs about
    0.1 s each time); None on a server warehouse, where a statement that fails would abort the shared
    transaction for the checks after it: there each check opens its own (:func:`on_connection`)."""
    if warehouse.dialect == "duckdb":
        with warehouse.connect(read_only=True) as con:
            yield con
    else:
        yield None


def on_connection(warehouse, shared, fn: Callable):
    """``fn(connection)`` on the step's shared connection, else on one of its own."""
    if shared is not None:
        return fn(shared)
    with warehouse.connect(read_only=True) as con:
        return fn(con)


def evaluate_each_on_connection(
    context: dg.AssetCheckExecutionContext,
    specs: Sequence[dg.AssetCheckSpec],
    warehouse,
    evaluate: Callable[[Any, dg.AssetCheckSpec], dg.AssetCheckResult],
) -> Iterator[dg.AssetCheckResult]:
    """:func:`evaluate_each` with ``evaluate(connection, spec)`` given a read-only connection: the step's
    shared one on DuckDB, one per check on a server warehouse (:func:`step_connection`)."""
    with step_connection(warehouse) as shared:
        yield from evaluate_each(context, specs, lambda spec: on_connection(warehouse, shared, lambda con: evaluate(con, spec)))


# -- quarantined rows per landed object ---------------------------------------------------------

QUARANTINE_CHECK = "no_rejected_rows"  # the name predates the accounting; kept so the graph's history stays


def _rejected_rows_spec(object_name: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        QUARANTINE_CHECK,
        asset=raw_key(object_name),
        description=(
            f"Every input row of {object_name} landed, quarantined (raw.rejected_rows, with a reason) or skipped; "
            "WARN when any were quarantined, ERROR when rows are unaccounted for or the quarantined share is above "
            "the limit (plausibility.max_quarantine_share, default 20%)."
        ),
        blocking=False,
    )


def rejected_rows_result(con, object_name: str) -> dg.AssetCheckResult:
    """The quarantine check of one landed object, on an open read-only warehouse connection."""
    key = {"asset_key": raw_key(object_name), "check_name": QUARANTINE_CHECK}
    report = latest_landing_report(con, object_name)
    if report is None:
        return dg.AssetCheckResult(**key, passed=False, description=f"raw.{object_name} has not been landed yet")
    samples = con.execute(
        "select row_number, field, reason from raw.rejected_rows where landing_id = :landing_id and object = :object "
        "order by row_number limit 3",
        {"landing_id": report["landing_id"], "object": object_name},
    ).fetchall()
    report = with_reasons(con, report)
    severity, accounted, within, text = quarantine_verdict(report)
    examples = "; ".join(f"row {r}: {reason[:200]}" for r, _, reason in samples)
    return dg.AssetCheckResult(
        **key,
        passed=report["rejected"] == 0 and accounted,
        severity=dg.AssetCheckSeverity.ERROR if severity == "ERROR" else dg.AssetCheckSeverity.WARN,
        description=text + (f" (e.g. {examples})" if examples else ""),
        metadata={
            "rows_input": dg.MetadataValue.int(int(report.get("input_rows") or 0)),
            "rows_landed": dg.MetadataValue.int(report["rows"]),
            "rows_rejected": dg.MetadataValue.int(report["rejected"]),
            "rows_skipped": dg.MetadataValue.int(report["skipped"]),
            "source_file": str(report["source_file"]),
            "absent_fields": str(report.get("absent_fields") or ""),
        },
    )


_QUARANTINE_SPECS = [_rejected_rows_spec(name) for name in RAW_OBJECTS]


@dg.multi_asset_check(
    name="landing_quarantine_checks",
    specs=_QUARANTINE_SPECS,
    can_subset=True,
    description="The quarantine check (no_rejected_rows) of every landed object, in one step.",
)
def landing_quarantine_checks(context: dg.AssetCheckExecutionContext, supervisor: SupervisorSettings):
    yield from evaluate_each_on_connection(
        context, _QUARANTINE_SPECS, supervisor.settings().warehouse_handle(),
        lambda con, spec: rejected_rows_result(con, spec.asset_key.path[-1]),
    )


# Kept as a list: callers add the landing's checks with ``[crm_landing, *rejected_rows_checks]``.
rejected_rows_checks = [landing_quarantine_checks]


# -- Great Expectations suites (expectations/) ---------------------------------------------------

# Above this many rows a reproducible sample is validated (the result says so).
GX_MAX_ROWS = 200_000
GX_CHECK = "great_expectations"


def active_dataset(warehouse) -> str | None:
    """The dataset of the last landing (raw.active_source), or None before any."""
    from agents.warehouse import Warehouse

    wh = Warehouse.coerce(warehouse)
    if not wh.exists():
        return None
    with wh.connect(read_only=True) as con:
        if not con.has_table("raw", "active_source"):
            return None
        row = con.execute("select dataset from raw.active_source").fetchone()
    return row[0] if row else None


def _gx_spec(table_key: str) -> dg.AssetCheckSpec:
    schema, _, table = table_key.partition(".")
    return dg.AssetCheckSpec(
        GX_CHECK,
        asset=dg.AssetKey([schema, table]),
        description=f"Great Expectations suite for {table_key} (expectations/suites.py).",
        blocking=False,
    )


def gx_result(warehouse, table_key: str, active: str | None, connection=None) -> dg.AssetCheckResult:
    """The Great Expectations check of one table (its suite validated once, all expectations together)."""
    from expectations.validation import validate_table

    schema, _, table = table_key.partition(".")
    key = {"asset_key": dg.AssetKey([schema, table]), "check_name": GX_CHECK}
    if schema == "raw" and active not in (None, "raw"):
        # A native CRM landed raw_<crm>.* instead; raw.<table> holds an older source's rows.
        crm = active.removeprefix("raw_")
        return dg.AssetCheckResult(
            **key,
            passed=True,
            description=(
                f"not applicable: the active source lands natively into {active}, not {table_key}; "
                f"its rows are checked in the canonical shape by the dbt tests of stg_{crm}__{table} "
                f"and stg_crm__{table}, and by the marts suites"
            ),
            metadata={"applicable": False, "active_dataset": active},
        )
    outcome = validate_table(warehouse, table_key, max_rows=GX_MAX_ROWS, connection=connection)
    return dg.AssetCheckResult(
        **key,
        passed=outcome.success,
        description=outcome.describe(),
        metadata={
            "rows_checked": dg.MetadataValue.int(outcome.rows_checked),
            "expectations": dg.MetadataValue.int(outcome.checks_run),
            "failed_expectations": dg.MetadataValue.int(len(outcome.failures)),
            "sampled": outcome.sampled,
        },
    )


def _gx_multi_check(schema: str, table_keys: list[str]) -> dg.AssetChecksDefinition:
    specs = [_gx_spec(key) for key in table_keys]

    @dg.multi_asset_check(
        name=f"{schema}_great_expectations",
        specs=specs,
        can_subset=True,
        description=f"The Great Expectations suites of the {schema} tables (expectations/suites.py), in one step.",
    )
    def _checks(context: dg.AssetCheckExecutionContext, supervisor: SupervisorSettings):
        warehouse = supervisor.settings().warehouse_handle()
        active = active_dataset(warehouse) if schema == "raw" else None
        with step_connection(warehouse) as shared:  # validate_table opens its own when there is none
            yield from evaluate_each(
                context, specs, lambda spec: gx_result(warehouse, f"{schema}.{spec.asset_key.path[-1]}", active, shared)
            )

    return _checks


def gx_checks() -> list[dg.AssetChecksDefinition]:
    """One step per schema (raw: after the landing; marts: after dbt), each validating its tables' suites."""
    from expectations.suites import SUITES

    by_schema: dict[str, list[str]] = {}
    for key in SUITES:
        by_schema.setdefault(key.partition(".")[0], []).append(key)
    return [_gx_multi_check(schema, keys) for schema, keys in by_schema.items()]
