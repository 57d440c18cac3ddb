"""Read a folder of CSV exports through a column mapping, validating every row.

Rows are read one at a time (constant memory whatever the file size) and come
out in batches of typed rows in the canonical shape. A row that cannot be used
(missing id, unparseable date, negative amount, unknown stage, ...) is never
dropped and never crashes the run: it comes out as a rejection carrying the
file, the row number, the field(s), the reason and the row as read.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.mapping import CsvMapping, MappingError, ObjectMapping, StageSpec, identity_mapping, load_mapping
from connectors.schema import AMOUNT, RAW_OBJECTS, Field, RawObject
from connectors.values import ValueProblem, parse_value

# Objects a run cannot do without; the others may be absent from an export
# (their rules then report "not applicable" downstream).
REQUIRED_OBJECTS = ("opportunities",)




@dataclass
class Batch:
    rows: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ObjectReport:
    object: str
    source_file: str | None
    rows: int = 0
    rejected: int = 0
    skipped: int = 0
    present: bool = True


class CsvFolderSource:
    """A CRM export folder plus its mapping. Read-only: it has no write path.

    A snapshot source: every landing reads the whole export and replaces the raw tables.
    """

    incremental = False

    def __init__(self, folder: Path | str, mapping: CsvMapping | Path | str | None = None):
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

    @property
    def source_system(self) -> str:
        return self.mapping.source_system

    # -- stages --------------------------------------------------------------------------
    def stages(self) -> list[StageSpec]:
        """The declared stages: from the mapping, else from the mapped 'stages' file."""
        if self._stages is None:
            if self.mapping.stages is not None:
                self._stages = list(self.mapping.stages)
            else:
                specs = []
                for batch in self._read("stages", stage_names=None):
                    for r in batch.rows:
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
            with path.open(newline="", encoding=self.mapping.formats.encoding) as fh:
                header = next(csv.reader(fh, delimiter=self.mapping.formats.delimiter), [])
            self._column_plan(RAW_OBJECTS[name], om, header, path)

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

    def _read(self, object_name: str, stage_names: set[str] | None, batch_size: int = 5000) -> Iterator[Batch]:
        obj = RAW_OBJECTS[object_name]
        om = self.mapping.objects.get(object_name)
        path = self.folder / om.file if om else None
        if om is None or not path.exists():
            if object_name in REQUIRED_OBJECTS:
                where = f"{path}" if path else f"the mapping has no '{object_name}' entry"
                raise MappingError(f"{self.folder}: required object {object_name!r} not found ({where})")
            self.reports[object_name] = ObjectReport(object_name, om.file if om else None, present=False)
            return
        report = ObjectReport(object_name, om.file)
        self.reports[object_name] = report
        stage_lookup = {s.lower(): s for s in stage_names} if stage_names else None
        fmt = self.mapping.formats
        with path.open(newline="", encoding=fmt.encoding) as fh:
            reader = csv.DictReader(fh, delimiter=fmt.delimiter)
            header = reader.fieldnames or []
            plan = self._column_plan(obj, om, header, path)
            batch = Batch()
            for row_number, record in enumerate(reader, start=1):
                if any(record.get(col) in values for col, values in om.skip_when.items()):
                    report.skipped += 1
                    continue
                typed, problems = self._convert(obj, plan, om, record, stage_lookup)
                if problems:
                    report.rejected += 1
                    batch.rejected.append(
                        {
                            "object": object_name,
                            "source_file": om.file,
                            "row_number": row_number,
                            "field": ", ".join(p[0] for p in problems),
                            "reason": "; ".join(f"{f}: {why}" for f, why in problems),
                            "raw_record": json.dumps(record, ensure_ascii=False, default=str),
                        }
                    )
                else:
                    report.rows += 1
                    typed["_source_file"] = om.file
                    typed["_source_row"] = row_number
                    batch.rows.append(typed)
                if len(batch.rows) + len(batch.rejected) >= batch_size:
                    yield batch
                    batch = Batch()
            if batch.rows or batch.rejected:
                yield batch

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
            else:
                plan[f.name] = f.name if f.name in header else None
        return plan

    def _convert(self, obj, plan, om, record, stage_lookup):
        typed: dict[str, Any] = {}
        problems: list[tuple[str, str]] = []
        for f in obj.fields:
            if f.name in om.constants:
                raw = om.constants[f.name]
                raw = None if raw is None else str(raw)
            else:
                col = plan[f.name]
                raw = record.get(col) if col else None
            try:
                typed[f.name] = self._parse(f, raw, stage_lookup)
            except ValueProblem as exc:
                problems.append((f.name, str(exc)))
        return typed, problems

    def _parse(self, f: Field, raw: str | None, stage_lookup: dict[str, str] | None) -> Any:
        fmt = self.mapping.formats
        if f.type == AMOUNT and isinstance(raw, str) and fmt.delimiter != ",":
            raw = raw.replace(",", "")  # thousands separators, where the comma is not the delimiter
        return parse_value(
            f,
            raw,
            parse_date=lambda v: _parse_datetime(v, fmt.date, "date").date(),
            parse_timestamp=lambda v: _parse_datetime(v, fmt.timestamp, "timestamp"),
            stages=stage_lookup,
            true_values=fmt.true_values,
            false_values=fmt.false_values,
        )


def _parse_datetime(value: str, formats: list[str], kind: str) -> dt.datetime:
    for pattern in formats:
        try:
            return dt.datetime.strptime(value, pattern)
        except ValueError:
            continue
    raise ValueProblem(f"unparseable {kind}: {value!r} (expected {' or '.join(formats[:2])})")
