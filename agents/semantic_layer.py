"""The governed semantic layer, queried from Python through MetricFlow.

The metric definitions live in ``semantic_models/`` (dbt/MetricFlow YAML, owned
by analytics engineers). ``dbt parse`` compiles them into
``<target>/semantic_manifest.json``; this module loads that file and runs
MetricFlow queries against the warehouse through the dbt adapter of the
project's profile (dbt-metricflow's ``AdapterBackedSqlClient``), so switching
the dbt target (DuckDB -> Snowflake, ...) switches the semantic layer with it.

Every result carries its provenance, which risk flags cite:

* ``query_id``: sha256 over the canonical request and the manifest hash, so the
  same question asked of the same metric definitions has the same id;
* ``sql``: the SQL MetricFlow generated and ran;
* ``manifest_hash``: sha256 of ``semantic_manifest.json`` (the definitions);
* ``result_hash``: sha256 over the returned rows (the data answered), floats at 12 significant digits: the
  warehouse sums floats in parallel, so the same data may answer with a different last bit from one run to the next.

Plain Python: no Dagster import (the Dagster asset is a thin wrapper).
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import dataclasses
import datetime as dt
import decimal
import hashlib
import json
import math
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # heavy imports stay lazy: dbt + MetricFlow take seconds to import
    import pandas as pd
    from metricflow.engine.metricflow_engine import MetricFlowEngine
    from metricflow_semantic_interfaces.validations.validator_helpers import (
        SemanticManifestValidationResults,
    )

__all__ = [
    "SEMANTIC_MANIFEST_FILE",
    "SemanticLayer",
    "SemanticLayerError",
    "SemanticLayerValidationError",
    "SemanticQueryRequest",
    "SemanticQueryResult",
    "manifest_hash",
]

SEMANTIC_MANIFEST_FILE = "semantic_manifest.json"
# The environment variable profiles.yml reads the DuckDB path from.
WAREHOUSE_ENV_VAR = "SALES_SUPERVISOR_DUCKDB_PATH"
QUERY_ID_PREFIX = "mfq_"

# dbt keeps adapters and DuckDB environments in process-global state; building
# two clients at once in one process must not interleave.
_DBT_SETUP_LOCK = threading.Lock()


# Warehouse sessions in flight in this process (see SemanticLayer._warehouse_session).
_ACTIVE_SESSIONS = 0


def _close_duckdb_environment(credentials: Any) -> None:
    """dbt-duckdb keeps one DuckDB instance per process in a class attribute,
    shared by every adapter with the same credentials; it stays open (and the
    file locked, and no other connection to it possible in this process) until
    dropped. Drop it once no semantic-layer query is in flight."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with DuckDBConnectionManager._LOCK:
        env = DuckDBConnectionManager._ENV
        if env is not None and env.creds == credentials:
            try:
                env.close()
            finally:
                DuckDBConnectionManager._ENV = None


class SemanticLayerError(RuntimeError):
    """The semantic layer could not be loaded or a query failed."""


class SemanticLayerValidationError(SemanticLayerError):
    """The semantic manifest has blocking validation issues."""

    def __init__(self, message: str, issues: Sequence[str]) -> None:
        super().__init__(message + ("\n  - " + "\n  - ".join(issues) if issues else ""))
        self.issues = list(issues)


def manifest_hash(path: Path | str) -> str:
    """sha256 (hex) of a semantic_manifest.json file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


HASH_SIGNIFICANT_DIGITS = 12


def _hashable(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.{HASH_SIGNIFICANT_DIGITS}g}")
    return value


def answer_hash(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> str:
    """sha256 of an answer's columns and rows, floats rounded to 12 significant digits (a parallel float sum's last
    bit is not part of the answer)."""
    rounded = [{c: _hashable(v) for c, v in row.items()} for row in rows]
    return hashlib.sha256(_canonical_json({"columns": columns, "rows": rounded}).encode()).hexdigest()


def _json_safe(value: Any) -> Any:
    """Values as JSON can carry them (evidence packets and the audit trail are JSON)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return _json_safe(value.item())
    return str(value)


@dataclass(frozen=True)
class SemanticQueryRequest:
    """What was asked: the canonical form that the query id hashes."""

    metrics: tuple[str, ...]
    group_by: tuple[str, ...]
    where: tuple[str, ...] = ()
    order_by: tuple[str, ...] = ()
    limit: int | None = None
    saved_query: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "metrics": list(self.metrics),
            "group_by": list(self.group_by),
            "where": list(self.where),
            "order_by": list(self.order_by),
            "limit": self.limit,
            "saved_query": self.saved_query,
        }

    def query_id(self, manifest_sha256: str) -> str:
        payload = _canonical_json({"request": self.as_dict(), "manifest_hash": manifest_sha256})
        return QUERY_ID_PREFIX + hashlib.sha256(payload.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class SemanticQueryResult:
    """A MetricFlow answer with the provenance a risk flag cites."""

    query_id: str
    request: SemanticQueryRequest
    sql: str
    manifest_hash: str
    columns: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    result_hash: str
    metricflow_version: str = ""
    executed_at: str = field(default="", compare=False)

    @property
    def metrics(self) -> tuple[str, ...]:
        return self.request.metrics

    @property
    def group_by(self) -> tuple[str, ...]:
        return self.request.group_by

    @property
    def filters(self) -> tuple[str, ...]:
        return self.request.where

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def find(self, **match: Any) -> dict[str, Any] | None:
        """The first row whose columns equal ``match`` (e.g. ``opportunity__segment="smb"``)."""
        for row in self.rows:
            if all(row.get(k) == v for k, v in match.items()):
                return row
        return None

    def to_dataframe(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(list(self.rows), columns=list(self.columns))

    def provenance(self) -> dict[str, Any]:
        """The citation: enough to re-run and compare the query later."""
        return {
            "query_id": self.query_id,
            "request": self.request.as_dict(),
            "sql": self.sql,
            "manifest_hash": self.manifest_hash,
            "result_hash": self.result_hash,
            "row_count": len(self.rows),
            "metricflow_version": self.metricflow_version,
            "executed_at": self.executed_at,
        }

    def as_dict(self) -> dict[str, Any]:
        return {**self.provenance(), "columns": list(self.columns), "rows": [dict(r) for r in self.rows]}


def _metricflow_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("metricflow")
    except PackageNotFoundError:
        return ""


def _sort_key(row: Mapping[str, Any], keys: Sequence[str]) -> tuple:
    # None sorts first and never compares against a value of another type.
    return tuple((row.get(k) is not None, str(row.get(k))) for k in keys)


class SemanticLayer:
    """MetricFlow over the dbt project's semantic manifest and warehouse.

    ``project_dir``: the dbt project (dbt_project.yml); ``profiles_dir``: where
    profiles.yml is (defaults to ``project_dir``); ``target_path``: the dbt
    target dir holding semantic_manifest.json (defaults to
    ``<project_dir>/target``); ``warehouse``: the DuckDB file, passed to the
    profile as ``SALES_SUPERVISOR_DUCKDB_PATH`` (it must have the same file name
    as at ``dbt parse``: MetricFlow's SQL names the database by it).

    The warehouse is opened per query (read-only for DuckDB) and released
    right after, so a dbt run or another process can take the file between
    queries. :meth:`close` (or the context manager) drops the dbt adapter.
    """

    def __init__(
        self,
        project_dir: Path | str,
        profiles_dir: Path | str | None = None,
        target_path: Path | str | None = None,
        warehouse: Path | str | None = None,
        *,
        target: str | None = None,
        read_only: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.project_dir = Path(project_dir).resolve()
        self.profiles_dir = Path(profiles_dir).resolve() if profiles_dir else self.project_dir
        self.target_path = Path(target_path).resolve() if target_path else self.project_dir / "target"
        self.warehouse = Path(warehouse).resolve() if warehouse else None
        self.dbt_target = target
        self.read_only = read_only
        self._env = dict(env) if env is not None else None
        self.manifest_path = self.target_path / SEMANTIC_MANIFEST_FILE
        if not self.manifest_path.exists():
            raise SemanticLayerError(
                f"{self.manifest_path} not found: run `dbt parse --target-path {self.target_path}` "
                "(or dbt build) on the project first"
            )
        raw = self.manifest_path.read_bytes()
        self.manifest_hash = hashlib.sha256(raw).hexdigest()
        from metricflow_semantics.model.dbt_manifest_parser import (
            parse_manifest_from_dbt_generated_manifest,
        )

        try:
            self.semantic_manifest = parse_manifest_from_dbt_generated_manifest(raw.decode())
        except Exception as exc:  # pydantic errors are long; keep the cause attached
            raise SemanticLayerError(f"cannot parse {self.manifest_path}: {exc}") from exc
        self._adapter: Any = None
        self._engine: MetricFlowEngine | None = None
        # Names this instance (one engine, one adapter): assets of one run report it, so sharing is visible.
        import uuid

        self.engine_id = uuid.uuid4().hex[:12]
        self._lock = threading.RLock()

    # -- lifecycle -----------------------------------------------------------------

    def __enter__(self) -> SemanticLayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the engine and adapter (the DuckDB file is already released after each query)."""
        with self._lock:
            adapter, self._adapter, self._engine = self._adapter, None, None
        if adapter is not None:
            with _DBT_SETUP_LOCK:
                adapter.cleanup_connections()
                if adapter.type() == "duckdb" and _ACTIVE_SESSIONS == 0:
                    _close_duckdb_environment(adapter.config.credentials)

    def session(self) -> contextlib.AbstractContextManager[None]:
        """Hold the warehouse across several queries (one DuckDB open and close for all of them, not one per
        query): for a caller that asks a batch of queries at once, like the run's semantic step. The file is
        released when the outermost session ends."""
        return self._warehouse_session()

    @contextlib.contextmanager
    def _warehouse_session(self) -> Iterator[None]:
        """Hold the warehouse only while a query runs: DuckDB admits one writer
        process per file, and one configuration per file within a process."""
        global _ACTIVE_SESSIONS
        with _DBT_SETUP_LOCK:
            _ACTIVE_SESSIONS += 1
        try:
            yield
        finally:
            with _DBT_SETUP_LOCK:
                _ACTIVE_SESSIONS -= 1
                adapter = self._adapter
                if adapter is not None and adapter.type() == "duckdb" and _ACTIVE_SESSIONS == 0:
                    adapter.cleanup_connections()
                    _close_duckdb_environment(adapter.config.credentials)

    # -- metadata --------------------------------------------------------------------

    @property
    def metric_names(self) -> list[str]:
        return sorted(m.name for m in self.semantic_manifest.metrics)

    @property
    def saved_query_names(self) -> list[str]:
        return sorted(q.name for q in self.semantic_manifest.saved_queries)

    def describe_metric(self, name: str) -> str:
        for metric in self.semantic_manifest.metrics:
            if metric.name == name:
                return metric.description or ""
        raise KeyError(name)

    def saved_query_request(self, name: str) -> SemanticQueryRequest:
        """A saved query's definition, as the request that the query id hashes."""
        for sq in self.semantic_manifest.saved_queries:
            if sq.name == name:
                params = sq.query_params
                return SemanticQueryRequest(
                    metrics=tuple(params.metrics),
                    group_by=tuple(params.group_by),
                    where=tuple(w.where_sql_template for w in params.where.where_filters) if params.where else (),
                    order_by=tuple(getattr(params, "order_by", None) or ()),
                    limit=getattr(params, "limit", None),
                    saved_query=name,
                )
        raise SemanticLayerError(f"no saved query named {name!r}; known: {', '.join(self.saved_query_names)}")

    # -- validation --------------------------------------------------------------------

    def validate(self, *, data_warehouse: bool = False, raise_on_error: bool = True) -> SemanticManifestValidationResults:
        """Run MetricFlow's semantic validations (and, optionally, its warehouse checks).

        Returns the results (warnings included); raises
        :class:`SemanticLayerValidationError` on blocking issues unless told not to.
        """
        from metricflow_semantic_interfaces.validations.semantic_manifest_validator import (
            SemanticManifestValidator,
        )
        from metricflow_semantic_interfaces.validations.validator_helpers import (
            SemanticManifestValidationResults,
        )

        results = SemanticManifestValidator().validate_semantic_manifest(self.semantic_manifest)
        if data_warehouse and not results.has_blocking_issues:
            from metricflow.validation.data_warehouse_model_validator import DataWarehouseModelValidator

            validator = DataWarehouseModelValidator(sql_client=self._sql_client())
            with self._lock, self._warehouse_session():
                results = SemanticManifestValidationResults.merge(
                    [
                        results,
                        validator.validate_semantic_models(self.semantic_manifest),
                        validator.validate_dimensions(self.semantic_manifest),
                        validator.validate_entities(self.semantic_manifest),
                        validator.validate_simple_metrics(self.semantic_manifest),
                        validator.validate_metrics(self.semantic_manifest),
                    ]
                )
        if raise_on_error and results.has_blocking_issues:
            raise SemanticLayerValidationError(
                f"semantic manifest {self.manifest_path} has blocking issues",
                [issue.as_readable_str() for issue in results.errors],
            )
        return results

    # -- queries -----------------------------------------------------------------------

    def query(
        self,
        metrics: Sequence[str],
        group_by: Sequence[str] = (),
        where: Sequence[str] | str | None = None,
        order_by: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> SemanticQueryResult:
        """Run a metric query: ``query(["win_rate"], ["opportunity__segment"])``.

        ``where`` takes MetricFlow filter templates, e.g.
        ``"{{ Dimension('opportunity__segment') }} = 'smb'"``; ``order_by``
        takes metric/group-by names, ``-`` first for descending.
        """
        if isinstance(metrics, str) or isinstance(group_by, str) or isinstance(order_by, str):
            raise TypeError("metrics, group_by and order_by are sequences of names, not a string")
        if isinstance(where, str):
            where = [where]
        request = SemanticQueryRequest(
            metrics=tuple(metrics),
            group_by=tuple(group_by),
            where=tuple(where or ()),
            order_by=tuple(order_by or ()),
            limit=limit,
        )
        return self._run(request)

    def saved_query(self, name: str) -> SemanticQueryResult:
        """Run a saved query from semantic_models/saved_queries.yml by name."""
        return self._run(self.saved_query_request(name))

    def explain(
        self,
        metrics: Sequence[str] = (),
        group_by: Sequence[str] = (),
        where: Sequence[str] | None = None,
        order_by: Sequence[str] | None = None,
        limit: int | None = None,
        *,
        saved_query: str | None = None,
    ) -> str:
        """The SQL MetricFlow would run for a request (nothing is executed)."""
        if saved_query:
            request = self.saved_query_request(saved_query)
        else:
            request = SemanticQueryRequest(
                tuple(metrics), tuple(group_by), tuple(where or ()), tuple(order_by or ()), limit
            )
        engine = self._get_engine()
        with self._lock, self._warehouse_session():
            return engine.explain(self._mf_request(request)).sql_statement.sql

    def _mf_request(self, request: SemanticQueryRequest) -> Any:
        from metricflow.engine.metricflow_engine import MetricFlowQueryRequest, MetricFlowRequestId

        request_id = MetricFlowRequestId(mf_rid=request.query_id(self.manifest_hash))
        if request.saved_query:
            return MetricFlowQueryRequest.create(request_id=request_id, saved_query_name=request.saved_query)
        return MetricFlowQueryRequest.create(
            request_id=request_id,
            metric_names=list(request.metrics),
            group_by_names=list(request.group_by) or None,
            where_constraints=list(request.where) or None,
            order_by_names=list(request.order_by) or None,
            limit=request.limit,
        )

    def _run(self, request: SemanticQueryRequest) -> SemanticQueryResult:
        engine = self._get_engine()
        with self._lock, self._warehouse_session():
            try:
                mf_result = engine.query(self._mf_request(request))
            except Exception as exc:
                raise SemanticLayerError(f"MetricFlow query failed for {request.as_dict()}: {exc}") from exc
        table = mf_result.result_df
        columns = tuple(table.column_names) if table is not None else ()
        rows = [
            {c: _json_safe(v) for c, v in zip(columns, row)} for row in (table.rows if table is not None else ())
        ]
        if not request.order_by:
            # SQL without ORDER BY has no row order; sort by the group-by columns
            # so equal answers hash equal.
            keys = [c for c in columns if c not in request.metrics] or list(columns)
            rows.sort(key=lambda r: _sort_key(r, keys))
        result_hash = answer_hash(columns, rows)
        return SemanticQueryResult(
            query_id=request.query_id(self.manifest_hash),
            request=request,
            sql=mf_result.sql,
            manifest_hash=self.manifest_hash,
            columns=columns,
            rows=tuple(rows),
            result_hash=result_hash,
            metricflow_version=_metricflow_version(),
            executed_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        )

    # -- engine / adapter ----------------------------------------------------------------

    def _get_engine(self) -> MetricFlowEngine:
        with self._lock:
            if self._engine is None:
                from metricflow.engine.metricflow_engine import MetricFlowEngine
                from metricflow_semantics.model.semantic_manifest_lookup import SemanticManifestLookup

                self._engine = MetricFlowEngine(
                    semantic_manifest_lookup=SemanticManifestLookup(self.semantic_manifest),
                    sql_client=self._sql_client(),
                )
            return self._engine

    def _sql_client(self) -> Any:
        from dbt_metricflow.cli.dbt_connectors.adapter_backed_client import AdapterBackedSqlClient

        return AdapterBackedSqlClient(self._get_adapter())

    def _get_adapter(self) -> Any:
        with self._lock:
            if self._adapter is None:
                with _DBT_SETUP_LOCK:
                    # Run in a copied context: dbt keeps the invocation env in a
                    # ContextVar, and ours (with the warehouse path) must not leak.
                    self._adapter = contextvars.copy_context().run(self._build_adapter)
            return self._adapter

    def _build_adapter(self) -> Any:
        """The profile's dbt adapter, built the way dbt-metricflow's CLI builds it,
        but without ``dbt debug`` and with the warehouse passed explicitly."""
        from dbt.adapters.factory import get_adapter_class_by_name, load_plugin
        from dbt.config.profile import Profile, read_profile
        from dbt.config.project import load_raw_project
        from dbt.config.renderer import ProfileRenderer
        from dbt.config.runtime import RuntimeConfig, load_project
        from dbt.flags import get_flags, set_from_args
        from dbt.mp_context import get_mp_context
        from dbt_common.context import set_invocation_context

        env = dict(os.environ if self._env is None else self._env)
        if self.warehouse is not None:
            env[WAREHOUSE_ENV_VAR] = str(self.warehouse)
        set_invocation_context(env)
        if getattr(get_flags(), "PROFILES_DIR", None) is None:
            # dbt's config code reads global flags; outside a dbt invocation there are none.
            set_from_args(
                argparse.Namespace(profiles_dir=str(self.profiles_dir), project_dir=str(self.project_dir)), None
            )
        try:
            # Profile.render() would read profiles.yml from the global flags; read ours explicitly.
            renderer = ProfileRenderer({})
            raw_project = load_raw_project(str(self.project_dir))
            profile = Profile.from_raw_profiles(
                raw_profiles=read_profile(str(self.profiles_dir)),
                profile_name=renderer.render_value(raw_project.get("profile")),
                renderer=renderer,
                target_override=self.dbt_target,
            )
        except Exception as exc:
            raise SemanticLayerError(f"cannot load the dbt profile from {self.profiles_dir}: {exc}") from exc
        if profile.credentials.type == "duckdb" and self.read_only:
            # The semantic layer only reads; a read-only handle cannot change the warehouse.
            options = dict(profile.credentials.config_options or {})
            options["access_mode"] = "READ_ONLY"
            profile.credentials = dataclasses.replace(profile.credentials, config_options=options)
        project = load_project(str(self.project_dir), version_check=False, profile=profile)
        config = RuntimeConfig.from_parts(project, profile, argparse.Namespace())
        load_plugin(profile.credentials.type)
        return get_adapter_class_by_name(profile.credentials.type)(config, get_mp_context())
