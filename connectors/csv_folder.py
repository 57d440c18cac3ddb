"""Read a folder of CSV exports through a column mapping, validating every row.

Each file is read column-wise in DuckDB (connectors/csv_columnar.py) and comes out
in Arrow batches of typed rows in the canonical shape (memory bounded by the batch
size). A row that cannot be used (missing id, unparseable or implausible date,
negative amount, unknown stage, invalid bytes, too many fields, duplicate key, ...)
is never dropped and never crashes the run: it comes out as a rejection carrying the
file, the row number, the field(s), the reason and the row as read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from connectors.csv_columnar import ColumnarReader, EncodingNotSupported, read_header
from connectors.mapping import CsvMapping, MappingError, ObjectMapping, StageSpec, identity_mapping, load_mapping
from connectors.schema import RAW_OBJECTS, RawObject

# Objects a run cannot do without; the others may be absent from an export
# (their rules then report "not applicable" downstream).
REQUIRED_OBJECTS = ("opportunities",)




@dataclass
class Batch:
    """Landed rows (as dicts, or columnar as ``table``) and quarantined rows of one batch."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    table: pa.Table | None = None

    def row_dicts(self) -> list[dict[str, Any]]:
        return self.rows + (self.table.to_pylist() if self.table is not None else [])


@dataclass
class ObjectReport:
    object: str
    source_file: str | None
    rows: int = 0
    rejected: int = 0
    skipped: int = 0
    present: bool = True
    input_rows: int | None = None  # None: the source does not count its input separately (= rows + rejected + skipped)
    reasons: dict[str, int] = field(default_factory=dict)  # quarantine reason -> rows
    absent_fields: list[str] = field(default_factory=list)  # canonical fields the source does not have
    notes: list[str] = field(default_factory=list)

    @property
    def input_count(self) -> int:
        return self.input_rows if self.input_rows is not None else self.rows + self.rejected + self.skipped


class CsvFolderSource:
    """A CRM export folder plus its mapping. Read-only: it has no write path.

    A snapshot source: every landing reads the whole export and replaces the raw tables.
    """

    incremental = False

    def __init__(
        self,
        folder: Path | str,
        mapping: CsvMapping | Path | str | None = None,
        as_of: dt.date | None = None,
        work_dir: Path | None = None,
    ):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise MappingError(f"{self.folder}: CSV export folder not found")
        if mapping is None:
            mapping = identity_mapping()
        elif not isinstance(mapping, CsvMapping):
            mapping = load_mapping(mapping)
        self.mapping = mapping
        self.reports: dict[str, ObjectReport] = {}
        self.cursors: dict[str, str] = {}
        self._stages: list[StageSpec] | None = None
        self.as_of = as_of  # the plausible-date window ends this many years after it (default: today)
        self.work_dir = work_dir  # DuckDB spills here when a file does not fit its memory limit

    @property
    def source_system(self) -> str:
        return self.mapping.source_system

    @property
    def max_quarantine_share(self) -> float:
        return self.mapping.plausibility.max_quarantine_share

    # -- stages --------------------------------------------------------------------------
    def stages(self) -> list[StageSpec]:
        """The declared stages: from the mapping, else from the mapped 'stages' file."""
        if self._stages is None:
            if self.mapping.stages is not None:
                self._stages = list(self.mapping.stages)
            else:
                specs = []
                for batch in self._read("stages", stage_names=None):
                    for r in batch.row_dicts():
                        specs.append(
                            StageSpec(name=r["stage"], order=r["stage_order"], closed=bool(r["is_closed"]), won=bool(r["is_won"]))
                        )
                if not specs:
                    om = self.mapping.objects.get("stages")
                    if om is None or not (self.folder / om.file).exists():
                        raise MappingError(
                            f"{self.folder}: no stages. Files with canonical names need a stages.csv "
                            "(stage, stage_order, is_closed, is_won); any other export needs a mapping file "
                            "(--mapping) that lists its stages"
                        )
                    raise MappingError(f"{self.folder}: no usable stages (the stages file is empty or every row was rejected)")
                self._stages = specs
        return self._stages

    def check(self) -> None:
        """Fail fast, before any landing: the stages resolve and every mapped file that exists has
        the mapped columns. Raises MappingError naming the file and the column."""
        self.stages()
        for name, om in self.mapping.objects.items():
            path = self.folder / om.file
            if not path.exists():
                if name in REQUIRED_OBJECTS:
                    raise MappingError(f"{self.folder}: required object {name!r} not found ({path})")
                continue
            try:
                header = read_header(path, self.mapping.formats.encoding, self.mapping.formats.delimiter)
            except EncodingNotSupported as exc:
                raise MappingError(f"{path}: {exc}") from None
            self._column_plan(RAW_OBJECTS[name], om, header, path)
            if om.modified and om.modified not in header:
                raise MappingError(f"{path}: objects.{name}.modified column {om.modified!r} not in the file's header")

    # Event times that say when the export was taken (planned dates such as close_date, and
    # activities, which may be scheduled in the future, are left out).
    AS_OF_FIELDS = {
        "opportunities": ["created_at", "closed_at"],
        "stage_history": ["entered_at"],
        "field_history": ["changed_at"],
    }

    def latest_timestamp(self) -> dt.datetime | None:
        """The export's latest event time (and last-modified time where mapped): a file export's
        default as-of date, so an old export is judged as of when it was taken, not today."""
        latest: list[dt.datetime] = []
        stage_names = {s.name for s in self.stages()}
        for name, fields in self.AS_OF_FIELDS.items():
            om = self.mapping.objects.get(name)
            if om is None or not (self.folder / om.file).exists():
                continue
            reader = self._reader(name, om, self.folder / om.file, stage_names)
            try:
                value = reader.latest_timestamp(fields + (["_modified"] if om.modified else []))
            finally:
                reader.close()
            if value is not None:
                latest.append(value)
        return max(latest) if latest else None

    # -- reading --------------------------------------------------------------------------
    def read(self, object_name: str, batch_size: int = 5000, cursor: str | None = None) -> Iterator[Batch]:
        """Typed rows (and rejections) of one canonical object, in batches (``cursor`` is ignored: a snapshot)."""
        if object_name == "stages" and self.mapping.stages is not None:
            rows = [
                {"stage": s.name, "stage_order": s.order, "is_closed": s.closed, "is_won": s.won,
                 "_source_file": "mapping", "_source_row": i}
                for i, s in enumerate(self.mapping.stages, start=1)
            ]
            self.reports["stages"] = ObjectReport("stages", "mapping", rows=len(rows))
            yield Batch(rows=rows)
            return
        stage_names = {s.name for s in self.stages()} if object_name != "stages" else None
        yield from self._read(object_name, stage_names, batch_size)

    def _read(self, object_name: str, stage_names: set[str] | None, batch_size: int = 50_000) -> Iterator[Batch]:
        obj = RAW_OBJECTS[object_name]
        om = self.mapping.objects.get(object_name)
        path = self.folder / om.file if om else None
        if om is None or not path.exists():
            if object_name in REQUIRED_OBJECTS:
                where = f"{path}" if path else f"the mapping has no '{object_name}' entry"
                raise MappingError(f"{self.folder}: required object {object_name!r} not found ({where})")
            self.reports[object_name] = ObjectReport(object_name, om.file if om else None, present=False)
            return
        reader = self._reader(object_name, om, path, stage_names)
        try:
            res = reader.result
            report = ObjectReport(
                object_name, om.file, rows=res.landed, rejected=res.quarantined, skipped=res.skipped,
                input_rows=res.input_rows, reasons=dict(res.reasons),
                absent_fields=[
                    f for f, col in reader.plan.items()
                    if col is None and f not in om.constants and not (f == "source_url" and self.mapping.crm_base_url)
                ],
                notes=self._notes(object_name, res),
            )
            self.reports[object_name] = report
            for rejected in reader.rejections(object_name, om.file, batch_size):
                yield Batch(rejected=rejected)
            for record_batch in reader.rows(batch_size):
                if record_batch.num_rows:
                    table = pa.Table.from_batches([record_batch]).append_column(
                        "_source_file", pa.array([om.file] * record_batch.num_rows, pa.string())
                    )
                    yield Batch(table=table)
        finally:
            reader.close()

    @staticmethod
    def _notes(object_name: str, res) -> list[str]:
        notes = []
        if res.identical_duplicates:
            notes.append(f"{res.identical_duplicates} identical repeated row(s) kept once")
        if res.duplicate_keys:
            notes.append(f"{res.duplicate_keys} row(s) with a duplicate primary key quarantined")
        return notes

    def _reader(self, object_name: str, om: ObjectMapping, path: Path, stage_names: set[str] | None) -> ColumnarReader:
        fmt = self.mapping.formats
        try:
            header = read_header(path, fmt.encoding, fmt.delimiter)
        except EncodingNotSupported as exc:
            raise MappingError(f"{path}: {exc}") from None
        obj = RAW_OBJECTS[object_name]
        plan = self._column_plan(obj, om, header, path)
        if om.modified and om.modified not in header:
            raise MappingError(f"{path}: objects.{object_name}.modified column {om.modified!r} not in the file's header")
        p = self.mapping.plausibility
        plausible = p.bounds(self.as_of)
        return ColumnarReader(
            path, obj, header, plan, om.constants, om.skip_when, fmt,
            {s.lower(): s for s in stage_names} if stage_names else None,
            plausible, om.modified, self.work_dir, record_url=self.mapping.crm_base_url,
        )

    @staticmethod
    def _column_plan(obj: RawObject, om: ObjectMapping, header: list[str], path: Path) -> dict[str, str | None]:
        """canonical field -> source column (None when the export lacks it)."""
        plan: dict[str, str | None] = {}
        missing = [src for src in om.columns.values() if src not in header]
        if missing:
            raise MappingError(
                f"{path}: mapped column(s) {', '.join(repr(m) for m in missing)} not in the file's header "
                f"({', '.join(header[:12])}{', ...' if len(header) > 12 else ''})"
            )
        for f in obj.fields:
            if f.name in om.constants:
                plan[f.name] = None
            elif f.name in om.columns:
                plan[f.name] = om.columns[f.name]
            elif om.if_present.get(f.name) in header:
                plan[f.name] = om.if_present[f.name]
            else:
                plan[f.name] = f.name if f.name in header else None
        missing_required = [f.name for f in obj.fields if f.required and plan[f.name] is None and f.name not in om.constants]
        if missing_required:
            raise MappingError(
                f"{path}: no column for the required field(s) {', '.join(missing_required)} of {obj.name} "
                f"(map them under objects.{obj.name}.columns; the file's header: "
                f"{', '.join(header[:12])}{', ...' if len(header) > 12 else ''})"
            )
        return plan
