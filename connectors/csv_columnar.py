"""Column-wise reading and validation of one CSV file of an export, in DuckDB, streaming.

DuckDB's CSV reader splits the file (every field as text, ``store_rejects`` keeping each row
it cannot split: invalid bytes for the encoding, more or fewer fields than the header, a row
over the size limit) and the canonical typing and quarantine rules run as SQL expressions over
its vectors (2,048 rows at a time), not as Python per field. Nothing holds the whole file in
memory:

1. one streaming pass reads, numbers, types and validates the rows and writes them to a
   Parquet spill file on disk (``row_number() over ()`` streams; a row group at a time);
2. what needs the whole file is computed from that file's narrow columns: the primary keys
   seen more than once (a hash aggregate that DuckDB spills to disk under its memory limit),
   then the identical copies and duplicate keys among those rows only;
3. the landed rows stream out of the spill file as Arrow record batches of ``batch_size``
   rows, the few losing duplicates left out, their file row numbers set per batch.

So the process's memory is bounded by the batch size and the reader's DuckDB memory limit,
not by the file's size.

Every input record ends up in exactly one place: landed, quarantined (file, row number,
field, reason, the row as read) or skipped (``skip_when``, or an identical duplicate).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from connectors.schema import AMOUNT, BOOL, DATE, ID, INT, STAGE, STR, TIMESTAMP, RawObject
from connectors.values import PlausibleBounds

# Python codec names -> DuckDB's built-in CSV encodings.
_ENCODINGS = {
    "utf-8": "utf-8", "utf8": "utf-8", "utf-8-sig": "utf-8", "utf_8": "utf-8", "utf_8_sig": "utf-8",
    "utf-16": "utf-16", "utf16": "utf-16",
    "latin-1": "latin-1", "latin1": "latin-1", "iso-8859-1": "latin-1", "iso8859-1": "latin-1", "l1": "latin-1",
}
SUPPORTED_ENCODINGS = ("utf-8", "utf-8-sig", "utf-16", "latin-1 (iso-8859-1)")

# The reader's own DuckDB: a fixed memory budget (it spills to its work folder beyond it), a
# CSV buffer twice DuckDB's default longest row (2 MB), one thread (rows keep the file's order).
READER_MEMORY_LIMIT = "96MB"
MAX_LINE_SIZE = 2 * 2**20  # DuckDB's default: a longer row is quarantined
CSV_BUFFER_SIZE = 2 * MAX_LINE_SIZE
DEFAULT_BATCH_SIZE = 50_000

_PARSE_REASONS = {
    "INVALID ENCODING": "bytes not valid in the file's encoding ({encoding}); set formats.encoding if the export uses another",
    "INVALID UNICODE": "bytes not valid in the file's encoding ({encoding}); set formats.encoding if the export uses another",
    "TOO MANY COLUMNS": "more fields than the header ({message})",
    "MISSING COLUMNS": "fewer fields than the header ({message}); an unterminated quote swallows the rows after it",
    "LINE SIZE OVER MAXIMUM": "row larger than the reader's limit ({message})",
}


class EncodingNotSupported(ValueError):
    pass


def duckdb_encoding(name: str) -> str:
    enc = _ENCODINGS.get(name.lower().replace("_", "-")) or _ENCODINGS.get(name.lower())
    if enc is None:
        raise EncodingNotSupported(
            f"formats.encoding {name!r} is not supported (use one of {', '.join(SUPPORTED_ENCODINGS)}; "
            "convert other encodings to UTF-8 first)"
        )
    return enc


def read_header(path: Path, encoding: str, delimiter: str) -> list[str]:
    """The header row, decoded with replacement characters (a bad byte there never crashes)."""
    with path.open("rb") as fh:
        first = fh.readline(1_000_000)
    py_encoding = "utf-8-sig" if duckdb_encoding(encoding) == "utf-8" else encoding
    text = first.decode(py_encoding, errors="replace").lstrip("\ufeff").rstrip("\r\n")
    csv.field_size_limit(sys.maxsize)
    return next(csv.reader([text], delimiter=delimiter), [])


def _q(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class ColumnarResult:
    """Counts of one file's reading; the rows themselves stream out of :meth:`ColumnarReader.batches`."""

    input_rows: int = 0
    landed: int = 0
    quarantined: int = 0
    skipped: int = 0
    skipped_by_rule: int = 0
    identical_duplicates: int = 0
    duplicate_keys: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


class ColumnarReader:
    """Read, type and validate one mapped CSV file in DuckDB (an in-memory database of its own)."""

    def __init__(
        self,
        path: Path,
        obj: RawObject,
        header: list[str],
        plan: dict[str, str | None],
        constants: dict[str, Any],
        skip_when: dict[str, list[str]],
        formats: Any,
        stages: dict[str, str] | None,
        plausibility: PlausibleBounds,
        modified_column: str | None,
        work_dir: Path | None = None,
        record_url: str | None = None,
    ):
        self.path, self.obj, self.header, self.plan = path, obj, header, plan
        self.constants, self.skip_when, self.formats = constants, skip_when, formats
        self.stages, self.plausibility, self.modified_column = stages, plausibility, modified_column
        self.record_url = record_url  # the mapping's crm_base_url: source_url of records whose file has none
        self.encoding = duckdb_encoding(formats.encoding)
        if work_dir is not None:
            work_dir.mkdir(parents=True, exist_ok=True)
        # the spill folder of this file: the validated rows as Parquet, and DuckDB's temp files
        self.spill_dir = Path(tempfile.mkdtemp(prefix=f"{obj.name}-", dir=work_dir))
        self.spill = self.spill_dir / "validated.parquet"
        self.con = duckdb.connect()
        self.con.execute(f"set memory_limit = '{READER_MEMORY_LIMIT}'")
        self.con.execute("set threads = 1")
        self.con.execute("set preserve_insertion_order = true")
        self.con.execute(f"set temp_directory = {_q(str(self.spill_dir / 'tmp'))}")
        self.cols = [f"c{i}" for i in range(len(header))]
        self.result = ColumnarResult()
        self._gap_adj = np.zeros(0, dtype=np.int64)  # the file row number of the k-th split row: see _row_numbers
        self._gap_n = np.zeros(0, dtype=np.int64)
        try:
            self._prepare()
        except BaseException:
            self.close()
            raise

    # -- the file, split -----------------------------------------------------------------
    def _read_csv(self, strict: bool, rejects: str) -> str:
        columns = "{" + ", ".join(f"{_q(c)}: 'VARCHAR'" for c in self.cols) + "}"
        return (
            f"read_csv({_q(str(self.path))}, columns={columns}, header=true, auto_detect=false, all_varchar=true, "
            f"delim={_q(self.formats.delimiter)}, quote='\"', escape='\"', encoding={_q(self.encoding)}, "
            f"parallel=false, buffer_size={CSV_BUFFER_SIZE}, max_line_size={MAX_LINE_SIZE}, strict_mode={'true' if strict else 'false'}, store_rejects=true, "
            f"rejects_table={_q(rejects)}, rejects_scan={_q(rejects + '_scan')}, null_padding=false)"
        )

    def _scan(self) -> tuple[bool, bool]:
        """(an odd number of quote characters, any blank line): two byte counts, no parsing."""
        quotes, blank, tail = 0, False, b""
        with self.path.open("rb") as fh:
            while chunk := fh.read(1 << 24):
                quotes += chunk.count(b'"')
                window = tail + chunk
                blank = blank or b"\n\n" in window or b"\n\r\n" in window
                tail = chunk[-2:]
        return quotes % 2 == 1, blank

    def _blank_lines(self) -> list[int]:
        """Record numbers of blank lines (DuckDB skips them but counts them in its line numbers).
        Only files that have blank lines pay for this pass."""
        py_encoding = "latin-1" if self.encoding == "latin-1" else "utf-8"
        numbers = []
        with self.path.open(encoding=py_encoding, errors="replace", newline="") as fh:
            reader = csv.reader(fh, delimiter=self.formats.delimiter)
            try:
                next(reader, None)
                for n, record in enumerate(reader, start=1):
                    if not record:
                        numbers.append(n)
            except csv.Error:
                pass
        return numbers

    def _split(self, rejects: str) -> str:
        """The file's split rows, numbered in file order (``_k``: the k-th row DuckDB could split)."""
        return f"(select row_number() over () as _k, * from {self._read_csv(True, rejects)})"

    def _prepare(self) -> None:
        con = self.con
        # Pass 1, streaming: split, number, type and validate every row; the validated rows go
        # to the Parquet spill file a row group at a time.
        con.execute(f"copy ({self._validated_sql()}) to {_q(str(self.spill))} (format parquet, row_group_size 20000)")
        con.execute(f"create view validated as select * from read_parquet({_q(str(self.spill))})")
        con.execute(
            "create temp table parse_rejects as select distinct on (line) line - 1 as _row, column_name, error_type, "
            "error_message, csv_line, line_byte_position from rej order by line"
        )
        counts = con.execute(
            "select count(*), count(*) filter (where _skip), count(*) filter (where not _skip and len(_problems) = 0) "
            "from validated"
        ).fetchone()
        split_rows, skipped_by_rule, clean = counts
        odd_quotes, blank_lines = self._scan()
        if odd_quotes:
            # DuckDB's strict reader drops an unterminated quoted field at the end of the file
            # without a reject; the lenient reader reports it (with the rows it swallowed).
            con.execute(f"create temp table lenient as select count(*) from {self._read_csv(False, 'rej2')}")
            con.execute(
                "insert into parse_rejects select distinct on (line) line - 1, column_name, error_type, error_message, csv_line, "
                "line_byte_position from rej2 "
                "where error_type = 'MISSING COLUMNS' and line - 1 > coalesce((select max(_row) from parse_rejects), 0) "
                f"and line - 1 > {int(split_rows)} + (select count(*) from parse_rejects)"
            )
        # The k-th split row's record number in the file skips the rows DuckDB rejected (and the
        # blank lines it skipped, which its line numbers count): a step function of k, kept
        # small (one step per run of rejected rows) and applied per batch.
        con.execute("create temp table gaps as select _row from parse_rejects")
        if blank_lines:
            con.executemany("insert into gaps values (?)", [[n] for n in self._blank_lines()])
        con.execute(
            "create temp table reject_gaps as select adj, max(n) as n from (select _row - row_number() over (order by _row) "
            "as adj, row_number() over (order by _row) as n from (select distinct _row from gaps)) group by adj order by adj"
        )
        steps = con.execute("select adj, n from reject_gaps order by adj").fetchall()
        self._gap_adj = np.array([a for a, _ in steps], dtype=np.int64)
        self._gap_n = np.array([n for _, n in steps], dtype=np.int64)
        self._find_duplicates()
        r = self.result
        r.identical_duplicates, r.duplicate_keys = con.execute(
            "select count(*) filter (where _same_rank > 1), count(*) filter (where _same_rank = 1 and _pk_rank > 1) from losers"
        ).fetchone()
        parse_rejected = con.execute("select count(*) from parse_rejects").fetchone()[0]
        r.input_rows = split_rows + parse_rejected
        r.skipped_by_rule = skipped_by_rule
        r.landed = clean - r.identical_duplicates - r.duplicate_keys
        r.skipped = r.skipped_by_rule + r.identical_duplicates
        r.quarantined = r.input_rows - r.landed - r.skipped
        for reason, n in con.execute(
            "select reason, count(*) from (select left(regexp_replace(unnest(_problems), ' [(](known|expected).*$', ''), 160) "
            "as reason from validated where not _skip and len(_problems) > 0) group by 1 order by 2 desc"
        ).fetchall():
            r.reasons[reason] = n
        if r.duplicate_keys:
            r.reasons["duplicate primary key"] = r.duplicate_keys
        for etype, n in con.execute("select error_type, count(*) from parse_rejects group by 1").fetchall():
            r.reasons[f"(row): {etype.lower()}"] = n

    def _find_duplicates(self) -> None:
        """``losers``: the clean rows that do not land, by ``_k``. An identical copy of a later row
        is skipped (``_same_rank`` > 1); of the rows left, a key seen again keeps the latest
        ``modified`` (else the last in the file) and quarantines the others (``_pk_rank`` > 1,
        ``_kept_k`` the row kept). Both need the whole file, but only the keys: the keys seen
        more than once come from a hash aggregate over the key columns alone, and only those
        rows are ranked (identical rows share their key)."""
        con = self.con
        names = [_ident(f.name) for f in self.obj.fields]
        pk = [_ident(k) for k in self.obj.primary_key]
        clean = "not _skip and len(_problems) = 0"
        # The keys seen more than once, by a 64-bit hash of the key: a hash aggregate of fixed-size
        # groups, which DuckDB spills to disk beyond its memory limit (a hash collision only adds a
        # row to the exact ranking below, where it ranks alone).
        key_hash = f"hash({', '.join(pk)})"
        con.execute(
            f"create temp table multi as select {key_hash} as _h from validated where {clean} "
            "group by _h having count(*) > 1"
        )
        con.execute(
            f"""create temp table losers as
            with dup as (
                select _k, {', '.join(names)}, _modified from validated
                where not _skip and len(_problems) = 0 and {key_hash} in (select _h from multi)
            ), ranked as (
                select *, row_number() over (partition by {', '.join(names)} order by _k desc) as _same_rank from dup
            ), keyed as (
                select *, case when _same_rank = 1
                               then row_number() over (partition by _same_rank = 1, {', '.join(pk)}
                                                       order by _modified desc nulls last, _k desc)
                               else 1 end as _pk_rank,
                          case when _same_rank = 1
                               then first_value(_k) over (partition by _same_rank = 1, {', '.join(pk)}
                                                          order by _modified desc nulls last, _k desc)
                               end as _kept_k
                from ranked
            )
            select _k, _same_rank, _pk_rank, _kept_k from keyed where _same_rank > 1 or _pk_rank > 1"""
        )
        self._n_losers = con.execute("select count(*) from losers").fetchone()[0]

    def _row_numbers(self, k: np.ndarray) -> np.ndarray:
        """File record numbers of split rows ``k`` (vectorised: the rows before each that DuckDB
        rejected or skipped as blank are added back)."""
        if not len(self._gap_adj):
            return k
        idx = np.searchsorted(self._gap_adj, k, side="left") - 1
        return k + np.where(idx >= 0, self._gap_n[np.maximum(idx, 0)], 0)

    def _row_sql(self, k: str) -> str:
        """The same in SQL, for the few rows the rejections name."""
        return f"({k} + coalesce((select max(g.n) from reject_gaps g where g.adj < {k}), 0))"

    # -- the rules, as SQL -----------------------------------------------------------------
    def _raw(self, name: str) -> str:
        if name in self.constants:
            value = self.constants[name]
            return "NULL::VARCHAR" if value is None else f"nullif(trim({_q(str(value))}), '')"
        col = self.plan.get(name)
        if col is None:
            return "NULL::VARCHAR"
        return f"nullif(trim({self._col(col)}, ' \t\r\n'), '')"

    def _col(self, source_column: str) -> str:
        return self.cols[self.header.index(source_column)]

    def _ts_expr(self, raw: str, formats: list[str]) -> str:
        fmts = "[" + ", ".join(_q(f) for f in formats) + "]"
        return f"try_strptime({raw}, {fmts})"

    def _field_sql(self, f) -> tuple[str, list[tuple[str, str]]]:
        """(typed value, [(condition, reason SQL)]) for one canonical field."""
        raw = self._raw(f.name)
        if f.name == "source_url" and self.record_url and raw == "NULL::VARCHAR":
            record_id = self._raw(self.obj.primary_key[0])
            if "{record_id}" in self.record_url:
                before, _, after = self.record_url.partition("{record_id}")
                return f"{_q(before)} || url_encode({record_id}) || {_q(after)}", []
            return f"{_q(self.record_url.rstrip('/') + '/')} || url_encode({record_id})", []
        fmt = self.formats
        p = self.plausibility
        problems: list[tuple[str, str]] = []
        if f.required:
            problems.append((f"{raw} is null", "'missing required value'"))
        shown = f"'''' || {raw} || ''''"
        if f.type in (ID, STR):
            return raw, problems
        if f.type in (INT, AMOUNT):
            text = f"replace({raw}, ',', '')" if (f.type == AMOUNT and fmt.delimiter != ",") else raw
            num = f"try_cast({text} as double)"
            if f.type == INT:
                bad = f"({raw} is not null and ({num} is null or not isfinite({num}) or {num} <> trunc({num})))"
                problems.append((bad, f"'not a whole number: ' || {shown}"))
                return f"case when not {bad} then cast({num} as bigint) end", problems
            problems.append((f"({raw} is not null and {num} is null)", f"'not a number: ' || {shown}"))
            problems.append((f"({num} is not null and not isfinite({num}))", f"'not a finite number: ' || {shown}"))
            problems.append((f"({num} is not null and isfinite({num}) and {num} < 0)", f"'negative amount: ' || {raw}"))
            problems.append(
                (f"({num} is not null and isfinite({num}) and {num} > {p.max_amount!r})",
                 f"'amount above the ceiling of {p.max_amount:,.0f} (plausibility.max_amount): ' || {raw}")
            )
            return f"case when isfinite({num}) and {num} >= 0 and {num} <= {p.max_amount!r} then {num} end", problems
        if f.type == BOOL:
            trues = ", ".join(_q(v.lower()) for v in fmt.true_values)
            falses = ", ".join(_q(v.lower()) for v in fmt.false_values)
            value = f"case when lower({raw}) in ({trues}) then true when lower({raw}) in ({falses}) then false end"
            problems.append((f"({raw} is not null and ({value}) is null)", f"'not a boolean: ' || {shown}"))
            return value, problems
        if f.type in (DATE, TIMESTAMP):
            formats = fmt.date if f.type == DATE else fmt.timestamp
            parsed = self._ts_expr(raw, formats)
            kind = "date" if f.type == DATE else "timestamp"
            expected = " or ".join(formats[:2])
            problems.append((f"({raw} is not null and {parsed} is null)", f"'unparseable {kind}: ' || {shown} || ' (expected {expected})'"))
            lo, hi = p.min_date.isoformat(), p.max_date.isoformat()
            outside = f"({parsed} < DATE '{lo}' or {parsed} > DATE '{hi}')"
            problems.append(
                (f"({parsed} is not null and {outside})",
                 f"'{kind} outside the plausible window {lo} to {hi} (plausibility): ' || {raw}")
            )
            typed = f"cast({parsed} as {'date' if f.type == DATE else 'timestamp'})"
            return f"case when not coalesce({outside}, false) then {typed} end", problems
        if f.type == STAGE:
            if self.stages is None:
                return raw, problems
            cases = " ".join(f"when {_q(k)} then {_q(v)}" for k, v in self.stages.items()) or "when NULL then NULL"
            value = f"case lower({raw}) {cases} end"
            known = ", ".join(sorted(set(self.stages.values())))
            problems.append((f"({raw} is not null and ({value}) is null)", f"'unknown stage ' || {shown} || ' (known: ' || {_q(known)} || ')'"))
            return value, problems
        raise AssertionError(f"unhandled field type {f.type}")

    def _validated_sql(self) -> str:
        """One pass over the split rows: the typed fields, the problems found, the skip rule, the
        ``modified`` time, and the row as read for the rows quarantined here."""
        typed, problem_items = [], []
        for f in self.obj.fields:
            value, problems = self._field_sql(f)
            typed.append(f"{value} as {_ident(f.name)}")
            for cond, reason in problems:
                problem_items.append(f"case when coalesce({cond}, false) then {_q(f.name + ': ')} || {reason} end")
        nul = " or ".join(f"coalesce(position(chr(0) in {c}) > 0, false)" for c in self.cols) or "false"
        problem_items.append(f"case when {nul} then '(row): NUL byte in the row' end")
        problems_sql = "list_filter([" + ", ".join(problem_items) + "], x -> x is not null)"
        skip = " or ".join(
            f"{self._col(col)} in ({', '.join(_q(v) for v in values)})"
            for col, values in self.skip_when.items() if col in self.header
        ) or "false"
        names = [_ident(f.name) for f in self.obj.fields]
        modified = (
            self._ts_expr(f"nullif(trim({self._col(self.modified_column)}), '')", self.formats.timestamp)
            if self.modified_column and self.modified_column in self.header else "NULL::TIMESTAMP"
        )
        raw_cols = ", ".join(self.cols)
        return f"""
            select _k, {', '.join(names)}, _problems, _skip, _modified,
                   case when not _skip and len(_problems) > 0 then {self._record_sql('t')} end as _raw
            from (
                select _k, {', '.join(typed)}, {problems_sql} as _problems, coalesce({skip}, false) as _skip,
                       {modified} as _modified{', ' + raw_cols if raw_cols else ''}
                from {self._split('rej')}
            ) t
        """

    def _record_sql(self, alias: str) -> str:
        """The row as read (JSON of header -> text), built only for the quarantined rows."""
        if not self.cols:
            return "'{}'"
        return "json_object(" + ", ".join(f"{_q(h)}, {alias}.{c}" for h, c in zip(self.header, self.cols)) + ")::VARCHAR"

    # -- output ------------------------------------------------------------------------------
    def _landed_where(self) -> str:
        return "not _skip and len(_problems) = 0" + (" and _k not in (select _k from losers)" if self._n_losers else "")

    def rows(self, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[pa.RecordBatch]:
        """The landed rows in file order, ``batch_size`` at a time, with their file row number
        (``_source_row``)."""
        names = [f.name for f in self.obj.fields]
        reader = self.con.execute(
            f"select {', '.join(_ident(n) for n in names)}, _k from validated where {self._landed_where()}"
        ).to_arrow_reader(batch_size)
        for batch in reader:
            k = batch.column(len(names)).to_numpy(zero_copy_only=False)
            rows = pa.array(self._row_numbers(k), pa.int64())
            yield pa.RecordBatch.from_arrays([*batch.columns[: len(names)], rows], names=[*names, "_source_row"])

    def rejections(self, object_name: str, source_file: str, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[list[dict[str, Any]]]:
        """Quarantined rows as dicts (file, row number, field, reason, the row as read)."""
        enc = self.encoding
        parse_reason = "case error_type " + " ".join(
            f"when {_q(k)} then {_q(v.split('{message}')[0].replace('{encoding}', enc))}"
            f" || {'error_message || ' + _q(v.split('{message}')[1]) if '{message}' in v else repr('')}"
            for k, v in _PARSE_REASONS.items()
        ) + " else lower(error_type) || ': ' || error_message end"
        duplicates = ""
        if self.result.duplicate_keys:
            # the rows as read of the losing duplicate keys: one more streaming pass, keeping only those
            self.con.execute(
                f"create or replace temp table dup_raw as select s._k, {self._record_sql('s')} as raw_record "
                f"from {self._split('rej3')} s where s._k in (select _k from losers where _same_rank = 1 and _pk_rank > 1)"
            )
            kept = _q(' (the latest ' + self.modified_column + ')') if self.modified_column else _q(' (the last in the file)')
            duplicates = f"""
            union all
            select {self._row_sql('l._k')}, {_q(', '.join(self.obj.primary_key))},
                   'duplicate primary key: kept row ' || {self._row_sql('l._kept_k')} || {kept}, d.raw_record, NULL
            from losers l join dup_raw d on d._k = l._k
            where l._same_rank = 1 and l._pk_rank > 1"""
        sql = f"""
            select {self._row_sql('_k')} as row_number, NULL as field, array_to_string(_problems, '; ') as reason,
                   _raw as raw_record, NULL::BIGINT as at_byte
            from validated where not _skip and len(_problems) > 0
            {duplicates}
            union all
            select _row, coalesce(column_name, '(row)'), {parse_reason}, csv_line, line_byte_position from parse_rejects
            order by 1
        """
        cur = self.con.execute(sql)
        while chunk := cur.fetchmany(batch_size):
            yield [
                {
                    "object": object_name,
                    "source_file": source_file,
                    "row_number": row,
                    "field": fld if fld is not None else ", ".join(dict.fromkeys(p.split(": ", 1)[0] for p in reason.split("; "))),
                    "reason": reason,
                    "raw_record": raw if at_byte is None else self._row_as_read(at_byte, raw),
                }
                for row, fld, reason, raw, at_byte in chunk
            ]

    def _row_as_read(self, at_byte: int, fallback: str | None) -> str:
        """A row the reader could not split, as its bytes decoded with replacement characters."""
        size = len((fallback or "").encode())
        try:
            with self.path.open("rb") as fh:
                start = max(0, at_byte - 4096)
                fh.seek(start)
                window = fh.read(at_byte - start)
                cut = window.rfind(b"\n")
                fh.seek(start + cut + 1 if cut >= 0 else start)
                data = fh.read(max(size, 1))
                if not data.endswith(b"\n"):
                    data += fh.readline(10_000_000)
            text = data.decode("latin-1" if self.encoding == "latin-1" else "utf-8", errors="replace").rstrip("\r\n")
        except OSError:
            text = fallback or ""
        return json.dumps({"row_as_read": text or fallback or ""}, ensure_ascii=False)

    def latest_timestamp(self, names: list[str]) -> dt.datetime | None:
        cols = [_ident(n) for n in names if n == "_modified" or any(f.name == n for f in self.obj.fields)]
        if not cols:
            return None
        row = self.con.execute(
            f"select {', '.join(f'max(cast({c} as timestamp))' for c in cols)} from validated where {self._landed_where()}"
        ).fetchone()
        values = [v for v in (row or []) if v is not None]
        return max(values) if values else None

    def close(self) -> None:
        self.con.close()
        shutil.rmtree(self.spill_dir, ignore_errors=True)
