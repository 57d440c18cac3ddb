"""Run a suite from :mod:`expectations.suites` against one warehouse table with GX 1.x.

Why pandas and not GX's SQL datasource: GX reaches databases through SQLAlchemy
and DuckDB needs the ``duckdb_engine`` dialect for that, which is not a
dependency of this project. Instead the table is read through agents/warehouse.py
(DuckDB or PostgreSQL), read-only (validation never takes the warehouse's single write lock),
projecting only the columns the suite reads, into a pandas DataFrame that an
ephemeral GX context validates as a whole-dataframe batch.

Cost: about 0.3-0.8 s per 100k-row table and 2-4 s per million rows once GX is
imported (the first import takes several seconds). For very large tables pass
``max_rows`` to validate a reproducible reservoir sample: value rules (sets,
ranges, not-null rates) stay meaningful on a sample, uniqueness does not (a
duplicate pair is rarely sampled together), so keys at that scale are better
left to the dbt ``unique``/``not_null`` tests, which run in the warehouse.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import duckdb

from agents.warehouse import Warehouse, WarehouseError
from expectations.suites import ROW_COUNT_EXPECTATION, SUITES, Check, SuiteSpec

SAMPLE_VALUES = 5
SAMPLE_SEED = 42


class TableNotFoundError(LookupError):
    """The table a suite (or a suite's value set) reads is not in the warehouse."""


class WarehouseLockedError(RuntimeError):
    """Another process holds the warehouse's write lock, so it cannot be opened read-only now."""


@dataclass(frozen=True)
class ExpectationFailure:
    """One failed expectation.

    ``column`` is the column name, ``"a,b"`` for a compound or pair check, None
    for a table-level check. ``unexpected_count`` counts rows (for uniqueness:
    every row that shares its key with another row); ``unexpected_percent`` is
    over all rows checked. Both are None when the check could not run (missing
    column, GX error), in which case ``message`` says why.
    """

    expectation_type: str
    column: str | None
    unexpected_count: int | None
    unexpected_percent: float | None
    sample_values: tuple[Any, ...] = ()
    message: str = ""


@dataclass(frozen=True)
class TableValidation:
    table: str
    success: bool
    rows_checked: int
    failures: list[ExpectationFailure] = field(default_factory=list)
    checks_run: int = 0
    total_rows: int | None = None  # rows in the table; differs from rows_checked when sampled
    sampled: bool = False

    def describe(self) -> str:
        """One line per failure (or one line saying the table passed)."""
        if self.success:
            return f"{self.table}: {self.checks_run} checks passed on {self._rows_phrase()}"
        return "\n".join(self._describe_failure(f) for f in self.failures)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (e.g. for Dagster asset check metadata)."""
        return asdict(self)

    def _rows_phrase(self) -> str:
        if self.sampled:
            return f"{self.rows_checked} sampled rows (table has {self.total_rows})"
        return f"{self.rows_checked} rows"

    def _describe_failure(self, f: ExpectationFailure) -> str:
        where = f"{self.table}.{f.column}" if f.column else self.table
        if f.unexpected_count is None:
            return f"{where}: {f.expectation_type} failed ({f.message})"
        line = f"{where}: {f.expectation_type} failed for {f.unexpected_count} of {self._rows_phrase()}"
        shown = [v for v in f.sample_values if v is not None]
        if shown:
            line += " (e.g. " + ", ".join(_show(v) for v in shown) + ")"
        return line


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_show(v) for v in value) + ")"
    return repr(value) if isinstance(value, str) else str(value)


def validate_table(
    warehouse_path: Warehouse | str | Path,
    table_key: str,
    *,
    suite: SuiteSpec | None = None,
    require_rows: bool | None = None,
    max_rows: int | None = None,
    connection=None,
) -> TableValidation:
    """Validate ``table_key`` (``"raw.opportunities"``, ``"marts.fct_activities"``) in the DuckDB warehouse.

    ``suite`` defaults to ``SUITES[table_key]``. ``require_rows`` overrides the
    suite's own row-count rule for this call (False: an empty table passes).
    ``max_rows`` bounds the work on big tables: above it, a reproducible
    reservoir sample of that many rows is validated and the result says so.
    ``connection``: an open read-only connection to the warehouse to use (and leave open), so a caller
    validating many tables opens the warehouse once (opening a DuckDB file costs about 0.1 s each time).
    """
    if suite is None:
        try:
            suite = SUITES[table_key]
        except KeyError:
            raise KeyError(f"no suite for {table_key!r}; known: {', '.join(sorted(SUITES))}") from None
    schema, _, name = table_key.partition(".")
    if not name:
        raise ValueError(f"table key must be '<schema>.<table>', got {table_key!r}")
    wh = Warehouse.coerce(warehouse_path)
    path = wh.path if wh.dialect == "duckdb" else wh.label
    if not wh.exists():
        raise FileNotFoundError(f"warehouse {path} does not exist (cannot validate {table_key})")

    opened = contextlib.ExitStack()
    try:
        con = connection if connection is not None else opened.enter_context(wh.connect(read_only=True))
    except (duckdb.IOException, WarehouseError) as exc:
        raise WarehouseLockedError(
            f"cannot open warehouse {path} read-only to validate {table_key} "
            f"(is a process writing to it right now?): {exc}"
        ) from exc
    with opened:
        table_columns = _table_columns(con, schema, name)
        if not table_columns:
            raise TableNotFoundError(f"table {table_key} not found in warehouse {path}")
        value_sets = {sql: _value_set(con, sql, table_key) for sql in suite.value_set_queries}
        total_rows = int(con.execute(f"select count(*) from {_qualified(schema, name)}").fetchone()[0])

        checks = suite.all_checks(require_rows)
        missing = [c for c in suite.columns if c not in table_columns]
        failures = [
            ExpectationFailure(
                "expect_column_to_exist",
                column,
                None,
                None,
                message=f"column {column!r} is not in {table_key} (read by "
                + ", ".join(sorted({c.expectation_type for c in checks if column in c.columns}))
                + ")",
            )
            for column in missing
        ]
        runnable = [c for c in checks if not set(c.columns) & set(missing)]
        sampled = max_rows is not None and total_rows > max_rows
        frame = _load(con, schema, name, [c for c in suite.columns if c not in missing], max_rows if sampled else None)

    rows_checked = len(frame) if frame is not None else total_rows
    if runnable:
        failures += _run_gx(suite, runnable, value_sets, frame, rows_checked, total_rows)
    return TableValidation(
        table=table_key,
        success=not failures,
        rows_checked=rows_checked,
        failures=failures,
        checks_run=len(runnable) + len(missing),
        total_rows=total_rows,
        sampled=sampled,
    )


def validate_all(
    warehouse_path: str | Path, table_keys: Sequence[str] | None = None, **kwargs: Any
) -> dict[str, TableValidation]:
    """Validate several tables (default: every suite in :data:`SUITES`)."""
    return {key: validate_table(warehouse_path, key, **kwargs) for key in (table_keys or list(SUITES))}


# -- internals ------------------------------------------------------------------------------------


def _qualified(schema: str, name: str) -> str:
    return f'"{schema}"."{name}"'


def _table_columns(con, schema: str, name: str) -> list[str]:
    return con.columns(schema, name)


def _value_set(con, sql: str, table_key: str) -> list[Any]:
    import psycopg

    try:
        return [r[0] for r in con.execute(sql).fetchall() if r[0] is not None]
    except (duckdb.CatalogException, psycopg.errors.UndefinedTable) as exc:
        raise TableNotFoundError(f"{table_key}: the value set query {sql!r} failed: {exc}") from exc


def _load(con, schema: str, name: str, columns: list[str], sample_rows: int | None):
    if not columns:
        return None
    cols = ", ".join(f'"{c}"' for c in columns)
    sql = f"select {cols} from {_qualified(schema, name)}"
    if sample_rows is not None and con.dialect == "duckdb":
        sql += f" using sample reservoir({int(sample_rows)} rows) repeatable ({SAMPLE_SEED})"
    elif sample_rows is not None:
        # PostgreSQL samples by share of rows (reproducibly), then caps at the sample size
        total = int(con.execute(f"select count(*) from {_qualified(schema, name)}").fetchone()[0]) or 1
        share = min(100.0, 100.0 * sample_rows * 1.2 / total)
        sql += f" tablesample bernoulli ({share:.6f}) repeatable ({SAMPLE_SEED}) limit {int(sample_rows)}"
    return con.execute(sql).fetch_df()


def _gx_context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    # Ephemeral: nothing written to disk; no analytics calls, no progress bars in logs.
    config = DataContextConfig(
        analytics_enabled=False,
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


PASS_FAIL_FORMAT = {"result_format": "BOOLEAN_ONLY"}
DETAIL_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 20}


def _run_gx(
    suite: SuiteSpec,
    checks: list[Check],
    value_sets: Mapping[str, Sequence[Any]],
    frame,
    rows_checked: int,
    total_rows: int,
) -> list[ExpectationFailure]:
    import great_expectations as gx
    import pandas as pd

    if frame is None:  # only table-level checks: GX needs a frame with the right row count
        frame = pd.DataFrame(index=range(rows_checked))
    context = _gx_context()
    batch_definition = (
        context.data_sources.add_pandas("warehouse")
        .add_dataframe_asset(suite.table)
        .add_batch_definition_whole_dataframe("whole_table")
    )
    gx_suite = context.suites.add(suite.build(value_sets=value_sets, checks=checks))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{suite.table}.validation", data=batch_definition, suite=gx_suite)
    )
    # First pass: pass or fail only (GX computes no unexpected counts or value lists, a third of the validation's
    # cost). A table that passes, nearly always, is done; one that fails is validated again with the details the
    # failures are described with (counts, sample values, observed values, errors).
    result = definition.run(batch_parameters={"dataframe": frame}, result_format=PASS_FAIL_FORMAT)
    if all(r.success for r in result.results):
        return []
    result = definition.run(batch_parameters={"dataframe": frame}, result_format=DETAIL_FORMAT)
    failures = [_failure(r, rows_checked) for r in result.results if not r.success]
    # GX does not keep the suite's order; report in the order the suite declares its checks.
    order: dict[tuple[str, str | None], int] = {}
    for i, check in enumerate(checks):
        order.setdefault((check.expectation_type, check.column_label), i)
    return sorted(failures, key=lambda f: order.get((f.expectation_type, f.column), len(checks)))


def _failure(r, rows_checked: int) -> ExpectationFailure:
    config = r.expectation_config
    kwargs = config.kwargs
    column = kwargs.get("column")
    if column is None and kwargs.get("column_list"):
        column = ",".join(kwargs["column_list"])
    if column is None and kwargs.get("column_A"):
        column = f"{kwargs['column_A']},{kwargs['column_B']}"
    error = _exception_message(r.exception_info)
    if error:
        return ExpectationFailure(config.type, column, None, None, message=f"could not run: {error}")
    res = r.result or {}
    if config.type == ROW_COUNT_EXPECTATION or "unexpected_count" not in res:
        observed = res.get("observed_value")
        bounds = ", ".join(f"{k}={kwargs[k]}" for k in ("min_value", "max_value") if kwargs.get(k) is not None)
        return ExpectationFailure(config.type, column, None, None, message=f"observed {observed}, expected {bounds}")
    count = int(res["unexpected_count"])
    percent = 100.0 * count / rows_checked if rows_checked else 0.0
    samples: list[Any] = []
    for value in res.get("partial_unexpected_list") or []:
        value = _plain(value)
        if value not in samples:
            samples.append(value)
        if len(samples) == SAMPLE_VALUES:
            break
    return ExpectationFailure(config.type, column, count, percent, tuple(samples))


def _exception_message(info: Any) -> str | None:
    if not info:
        return None
    if "raised_exception" in info:
        return info.get("exception_message") if info.get("raised_exception") else None
    for nested in info.values():  # keyed by metric id when a metric failed to compute
        if isinstance(nested, dict) and nested.get("raised_exception"):
            return nested.get("exception_message")
    return None


def _plain(value: Any) -> Any:
    """JSON-friendly sample value: None for null/NaN/NaT, Python scalars, ISO timestamps."""
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    if value is None:
        return None
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
