"""Landing memory is bounded by the batch size, not the file size; and reading in batches keeps
row numbers, quarantine and de-duplication right across batch boundaries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from connectors.csv_folder import CsvFolderSource
from connectors.landing import land_source
from connectors.mapping import identity_mapping

REPO = Path(__file__).resolve().parent.parent
STAGES = "stage,stage_order,is_closed,is_won\nProspecting,1,false,false\nClosed Won,2,true,true\n"
HEADER = "activity_id,opportunity_id,account_id,rep_id,activity_type,occurred_at,subject\n"

# Reads one folder's activities in batches in a fresh process and reports the growth of its
# resident memory (sampled every 5 ms) over the read. A fresh process: freed memory that an
# earlier read left to the allocator would hide the growth.
PROBE = r"""
import json, sys, threading, time
from pathlib import Path
import psutil
import connectors.csv_columnar as cc
cc.READER_MEMORY_LIMIT = sys.argv[3]
from connectors.csv_folder import CsvFolderSource
from connectors.mapping import identity_mapping
folder, batch_size = Path(sys.argv[1]), int(sys.argv[2])
proc, peak, stop = psutil.Process(), [0], []
def sample():
    while not stop:
        peak[0] = max(peak[0], proc.memory_info().rss)
        time.sleep(0.005)
source = CsvFolderSource(folder, identity_mapping("demo"), work_dir=folder / "spill")
source.stages()
base = proc.memory_info().rss
thread = threading.Thread(target=sample, daemon=True)
thread.start()
rows = biggest = last = 0
ordered = True
for batch in source.read("activities", batch_size=batch_size):
    if batch.table is not None:
        numbers = batch.table.column("_source_row").to_pylist()
        ordered &= numbers == list(range(last + 1, last + 1 + len(numbers)))
        last = numbers[-1]
        rows += batch.table.num_rows
        biggest = max(biggest, batch.table.num_rows)
stop.append(1)
thread.join()
print(json.dumps({"growth_mb": (peak[0] - base) / 2**20, "rows": rows, "biggest": biggest, "ordered": ordered}))
"""


def _activities_export(folder: Path, rows: int) -> int:
    """A demo-shaped export whose activities file has ``rows`` rows of about 250 bytes; its size."""
    folder.mkdir(parents=True)
    (folder / "stages.csv").write_text(STAGES)
    path = folder / "activities.csv"
    duckdb.sql(
        "copy (select printf('act-%08d', i) as activity_id, printf('opp-%06d', i % 5000) as opportunity_id, "
        "'acc-1' as account_id, 'rep-1' as rep_id, 'email' as activity_type, '2024-10-02T19:14:00' as occurred_at, "
        f"repeat(md5(i::varchar), 6) as subject from range({rows}) t(i)) to '{path}' (header)"
    )
    return path.stat().st_size


def _probe(folder: Path, batch_size: int, memory_limit: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(folder), str(batch_size), memory_limit],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_reading_memory_is_bounded_by_the_batch_size_not_the_file_size(tmp_path):
    small_size = _activities_export(tmp_path / "small", 100_000)  # about 25 MB
    big_size = _activities_export(tmp_path / "big", 800_000)  # about 200 MB, 160 batches
    small = _probe(tmp_path / "small", 5_000, "48MB")
    big = _probe(tmp_path / "big", 5_000, "48MB")
    assert (small["rows"], big["rows"]) == (100_000, 800_000)
    assert big["biggest"] == 5_000 and big["ordered"]
    mb = 2**20
    # eight times the file, about 170 MB more to hold if anything kept it: the growth stays put
    assert big["growth_mb"] < small["growth_mb"] + 0.25 * (big_size - small_size) / mb, (small, big)
    # and well below what the file takes in memory (its text alone, as Arrow strings)
    assert big["growth_mb"] < 0.6 * big_size / mb, (big, big_size / mb)


BATCHED = HEADER + "".join(
    [
        "A-1,O-1,C-1,R-1,email,2024-10-01T10:00:00,first version\n",  # 1: key seen again in row 6
        "A-2,O-1,C-1,R-1,call,2024-10-02T10:00:00,same\n",  # 2: identical to row 7: skipped
        "A-3,O-1,C-1,R-1,call,2024-10-03T10:00:00,too,many,fields\n",  # 3: cannot be split
        "A-4,O-1,C-1,R-1,call,2024-10-04T10:00:00,ok\n",  # 4
        "A-5,O-1,C-1,R-1,call,not a date,bad date\n",  # 5: quarantined
        "A-1,O-1,C-1,R-1,email,2024-10-06T10:00:00,second version\n",  # 6: kept (the last)
        "\n",  # 7: a blank line still counts as a record
        "A-2,O-1,C-1,R-1,call,2024-10-02T10:00:00,same\n",  # 8
        "A-8,O-1,C-1,R-1,meeting,2024-10-08T10:00:00,ok\n",  # 9
        "A-9,O-1,C-1,R-1,,2024-10-09T10:00:00,no type\n",  # 10: quarantined
        "A-10,O-1,C-1,R-1,email,2024-10-10T10:00:00,ok\n",  # 11
    ]
)


def _batched_export(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "stages.csv").write_text(STAGES)
    (folder / "activities.csv").write_text(BATCHED)
    return folder


def _read(folder: Path, batch_size: int):
    source = CsvFolderSource(folder, identity_mapping("demo"))
    batches = list(source.read("activities", batch_size=batch_size))
    rows = [r for b in batches for r in b.row_dicts()]
    rejected = [r for b in batches for r in b.rejected]
    return batches, rows, rejected, source.reports["activities"]


@pytest.mark.parametrize("batch_size", [1, 2, 3, 1000])
def test_row_numbers_quarantine_and_duplicates_stay_right_across_batches(tmp_path, batch_size):
    batches, rows, rejected, report = _read(_batched_export(tmp_path / "export"), batch_size)
    landed = [b.table.num_rows for b in batches if b.table is not None]
    assert max(landed) <= batch_size and (batch_size > 5 or len(landed) > 1)
    # the rows after the cut row, the blank line and the duplicates keep their file row numbers
    assert [(r["activity_id"], r["_source_row"]) for r in rows] == [
        ("A-4", 4), ("A-1", 6), ("A-2", 8), ("A-8", 9), ("A-10", 11)
    ]
    assert next(r for r in rows if r["activity_id"] == "A-1")["subject"] == "second version"
    by_row = {r["row_number"]: r for r in rejected}
    assert sorted(by_row) == [1, 3, 5, 10]
    assert by_row[1]["reason"] == "duplicate primary key: kept row 6 (the last in the file)"
    assert "first version" in by_row[1]["raw_record"]
    assert "more fields than the header" in by_row[3]["reason"]
    assert by_row[5]["field"] == "occurred_at" and "not a date" in by_row[5]["raw_record"]
    assert by_row[10]["field"] == "activity_type" and by_row[10]["reason"] == "activity_type: missing required value"
    assert (report.input_rows, report.rows, report.rejected, report.skipped) == (10, 5, 4, 1)


def test_batches_land_through_dlt_with_their_row_numbers(tmp_path):
    folder = _batched_export(tmp_path / "export")
    (folder / "opportunities.csv").write_text("opportunity_id\n")  # present, empty: not landed here
    wh = tmp_path / "wh.duckdb"
    source = CsvFolderSource(folder, identity_mapping("demo"))
    reports = {r["object"]: r for r in land_source(source, wh, tmp_path, "L1", objects=["activities"], batch_size=2)}
    assert (reports["activities"]["rows"], reports["activities"]["rejected"]) == (5, 4)
    with duckdb.connect(str(wh), read_only=True) as con:
        landed = con.execute("select activity_id, _source_row from raw.activities order by _source_row").fetchall()
        quarantined = con.execute(
            "select row_number from raw.rejected_rows where object = 'activities' order by row_number"
        ).fetchall()
    assert landed == [("A-4", 4), ("A-1", 6), ("A-2", 8), ("A-8", 9), ("A-10", 11)]
    assert [n for (n,) in quarantined] == [1, 3, 5, 10]
