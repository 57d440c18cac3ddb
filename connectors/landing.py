"""Land a CRM source into the warehouse with dlt.

Two kinds of source:

- canonical sources (the demo CRM, a CSV export through a column mapping) already speak the
  canonical shape (connectors/schema.py) and land one table per object in ``raw``
  (``raw.opportunities``, ...): snapshots, replaced on every run;
- CRM-native sources (the HubSpot, Salesforce and Pipedrive APIs) land the CRM's own records,
  flattened and typed but not mapped, into a schema of their own (``raw_hubspot.deals``, ...;
  each connector's ``tables.py``), merged by key on every incremental run. Per-CRM dbt staging
  models (``stg_<crm>__<object>``) map them into the canonical shape, with the team's mapping
  configuration landed beside them as ``map_*`` tables.

Either way, rows that fail validation are appended to ``raw.rejected_rows`` (nothing is lost),
a report per canonical object goes to ``raw.landing_reports``, and ``raw.active_source`` names
the dataset the last landing wrote, so ``stg_crm__<object>`` reads only the active source
(switching CRMs never mixes two CRMs' rows).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import json

import dlt
import pyarrow as pa
from dlt.common.schema.typing import TColumnSchema

from agents.warehouse import Warehouse, WarehouseConnection
from connectors.csv_folder import Batch, ObjectReport
from connectors.schema import DDL_TYPES, DUCKDB_TYPES, create_rejected_rows_sql, create_table_sql
from connectors.schema import AMOUNT, BOOL, DATE, ID, INT, RAW_OBJECTS, REJECTED_ROWS_COLUMNS, STAGE, STR, TIMESTAMP, RawObject

DLT_SOURCE_NAME = "crm"
DEFAULT_BATCH_SIZE = 50_000  # rows per Arrow batch (Settings.landing_batch_size)
RAW_DATASET = "raw"
REJECTED_TABLE = "rejected_rows"

_DLT_TYPES = {
    ID: "text", STR: "text", STAGE: "text", INT: "bigint", AMOUNT: "double",
    BOOL: "bool", DATE: "date", TIMESTAMP: "timestamp",
}


class CrmSource(Protocol):
    """What landing needs from a CRM source. Sources have no write path.

    Snapshot sources (demo, CSV: ``incremental = False``) return every row each time and
    landing replaces the raw tables. A CRM-native source also has ``dataset`` (its schema,
    ``raw_<crm>``) and ``tables`` (name -> RawObject, each with ``feeds`` and ``snapshot``), and
    its ``read``, ``reports`` and ``cursors`` are keyed by native table name. Incremental sources (CRM APIs) get the cursor stored
    after their last successful landing of an object, return only what changed since, set
    ``cursors[object]`` to the new high-water mark, and landing merges by primary key; a row
    deleted or archived in the CRM comes back with ``_is_deleted = True``.
    """

    source_system: str
    reports: dict[str, ObjectReport]
    incremental: bool
    cursors: dict[str, str]

    def read(self, object_name: str, batch_size: int = ..., cursor: str | None = None) -> Iterator[Batch]: ...


def _column_hints(obj: RawObject) -> dict[str, TColumnSchema]:
    cols: dict[str, TColumnSchema] = {}
    for f in obj.fields:
        col: TColumnSchema = {"data_type": _DLT_TYPES[f.type], "nullable": not f.required}
        if f.type == TIMESTAMP:
            col["timezone"] = False  # CRM timestamps land as naive UTC
        cols[f.name] = col
    cols["_source_system"] = {"data_type": "text"}
    cols["_source_file"] = {"data_type": "text"}
    cols["_source_row"] = {"data_type": "bigint"}
    cols["_loaded_at"] = {"data_type": "timestamp", "timezone": False}
    cols["_is_deleted"] = {"data_type": "bool"}
    cols["_extra"] = {"data_type": "text"}
    return cols


def _arrow_schema(obj: RawObject, schema: pa.Schema) -> pa.Schema:
    """The batch's schema with the nullability of the dlt hints (required fields are never null
    after validation), so dlt merges the Arrow and dlt schemas without warnings."""
    required = {f.name for f in obj.fields if f.required}
    return pa.schema([f.with_nullable(f.name not in required) for f in schema])


_ARROW_TYPES = {
    ID: pa.string(), STR: pa.string(), STAGE: pa.string(), INT: pa.int64(), AMOUNT: pa.float64(),
    BOOL: pa.bool_(), DATE: pa.date32(), TIMESTAMP: pa.timestamp("us"),
}
_LINEAGE_ARROW = {
    "_source_system": pa.string(), "_source_file": pa.string(), "_source_row": pa.int64(),
    "_loaded_at": pa.timestamp("us"), "_is_deleted": pa.bool_(), "_extra": pa.string(),
}


def _as_arrow(obj: RawObject, rows: list[dict[str, Any]]) -> pa.Table | list[dict[str, Any]]:
    """A batch of validated row dicts (the API connectors') as one Arrow table of the table's
    declared types, so dlt takes its columnar path. Rows with a key or a value outside the
    declared shape go as they are (dlt infers them), so nothing is dropped."""
    fields = {f.name: _ARROW_TYPES[f.type] for f in obj.fields} | _LINEAGE_ARROW
    present = set().union(*(r.keys() for r in rows))
    if not present <= set(fields):
        return rows
    required = {f.name for f in obj.fields if f.required}
    schema = pa.schema([pa.field(n, t, nullable=n not in required) for n, t in fields.items() if n in present])
    try:
        return pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        return rows


CURSORS_TABLE = "_crm_cursors"


def load_cursors(warehouse: Warehouse | Path, source_system: str) -> dict[str, str]:
    """The cursor of each object after the last successful landing from this source."""
    wh = Warehouse.coerce(warehouse)
    if not wh.exists():
        return {}
    with wh.connect() as con:
        if not con.has_table(RAW_DATASET, CURSORS_TABLE):
            return {}
        rows = con.execute(
            f"select object, cursor from {RAW_DATASET}.{CURSORS_TABLE} where source_system = :source_system",
            {"source_system": source_system},
        ).fetchall()
    return dict(rows)


def save_cursors(warehouse: Warehouse | Path, source_system: str, cursors: dict[str, str], landing_id: str) -> None:
    """Called only after the load succeeded, so a failed landing re-fetches from the old cursor."""
    with Warehouse.coerce(warehouse).connect() as con:
        con.execute(f"create schema if not exists {RAW_DATASET}")
        con.execute(
            f"""create table if not exists {RAW_DATASET}.{CURSORS_TABLE} (
                source_system VARCHAR, object VARCHAR, cursor VARCHAR, landing_id VARCHAR, updated_at TIMESTAMP,
                primary key (source_system, object))"""
        )
        for name, value in cursors.items():
            con.execute(
                f"""insert into {RAW_DATASET}.{CURSORS_TABLE} values (:source_system, :object, :cursor, :landing_id, now())
                    on conflict (source_system, object) do update set
                    cursor = excluded.cursor, landing_id = excluded.landing_id, updated_at = excluded.updated_at""",
                {"source_system": source_system, "object": name, "cursor": value, "landing_id": landing_id},
            )


class RejectSpool:
    """Rejected rows spill to a JSONL file while dlt extracts (memory stays flat), then
    are appended to ``raw.rejected_rows`` by :func:`write_rejections`."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("w", encoding="utf-8")
        self.count = 0

    def add(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self._fh.write(json.dumps(row, default=str, ensure_ascii=False) + "\n")
        self.count += len(rows)

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


def write_rejections(warehouse: Warehouse | Path, spool: RejectSpool) -> int:
    """Append the spooled rejections to raw.rejected_rows (created on first use)."""
    spool.close()
    with Warehouse.coerce(warehouse).connect() as con:
        con.execute(f"create schema if not exists {RAW_DATASET}")
        con.execute(create_rejected_rows_sql(RAW_DATASET))
        if spool.count and con.dialect == "duckdb":
            names = ", ".join(REJECTED_ROWS_COLUMNS)
            con.raw.execute(
                f"insert into {RAW_DATASET}.{REJECTED_TABLE} ({names}) select {names} from read_json(?, columns=?, format='newline_delimited')",
                [str(spool.path), REJECTED_ROWS_COLUMNS],
            )
        elif spool.count:
            con.insert_arrow(RAW_DATASET, REJECTED_TABLE, _read_spool(spool.path))
    return spool.count


_SPOOL_ARROW = {"VARCHAR": pa.string(), "BIGINT": pa.int64(), "TIMESTAMP": pa.timestamp("us")}


def _read_spool(path: Path) -> pa.Table:
    """The spooled rejections as Arrow, in raw.rejected_rows' columns and types (a server warehouse
    takes them through COPY)."""
    import pyarrow.json as pj

    schema = pa.schema([(name, _SPOOL_ARROW[type_]) for name, type_ in REJECTED_ROWS_COLUMNS.items()])
    table = pj.read_json(path, parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"))
    return table.select(list(REJECTED_ROWS_COLUMNS))


# The CRMs whose connectors land natively (connectors/<crm>/tables.py: DATASET, TABLES).
NATIVE_CRMS = ("hubspot", "salesforce", "pipedrive")
ACTIVE_SOURCE_TABLE = "active_source"


def native_table_specs() -> dict[str, dict[str, RawObject]]:
    """dataset -> native tables, for every CRM-native connector (no credentials needed)."""
    import importlib

    specs: dict[str, dict[str, RawObject]] = {}
    for crm in NATIVE_CRMS:
        module = importlib.import_module(f"connectors.{crm}.tables")
        specs[module.DATASET] = dict(module.TABLES)
    return specs


def source_dataset(source: Any) -> str:
    """The schema a source lands in: ``raw`` for canonical sources, ``raw_<crm>`` for native ones."""
    return getattr(source, "dataset", None) or RAW_DATASET


def source_tables(source: Any) -> dict[str, RawObject]:
    """The tables a source lands: its native tables, or the canonical objects."""
    tables = getattr(source, "tables", None)
    return dict(tables) if tables else dict(RAW_OBJECTS)


def tables_for_objects(source: Any, objects: list[str] | None) -> list[str]:
    """The source's tables that land the given canonical objects (all when None)."""
    tables = source_tables(source)
    if objects is None:
        return list(tables)
    wanted = set(objects)
    return [name for name, obj in tables.items() if (obj.feeds or name) in wanted]


def crm_dlt_source(
    source: CrmSource | None,
    loaded_at: dt.datetime | None = None,
    objects: list[str] | None = None,
    spool: RejectSpool | None = None,
    load_id: str | None = None,
    cursors: dict[str, str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
):
    """The dlt source for a CRM source. ``source=None`` builds the shape only (for asset definitions).

    Every table reaches dlt as Arrow tables of at most ``batch_size`` rows (the source reads in
    batches of that size), so landing memory is bounded by the batch size, not the export's.

    ``objects``: the canonical objects to land (all when None); a native source lands the
    tables that feed them. ``cursors``: each table's stored cursor, passed to an incremental
    source's ``read``.
    """
    tables = source_tables(source)  # the canonical objects for source=None
    names = tables_for_objects(source, objects)
    incremental = bool(getattr(source, "incremental", False))
    dataset = source_dataset(source)

    def rows_of(obj: RawObject) -> Iterator[Any]:
        if source is None:
            raise RuntimeError("crm_dlt_source was built without a CRM source; pass one to run it")
        stamp = loaded_at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
        batches = (
            source.read(obj.name, batch_size=batch_size, cursor=None if obj.snapshot else (cursors or {}).get(obj.name))
            if incremental
            else source.read(obj.name, batch_size=batch_size)
        )
        for batch in batches:
            if batch.table is not None and batch.table.num_rows:
                # the columnar path: an Arrow table goes to dlt as Parquet, no per-row Python
                n = batch.table.num_rows
                table = batch.table.append_column("_source_system", pa.array([source.source_system] * n, pa.string())).append_column(
                    "_loaded_at", pa.array([stamp] * n, pa.timestamp("us"))
                )
                yield table.cast(_arrow_schema(obj, table.schema))
            for row in batch.rows:
                row["_source_system"] = source.source_system
                row["_loaded_at"] = stamp
                extra = row.get("_extra")
                if isinstance(extra, dict):  # unknown source fields travel as JSON text
                    row["_extra"] = json.dumps(extra, default=str, sort_keys=True) if extra else None
            if batch.rows:
                yield _as_arrow(obj, batch.rows)
            if batch.rejected:
                if spool is None:
                    raise RuntimeError(f"{len(batch.rejected)} rejected {obj.name} rows and no spool to keep them")
                for row in batch.rejected:
                    if dataset != RAW_DATASET:  # reported under the canonical object, with the native table
                        row["source_file"] = f"{dataset}.{obj.name}: {row.get('source_file')}"
                        row["object"] = obj.feeds or obj.name
                    row["_source_system"] = source.source_system
                    row["_loaded_at"] = stamp
                    row["landing_id"] = load_id
                spool.add(batch.rejected)

    @dlt.source(name=DLT_SOURCE_NAME, max_table_nesting=0)
    def crm():
        for name in names:
            obj = tables[name]
            merge = incremental and not obj.snapshot
            yield dlt.resource(
                rows_of(obj),
                name=name,
                table_name=name,
                # snapshots replace; incremental extracts merge by the table's primary key
                write_disposition="merge" if merge else "replace",
                primary_key=list(obj.primary_key) if merge else None,
                columns=_column_hints(obj),
            )

    return crm()


# The load into a DuckDB warehouse gets a memory budget of its own (DuckDB's default is 80% of the
# machine's memory, and reading a large Parquet load file into a table fills it): beyond it DuckDB
# writes to its file and spills; the raw tables need no insertion order.
LOAD_DUCKDB_CONFIG = {"memory_limit": "256MB", "preserve_insertion_order": False}


def _dlt_destination(wh: Warehouse):
    if wh.dialect == "duckdb":
        from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

        return dlt.destinations.duckdb(credentials=DuckDbCredentials(str(wh.path), global_config=dict(LOAD_DUCKDB_CONFIG)))
    return wh.dlt_destination()


def crm_dlt_pipeline(warehouse: Warehouse | Path, pipelines_dir: Path, dataset: str = RAW_DATASET):
    """dlt pipeline writing into ``dataset`` (``raw``, or a native CRM's ``raw_<crm>``) of the warehouse
    (dlt's duckdb or postgres destination, agents/warehouse.py)."""
    return dlt.pipeline(
        pipeline_name="crm_landing" if dataset == RAW_DATASET else f"crm_landing_{dataset}",
        destination=_dlt_destination(Warehouse.coerce(warehouse)),
        dataset_name=dataset,
        pipelines_dir=str(pipelines_dir),
        progress=dlt.progress.log(log_period=30, dump_system_stats=False),
    )


LANDING_REPORTS_TABLE = "landing_reports"
LANDING_REPORT_EXTRA_COLUMNS = {
    "input_rows": "BIGINT",  # = rows + rejected + skipped, or the check on the object fails
    "reasons": "VARCHAR",  # JSON: quarantine reason -> rows
    "absent_fields": "VARCHAR",  # canonical fields the source does not have (e.g. is_active)
    "notes": "VARCHAR",
    "max_quarantine_share": "DOUBLE PRECISION",
}
DEFAULT_MAX_QUARANTINE_SHARE = 0.2


def _merge_counts(dicts) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _ensure_table(con, obj: RawObject, schema: str) -> None:
    con = WarehouseConnection.adopt(con)  # a driver connection too (tests, dbt development)
    con.execute(create_table_sql(obj, schema))
    # A warehouse landed by an older version is upgraded in place: columns a table has gained
    # since are added, and dlt's bookkeeping columns (NOT NULL when dlt loaded row by row) accept
    # the empty values of Arrow/Parquet loads. dlt's own columns are added here too: when the
    # table first gets rows, dlt finds them in place (DuckDB adds no column with a constraint).
    have = dict(con.execute(  # no bound parameters: ``con`` may be a driver's or a Warehouse connection
        "select column_name, is_nullable from information_schema.columns "
        f"where table_schema = '{schema}' and table_name = '{obj.name}'"
    ).fetchall())
    wanted = [(f'"{f.name}"', f.name, DDL_TYPES[f.type]) for f in obj.fields]
    wanted += [(c, c, t) for c, t in (("_is_deleted", "BOOLEAN"), ("_extra", "VARCHAR"),
                                      ("_dlt_load_id", "VARCHAR"), ("_dlt_id", "VARCHAR"))]
    for quoted, name, type_ in wanted:
        if name not in have:
            con.execute(f"alter table {schema}.{obj.name} add column {quoted} {type_}")
        elif have[name] == "NO" and name.startswith("_dlt"):
            con.execute(f"alter table {schema}.{obj.name} alter column {quoted} drop not null")


def ensure_landing_tables(con) -> None:
    """Every table dbt reads exists, landed or not: the canonical raw tables, every native CRM's
    tables (empty until that CRM is the source), ``raw.rejected_rows`` and ``raw.active_source``.
    So the dbt project (all CRMs' staging models) builds whichever source is active."""
    con.execute(f"create schema if not exists {RAW_DATASET}")
    for obj in RAW_OBJECTS.values():
        _ensure_table(con, obj, RAW_DATASET)
    for dataset, tables in native_table_specs().items():
        con.execute(f"create schema if not exists {dataset}")
        for obj in tables.values():
            _ensure_table(con, obj, dataset)
    con.execute(create_rejected_rows_sql(RAW_DATASET))
    con.execute(
        f"""create table if not exists {RAW_DATASET}.{ACTIVE_SOURCE_TABLE} (
            dataset VARCHAR, source_system VARCHAR, landing_id VARCHAR, loaded_at TIMESTAMP)"""
    )


def set_active_source(con, dataset: str, source_system: str, landing_id: str | None, loaded_at: dt.datetime | None) -> None:
    """Record which dataset the staging models read (one row; the last landing wins)."""
    con = WarehouseConnection.adopt(con)
    con.execute(f"delete from {RAW_DATASET}.{ACTIVE_SOURCE_TABLE}")
    con.execute(
        f"insert into {RAW_DATASET}.{ACTIVE_SOURCE_TABLE} values (:dataset, :source_system, :landing_id, :loaded_at)",
        {"dataset": dataset, "source_system": source_system, "landing_id": landing_id, "loaded_at": loaded_at},
    )


def finish_landing(warehouse: Warehouse | Path, source: CrmSource, landing_id: str, loaded_at: dt.datetime) -> list[dict[str, Any]]:
    """Make the landed tables reflect this extract, mark its dataset active, and record what
    each canonical object landed (a native source's tables are summed under the object they feed).

    Objects the source lacks (or that came back empty) get an empty table, so dbt
    always finds its inputs and dependent rules can say "not applicable".
    """
    dataset = source_dataset(source)
    tables = source_tables(source)
    native = dataset != RAW_DATASET
    incremental = bool(getattr(source, "incremental", False))
    reports = []
    with Warehouse.coerce(warehouse).connect() as con:
        ensure_landing_tables(con)
        for name, obj in tables.items():
            rep = source.reports.get(name)
            if native:
                _ensure_table(con, obj, dataset)
            # A snapshot without rows means the table is empty now; an incremental extract
            # without rows only means nothing changed since the cursor.
            if (rep.rows if rep else 0) == 0 and (not incremental or (obj.snapshot and rep is not None)):
                con.execute(f"delete from {dataset}.{name}")
        set_active_source(con, dataset, source.source_system, landing_id, loaded_at)
        for name in RAW_OBJECTS:
            feeding = tables_for_objects(source, [name])
            reps = [source.reports[t] for t in feeding if t in source.reports]
            rows = sum(r.rows for r in reps)
            if native:
                source_file = ", ".join(f"{dataset}.{r.object} ({r.rows})" for r in reps if r.present) or None
            else:
                source_file = reps[0].source_file if reps else None
            reports.append(
                {
                    "landing_id": landing_id,
                    "loaded_at": loaded_at,
                    "object": name,
                    "source_system": source.source_system,
                    "source_file": source_file,
                    "present": any(r.present for r in reps),
                    "rows": rows,
                    "rejected": sum(r.rejected for r in reps),
                    "skipped": sum(r.skipped for r in reps),
                    "input_rows": sum(getattr(r, "input_count", r.rows + r.rejected + r.skipped) for r in reps),
                    "reasons": json.dumps(_merge_counts(getattr(r, "reasons", {}) for r in reps)),
                    "absent_fields": ", ".join(sorted({f for r in reps for f in getattr(r, "absent_fields", [])})) or None,
                    "notes": "; ".join(n for r in reps for n in getattr(r, "notes", [])) or None,
                    "max_quarantine_share": getattr(source, "max_quarantine_share", DEFAULT_MAX_QUARANTINE_SHARE),
                }
            )
        con.execute(
            f"""create table if not exists {RAW_DATASET}.{LANDING_REPORTS_TABLE} (
                landing_id VARCHAR, loaded_at TIMESTAMP, object VARCHAR, source_system VARCHAR,
                source_file VARCHAR, present BOOLEAN, rows BIGINT, rejected BIGINT, skipped BIGINT)"""
        )
        # columns added since the table was first created (a warehouse from an older version)
        for column, type_ in LANDING_REPORT_EXTRA_COLUMNS.items():
            con.execute(f"alter table {RAW_DATASET}.{LANDING_REPORTS_TABLE} add column if not exists {column} {type_}")
        names = ", ".join(reports[0]) if reports else ""
        con.executemany(
            f"insert into {RAW_DATASET}.{LANDING_REPORTS_TABLE} ({names}) values ({', '.join(':' + k for k in reports[0])})",
            reports,
        )
        if con.dialect == "postgres":
            # fresh statistics for the planner: dbt's staging views read these tables next
            con.execute(f"analyze {RAW_DATASET}.{LANDING_REPORTS_TABLE}")
            for name in tables:
                con.execute(f"analyze {dataset}.{name}")
    return reports


@contextlib.contextmanager
def _one_table_at_a_time():
    """dlt extracts its resources round robin by default: every table's reader would be open at
    once (each with its own buffers and spill file). ``fifo`` drains one table before opening
    the next, so the memory of a landing is that of one reader. dlt reads this from its
    configuration (``[extract] next_item_mode``), here the environment, unless set already."""
    key = "EXTRACT__NEXT_ITEM_MODE"
    if key in os.environ:
        yield
        return
    os.environ[key] = "fifo"
    try:
        yield
    finally:
        os.environ.pop(key, None)


def land_source(
    source: CrmSource,
    warehouse: Warehouse | Path,
    work_dir: Path,
    landing_id: str = "manual",
    loaded_at: dt.datetime | None = None,
    objects: list[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[dict[str, Any]]:
    """Land a source into the warehouse: every table (or those feeding ``objects``) through dlt,
    rejections into ``raw.rejected_rows`` (kept even when the load fails), cursors saved only
    after a successful load (a failed landing re-fetches from the old ones), then
    :func:`finish_landing`. ``work_dir`` holds dlt's pipeline state and the rejection spool.
    ``batch_size``: rows per Arrow batch handed to dlt. Returns the per-object reports."""
    loaded_at = loaded_at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    spool = RejectSpool(Path(work_dir) / "landing" / f"rejected-{landing_id}.jsonl")
    cursors = load_cursors(warehouse, source.source_system) if getattr(source, "incremental", False) else {}
    wh = Warehouse.coerce(warehouse)
    with wh.connect() as con:
        ensure_landing_tables(con)  # before dlt loads: tables from an older landing are upgraded in place
    pipeline = crm_dlt_pipeline(wh, Path(work_dir) / "dlt", source_dataset(source))
    try:
        # Columnar load files, not INSERT statements: canonical sources hand dlt Arrow tables, and the API
        # connectors' validated row batches are written column-wise too. DuckDB reads Parquet; dlt's postgres
        # destination takes Arrow as CSV through COPY (Parquet there needs the ADBC driver).
        with _one_table_at_a_time():
            pipeline.run(
                crm_dlt_source(source, loaded_at, objects, spool, landing_id, cursors, batch_size),
                loader_file_format="parquet" if wh.dialect == "duckdb" else "csv",
            )
    finally:
        write_rejections(warehouse, spool)
    if getattr(source, "incremental", False):
        save_cursors(wh, source.source_system, source.cursors, landing_id)
    return finish_landing(wh, source, landing_id, loaded_at)


def latest_landing_report(con, object_name: str) -> dict[str, Any] | None:
    """The most recent landing report row for an object (None before the first landing)."""
    con = WarehouseConnection.adopt(con)
    if not con.has_table(RAW_DATASET, LANDING_REPORTS_TABLE):
        return None
    rows = con.execute(
        f"select * from {RAW_DATASET}.{LANDING_REPORTS_TABLE} where object = :object order by loaded_at desc limit 1",
        {"object": object_name},
    ).mappings()
    return rows[0] if rows else None


_CAUSES = (
    ("unknown stage", "is the stage list complete (the mapping's stages, or did the CRM's stage export/read succeed)?"),
    ("not valid in the file's encoding", "is formats.encoding right for this export (utf-8, latin-1, utf-16)?"),
    ("unparseable", "do formats.date / formats.timestamp match how the export writes dates?"),
    ("fields than the header", "is formats.delimiter right, and is the file cut or joined from several exports?"),
    ("duplicate primary key", "is the id column mapped right, or does the file hold several snapshots?"),
    ("plausible window", "are the dates placeholders, or should plausibility.min_date / max_years_ahead be wider?"),
    ("above the ceiling", "is the amount in cents, or should plausibility.max_amount be higher?"),
    ("missing required value", "is the right column mapped to this field?"),
)


def quarantine_verdict(report: dict[str, Any]) -> tuple[str, bool, bool, str]:
    """(severity, identity holds, share within the limit, description) for one object's landing report.

    Every input row must be landed, quarantined or skipped; a quarantined share above the limit
    is an ERROR whose message names the commonest reason and its likely cause.
    """
    rows, rejected, skipped = report["rows"], report["rejected"], report["skipped"]
    input_rows = report.get("input_rows")
    input_rows = rows + rejected + skipped if input_rows is None else input_rows
    limit = report.get("max_quarantine_share")
    limit = DEFAULT_MAX_QUARANTINE_SHARE if limit is None else limit
    reasons = json.loads(report.get("reasons") or "{}")
    accounted = input_rows == rows + rejected + skipped
    share = rejected / input_rows if input_rows else 0.0
    within = share <= limit
    obj = report["object"]
    text = (
        f"{obj}: {input_rows} input row(s) = {rows} landed + {rejected} quarantined + {skipped} skipped"
        if accounted
        else f"{obj}: {input_rows} input row(s) but {rows} landed + {rejected} quarantined + {skipped} skipped: rows unaccounted for"
    )
    if report.get("source_file"):
        text += f" (from {report['source_file']})"
    if rejected:
        top, n = next(iter(reasons.items()), ("unknown", rejected))
        cause = next((hint for key, hint in _CAUSES if key in top), "")
        lead = f"all {input_rows} {obj} quarantined" if rejected == input_rows else f"{share:.0%} of {obj} quarantined"
        text = (
            f"{lead} (limit {limit:.0%}): {n} x {top}" + (f" - {cause}" if cause else "") + f". {text}"
            if not within
            else text + f"; commonest reason: {n} x {top}"
        )
    severity = "ERROR" if not (accounted and within) else "WARN"
    return severity, accounted, within, text


def with_reasons(con, report: dict[str, Any]) -> dict[str, Any]:
    """The report with its quarantine reasons; for sources that do not count them while reading
    (the API connectors), counted from this landing's rows in raw.rejected_rows."""
    if not report.get("rejected") or report.get("reasons") not in (None, "", "{}"):
        return report
    counts = WarehouseConnection.adopt(con).execute(
        f"select regexp_replace(reason, ' [(](known|expected).*$', ''), count(*) from {RAW_DATASET}.{REJECTED_TABLE} "
        "where landing_id = :landing_id and object = :object group by 1 order by 2 desc, 1 limit 5",
        {"landing_id": report["landing_id"], "object": report["object"]},
    ).fetchall()
    return dict(report, reasons=json.dumps(dict(counts)))
