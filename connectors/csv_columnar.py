"""Column-wise reading and validation of one CSV file of an export, in DuckDB.

DuckDB's CSV reader splits the file (every field as text, ``store_rejects`` keeping each row
it cannot split: invalid bytes for the encoding, more or fewer fields than the header, a row
over the size limit) and the canonical typing and quarantine rules run as SQL expressions over
whole columns, not as Python per field. The result streams out as Arrow record batches, so the
memory of the Python process is bounded by the batch size; DuckDB itself spills to disk under
its memory limit (the de-duplication window sorts the file).

Every input record ends up in exactly one place: landed, quarantined (file, row number,
field, reason, the row as read) or skipped (``skip_when``, or an identical duplicate).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
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
        self.con = duckdb.connect()
        self.con.execute("set memory_limit = '512MB'")
        self.con.execute("set preserve_insertion_order = true")
        if work_dir is not None:
            work_dir.mkdir(parents=True, exist_ok=True)
            self.con.execute(f"set temp_directory = {_q(str(work_dir))}")
        self.cols = [f"c{i}" for i in range(len(header))]
        self.result = ColumnarResult()
        self._prepare()

    # -- the file, split -----------------------------------------------------------------
    def _read_csv(self, strict: bool, rejects: str) -> str:
        columns = "{" + ", ".join(f"{_q(c)}: 'VARCHAR'" for c in self.cols) + "}"
        return (
            f"read_csv({_q(str(self.path))}, columns={columns}, header=true, auto_detect=false, all_varchar=true, "
            f"delim={_q(self.formats.delimiter)}, quote='\"', escape='\"', encoding={_q(self.encoding)}, "
            f"parallel=false, strict_mode={'true' if strict else 'false'}, store_rejects=true, "
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

    def _prepare(self) -> None:
        con = self.con
        con.execute(
            f"create temp table split as select row_number() over () as _k, * from {self._read_csv(True, 'rej')}"
        )
        con.execute(
            "create temp table parse_rejects as select distinct on (line) line - 1 as _row, column_name, error_type, "
            "error_message, csv_line, line_byte_position from rej order by line"
        )
        odd_quotes, blank_lines = self._scan()
        if odd_quotes:
            # DuckDB's strict reader drops an unterminated quoted field at the end of the file
            # without a reject; the lenient reader reports it (with the rows it swallowed).
            con.execute(f"create temp table lenient as select count(*) from {self._read_csv(False, 'rej2')}")
            con.execute(
                "insert into parse_rejects select distinct on (line) line - 1, column_name, error_type, error_message, csv_line, "
                "line_byte_position from rej2 "
                "where error_type = 'MISSING COLUMNS' and line - 1 > coalesce((select max(_row) from parse_rejects), 0) "
                "and line - 1 > (select count(*) from split) + (select count(*) from parse_rejects)"
            )
        # The k-th split row's record number in the file skips the rows DuckDB rejected (and the
        # blank lines it skipped, which its line numbers count).
        con.execute("create temp table gaps as select _row from parse_rejects")
        if blank_lines:
            con.executemany("insert into gaps values (?)", [[n] for n in self._blank_lines()])
        con.execute(
            "create temp table reject_gaps as select adj, max(n) as n from (select _row - row_number() over (order by _row) "
            "as adj, row_number() over (order by _row) as n from (select distinct _row from gaps)) group by adj"
        )
        con.execute(
            "create temp table numbered as select s.*, s._k + coalesce(g.n, 0) as _row from split s "
            "asof left join reject_gaps g on s._k > g.adj"
        )
        con.execute("drop table split")
        con.execute(self._validated_sql())
        r = self.result
        counts = con.execute(
            "select count(*), count(*) filter (where _skip), count(*) filter (where _same_rank > 1), "
            "count(*) filter (where not _skip and _same_rank = 1 and len(_problems) = 0 and _pk_rank > 1), "
            "count(*) filter (where _ok) from validated"
        ).fetchone()
        parse_rejected = con.execute("select count(*) from parse_rejects").fetchone()[0]
        r.input_rows = counts[0] + parse_rejected
        r.skipped_by_rule, r.identical_duplicates, r.duplicate_keys, r.landed = counts[1], counts[2], counts[3], counts[4]
        r.skipped = r.skipped_by_rule + r.identical_duplicates
        r.quarantined = r.input_rows - r.landed - r.skipped
        for reason, n in con.execute(
            "select reason, count(*) from (select left(regexp_replace(unnest(_problems), ' [(](known|expected).*$', ''), 160) "
            "as reason from validated "
            "where not _ok and not _skip and _same_rank = 1 and len(_problems) > 0) group by 1 order by 2 desc"
        ).fetchall():
            r.reasons[reason] = n
        if r.duplicate_keys:
            r.reasons["duplicate primary key"] = r.duplicate_keys
        for etype, n in con.execute("select error_type, count(*) from parse_rejects group by 1").fetchall():
            r.reasons[f"(row): {etype.lower()}"] = n

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
        pk = ", ".join(_ident(k) for k in self.obj.primary_key)
        modified = (
            self._ts_expr(f"nullif(trim({self._col(self.modified_column)}), '')", self.formats.timestamp)
            if self.modified_column and self.modified_column in self.header else "NULL::TIMESTAMP"
        )
        return f"""
            create temp table validated as
            with typed as (
                select _row, {', '.join(typed)}, {problems_sql} as _problems, coalesce({skip}, false) as _skip,
                       {modified} as _modified
                from numbered
            ), ranked as (
                select *, case when not _skip and len(_problems) = 0
                               then row_number() over (partition by _skip, len(_problems) = 0, {', '.join(names)} order by _row desc)
                               else 1 end as _same_rank
                from typed
            ), keyed as (
                select *, case when not _skip and len(_problems) = 0 and _same_rank = 1
                               then row_number() over (partition by _skip, len(_problems) = 0, _same_rank = 1, {pk}
                                                       order by _modified desc nulls last, _row desc)
                               else 1 end as _pk_rank,
                          case when not _skip and len(_problems) = 0 and _same_rank = 1
                               then first_value(_row) over (partition by _skip, len(_problems) = 0, _same_rank = 1, {pk}
                                                            order by _modified desc nulls last, _row desc)
                               end as _kept_row
                from ranked
            )
            select *, (not _skip and len(_problems) = 0 and _same_rank = 1 and _pk_rank = 1) as _ok from keyed
        """

    def _record_sql(self, alias: str) -> str:
        """The row as read (JSON of header -> text), built only for the quarantined rows."""
        if not self.cols:
            return "'{}'"
        return "json_object(" + ", ".join(f"{_q(h)}, {alias}.{c}" for h, c in zip(self.header, self.cols)) + ")::VARCHAR"

    # -- output ------------------------------------------------------------------------------
    def rows(self, batch_size: int) -> Iterator[pa.RecordBatch]:
        names = ", ".join(_ident(f.name) for f in self.obj.fields)
        reader = self.con.execute(
            f"select {names}, _row as _source_row from validated where _ok order by _row"
        ).fetch_record_batch(batch_size)
        yield from reader

    def rejections(self, object_name: str, source_file: str, batch_size: int) -> Iterator[list[dict[str, Any]]]:
        """Quarantined rows as dicts (file, row number, field, reason, the row as read)."""
        enc = self.encoding
        parse_reason = "case error_type " + " ".join(
            f"when {_q(k)} then {_q(v.split('{message}')[0].replace('{encoding}', enc))}"
            f" || {'error_message || ' + _q(v.split('{message}')[1]) if '{message}' in v else repr('')}"
            for k, v in _PARSE_REASONS.items()
        ) + " else lower(error_type) || ': ' || error_message end"
        sql = f"""
            select v._row as row_number, NULL as field, array_to_string(v._problems, '; ') as reason,
                   {self._record_sql('n')} as raw_record, NULL::BIGINT as at_byte
            from validated v join numbered n on n._row = v._row
            where not v._ok and not v._skip and v._same_rank = 1 and len(v._problems) > 0
            union all
            select v._row, {_q(', '.join(self.obj.primary_key))},
                   'duplicate primary key: kept row ' || v._kept_row ||
                   {_q(' (the latest ' + self.modified_column + ')') if self.modified_column else _q(' (the last in the file)')},
                   {self._record_sql('n')}, NULL
            from validated v join numbered n on n._row = v._row
            where not v._skip and len(v._problems) = 0 and v._same_rank = 1 and v._pk_rank > 1
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
            f"select {', '.join(f'max(cast({c} as timestamp))' for c in cols)} from validated where _ok"
        ).fetchone()
        values = [v for v in (row or []) if v is not None]
        return max(values) if values else None

    def close(self) -> None:
        self.con.close()
