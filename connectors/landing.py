"""Land a CRM source into the warehouse's ``raw`` schema with dlt.

One dlt resource per canonical object (``raw.<object>``, replaced on every run:
extracts are full snapshots) and, beside them, ``raw.rejected_rows`` (appended,
so a quarantined row is never lost) for every row that failed validation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import json

import dlt
import duckdb
from dlt.common.schema.typing import TColumnSchema

from connectors.csv_folder import Batch, ObjectReport
from connectors.schema import create_rejected_rows_sql, create_table_sql
from connectors.schema import AMOUNT, BOOL, DATE, ID, INT, RAW_OBJECTS, REJECTED_ROWS_COLUMNS, STAGE, STR, TIMESTAMP, RawObject

DLT_SOURCE_NAME = "crm"
RAW_DATASET = "raw"
REJECTED_TABLE = "rejected_rows"

_DLT_TYPES = {
    ID: "text", STR: "text", STAGE: "text", INT: "bigint", AMOUNT: "double",
    BOOL: "bool", DATE: "date", TIMESTAMP: "timestamp",
}


class CrmSource(Protocol):
    """What landing needs from a CRM source. Sources have no write path.

    Snapshot sources (demo, CSV: ``incremental = False``) return every row each time and
    landing replaces the raw tables. Incremental sources (CRM APIs) get the cursor stored
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


CURSORS_TABLE = "_crm_cursors"


def load_cursors(warehouse: Path, source_system: str) -> dict[str, str]:
    """The cursor of each object after the last successful landing from this source."""
    if not warehouse.exists():
        return {}
    with duckdb.connect(str(warehouse)) as con:
        try:
            rows = con.execute(
                f"select object, cursor from {RAW_DATASET}.{CURSORS_TABLE} where source_system = ?", [source_system]
            ).fetchall()
        except duckdb.CatalogException:
            return {}
    return dict(rows)


def save_cursors(warehouse: Path, source_system: str, cursors: dict[str, str], landing_id: str) -> None:
    """Called only after the load succeeded, so a failed landing re-fetches from the old cursor."""
    with duckdb.connect(str(warehouse)) as con:
        con.execute(f"create schema if not exists {RAW_DATASET}")
        con.execute(
            f"""create table if not exists {RAW_DATASET}.{CURSORS_TABLE} (
                source_system VARCHAR, object VARCHAR, cursor VARCHAR, landing_id VARCHAR, updated_at TIMESTAMP,
                primary key (source_system, object))"""
        )
        for name, value in cursors.items():
            con.execute(
                f"insert or replace into {RAW_DATASET}.{CURSORS_TABLE} values (?, ?, ?, ?, now())",
                [source_system, name, value, landing_id],
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


def write_rejections(warehouse: Path, spool: RejectSpool) -> int:
    """Append the spooled rejections to raw.rejected_rows (created on first use)."""
    spool.close()
    with duckdb.connect(str(warehouse)) as con:
        con.execute(f"create schema if not exists {RAW_DATASET}")
        con.execute(create_rejected_rows_sql(RAW_DATASET))
        if spool.count:
            names = ", ".join(REJECTED_ROWS_COLUMNS)
            con.execute(
                f"insert into {RAW_DATASET}.{REJECTED_TABLE} ({names}) select {names} from read_json(?, columns=?, format='newline_delimited')",
                [str(spool.path), REJECTED_ROWS_COLUMNS],
            )
    return spool.count


def crm_dlt_source(
    source: CrmSource | None,
    loaded_at: dt.datetime | None = None,
    objects: list[str] | None = None,
    spool: RejectSpool | None = None,
    load_id: str | None = None,
    cursors: dict[str, str] | None = None,
):
    """The dlt source for a CRM source. ``source=None`` builds the shape only (for asset definitions).

    ``cursors``: each object's stored cursor, passed to an incremental source's ``read``.
    """
    names = objects or list(RAW_OBJECTS)
    incremental = bool(getattr(source, "incremental", False))

    def rows_of(obj: RawObject) -> Iterator[Any]:
        if source is None:
            raise RuntimeError("crm_dlt_source was built without a CRM source; pass one to run it")
        stamp = loaded_at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
        batches = (
            source.read(obj.name, cursor=(cursors or {}).get(obj.name)) if incremental else source.read(obj.name)
        )
        for batch in batches:
            for row in batch.rows:
                row["_source_system"] = source.source_system
                row["_loaded_at"] = stamp
                extra = row.get("_extra")
                if isinstance(extra, dict):  # unknown source fields travel as JSON text
                    row["_extra"] = json.dumps(extra, default=str, sort_keys=True) if extra else None
            if batch.rows:
                yield batch.rows
            if batch.rejected:
                if spool is None:
                    raise RuntimeError(f"{len(batch.rejected)} rejected {obj.name} rows and no spool to keep them")
                for row in batch.rejected:
                    row["_source_system"] = source.source_system
                    row["_loaded_at"] = stamp
                    row["landing_id"] = load_id
                spool.add(batch.rejected)

    @dlt.source(name=DLT_SOURCE_NAME, max_table_nesting=0)
    def crm():
        for name in names:
            obj = RAW_OBJECTS[name]
            yield dlt.resource(
                rows_of(obj),
                name=name,
                table_name=name,
                # snapshots replace; incremental extracts merge by the object's primary key
                write_disposition="merge" if incremental else "replace",
                primary_key=list(obj.primary_key) if incremental else None,
                columns=_column_hints(obj),
            )

    return crm()


def crm_dlt_pipeline(warehouse: Path, pipelines_dir: Path):
    """dlt pipeline writing into ``raw`` of the DuckDB warehouse."""
    return dlt.pipeline(
        pipeline_name="crm_landing",
        destination=dlt.destinations.duckdb(credentials=str(warehouse)),
        dataset_name=RAW_DATASET,
        pipelines_dir=str(pipelines_dir),
        progress=dlt.progress.log(log_period=30, dump_system_stats=False),
    )


LANDING_REPORTS_TABLE = "landing_reports"


def finish_landing(warehouse: Path, source: CrmSource, landing_id: str, loaded_at: dt.datetime) -> list[dict[str, Any]]:
    """Make raw/ reflect exactly this extract and record what each object landed.

    Objects the source lacks (or that came back empty) get an empty table, so dbt
    always finds its inputs and dependent rules can say "not applicable".
    """
    reports = []
    with duckdb.connect(str(warehouse)) as con:
        con.execute(f"create schema if not exists {RAW_DATASET}")
        for name, obj in RAW_OBJECTS.items():
            rep = source.reports.get(name)
            rows = rep.rows if rep else 0
            con.execute(create_table_sql(obj, RAW_DATASET))
            for column, type_ in (("_is_deleted", "BOOLEAN"), ("_extra", "VARCHAR")):
                con.execute(f"alter table {RAW_DATASET}.{name} add column if not exists {column} {type_}")
            # A snapshot without rows means the object is empty now; an incremental extract
            # without rows only means nothing changed since the cursor.
            if rows == 0 and not getattr(source, "incremental", False):
                con.execute(f"delete from {RAW_DATASET}.{name}")
            reports.append(
                {
                    "landing_id": landing_id,
                    "loaded_at": loaded_at,
                    "object": name,
                    "source_system": source.source_system,
                    "source_file": rep.source_file if rep else None,
                    "present": bool(rep and rep.present),
                    "rows": rows,
                    "rejected": rep.rejected if rep else 0,
                    "skipped": rep.skipped if rep else 0,
                }
            )
        con.execute(
            f"""create table if not exists {RAW_DATASET}.{LANDING_REPORTS_TABLE} (
                landing_id VARCHAR, loaded_at TIMESTAMP, object VARCHAR, source_system VARCHAR,
                source_file VARCHAR, present BOOLEAN, rows BIGINT, rejected BIGINT, skipped BIGINT)"""
        )
        con.executemany(
            f"insert into {RAW_DATASET}.{LANDING_REPORTS_TABLE} values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [list(r.values()) for r in reports],
        )
    return reports


def latest_landing_report(con, object_name: str) -> dict[str, Any] | None:
    """The most recent landing report row for an object (None before the first landing)."""
    try:
        cur = con.execute(
            f"select * from {RAW_DATASET}.{LANDING_REPORTS_TABLE} where object = ? order by loaded_at desc limit 1",
            [object_name],
        )
    except duckdb.CatalogException:
        return None
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in cur.description], row))
