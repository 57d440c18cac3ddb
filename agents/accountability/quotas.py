"""A quotas file beside any CRM source: who carries what quota in which quarter.

CSV (a header row) or YAML (a list of mappings, or ``{quotas: [...]}``), one row per quota:

| field | meaning |
|---|---|
| ``rep`` | the rep: CRM user id, email or full name (or leave empty and give ``team``) |
| ``team`` | a manager (id, email or name): the amount is split evenly over the team's active reps that have no row of their own for the period |
| ``period`` | the quarter: ``2026-Q3``, or its first day ``2026-07-01`` (fiscal quarters may start in any month) |
| ``amount`` | the quota, in the CRM's currency (``1,250,000`` and ``1250000.00`` both read) |

``land_quotas_file`` writes the rows as read to ``raw.quota_file`` (file, row number, rep, team,
quarter start, amount); the dbt model ``stg_crm__quota_file`` resolves names and emails against the
CRM's reps and managers and splits team quotas, and ``stg_crm__quotas`` lets a file row win over the
CRM's own quota for the same rep and quarter. A malformed row stops the landing with the file, row
and field named (a quota file is short and hand-made: better fixed than half-read).
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

QUOTA_FILE_TABLE = "raw.quota_file"
_PERIOD = re.compile(r"^(\d{4})-?Q([1-4])$", re.IGNORECASE)
_DDL = f"""create table if not exists {QUOTA_FILE_TABLE} (
    rep VARCHAR, team VARCHAR, quarter_start DATE, quota_amount DOUBLE PRECISION, _source_file VARCHAR, _source_row BIGINT)"""


class QuotaFileError(ValueError):
    def __init__(self, path: Path, row: int | None, field: str | None, message: str) -> None:
        where = f"{path}" + (f", row {row}" if row is not None else "") + (f", field {field!r}" if field else "")
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class QuotaRow:
    rep: str | None
    team: str | None
    quarter_start: dt.date
    amount: float
    row: int


def parse_period(value: str) -> dt.date:
    text = str(value).strip()
    m = _PERIOD.match(text)
    if m:
        return dt.date(int(m.group(1)), 3 * (int(m.group(2)) - 1) + 1, 1)
    return dt.date.fromisoformat(text)


def read_quotas_file(path: str | Path) -> list[QuotaRow]:
    path = Path(path)
    if not path.exists():
        raise QuotaFileError(path, None, None, "no such file (SALES_SUPERVISOR_QUOTAS_FILE)")
    if path.suffix.lower() in (".yaml", ".yml"):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
        if isinstance(data, dict):
            data = data.get("quotas", [])
        if not isinstance(data, list):
            raise QuotaFileError(path, None, None, "expected a list of quotas (or quotas: [...])")
        records = [(i, r) for i, r in enumerate(data, 1)]
    else:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = {"period", "amount"} - {(h or "").strip().lower() for h in reader.fieldnames or []}
            if missing:
                raise QuotaFileError(path, None, None, f"the header lacks {', '.join(sorted(missing))} "
                                     "(columns: rep or team, period, amount)")
            records = [(i, {(k or "").strip().lower(): v for k, v in r.items()}) for i, r in enumerate(reader, 1)]
    out = []
    for i, rec in records:
        if not isinstance(rec, dict):
            raise QuotaFileError(path, i, None, "expected a mapping with rep or team, period, amount")
        rep = str(rec.get("rep") or "").strip() or None
        team = str(rec.get("team") or "").strip() or None
        if (rep is None) == (team is None):
            raise QuotaFileError(path, i, "rep", "give exactly one of rep and team")
        try:
            quarter = parse_period(rec.get("period") or "")
        except ValueError:
            raise QuotaFileError(path, i, "period", f"{rec.get('period')!r} is not a quarter like 2026-Q3 or 2026-07-01") from None
        try:
            amount = float(str(rec.get("amount")).replace(",", "").replace("_", "").strip())
        except ValueError:
            raise QuotaFileError(path, i, "amount", f"{rec.get('amount')!r} is not a number") from None
        if amount < 0:
            raise QuotaFileError(path, i, "amount", "a quota cannot be negative")
        out.append(QuotaRow(rep, team, quarter, amount, i))
    return out


def land_quotas_file(con, path: str | Path | None) -> int:
    """Replace ``raw.quota_file`` with the file's rows (an empty table without a file). Returns the row count.
    ``con``: a connection from agents/warehouse.py (DuckDB or PostgreSQL). The file is read before
    anything is written, so a malformed file leaves the previous rows in place."""
    rows = read_quotas_file(path) if path is not None else []
    con.execute("create schema if not exists raw")
    con.execute(_DDL)
    con.execute(f"delete from {QUOTA_FILE_TABLE}")
    con.executemany(
        f"insert into {QUOTA_FILE_TABLE} values (:rep, :team, :quarter_start, :amount, :file, :row)",
        [{"rep": r.rep, "team": r.team, "quarter_start": r.quarter_start, "amount": r.amount, "file": str(path),
          "row": r.row} for r in rows],
    )
    return len(rows)
