"""Test-only helpers. Production landing validates and quarantines; this does not."""

from __future__ import annotations

from pathlib import Path

import duckdb

from connectors.schema import DUCKDB_TYPES, RAW_OBJECTS, create_empty_raw_tables


def load_canonical_folder_unvalidated(warehouse: Path | str, folder: Path | str) -> dict[str, int]:
    """Load ``<object>.csv`` files in the canonical shape straight into ``raw.<object>``.

    For developing dbt models and semantic models against demo data without the
    landing pipeline. Returns row counts per object.
    """
    folder = Path(folder)
    counts: dict[str, int] = {}
    with duckdb.connect(str(warehouse)) as con:
        create_empty_raw_tables(con)
        for name, obj in RAW_OBJECTS.items():
            path = folder / f"{name}.csv"
            con.execute(f"delete from raw.{name}")
            if not path.exists():
                counts[name] = 0
                continue
            types = {f.name: DUCKDB_TYPES[f.type] for f in obj.fields}
            cols = ", ".join(types)
            con.execute(
                f"insert into raw.{name} ({cols}, _source_system, _source_file, _source_row, _loaded_at) "
                f"select {cols}, 'demo', ?, null, now() from read_csv(?, header=true, columns=?)",
                [str(path), str(path), types],
            )
            counts[name] = con.execute(f"select count(*) from raw.{name}").fetchone()[0]
    return counts


def dbt_build(warehouse: Path | str, select: str, vars: dict | None = None) -> str:
    """``dbt build --select <select>`` on the DuckDB file ``warehouse`` (a private target and
    log folder beside it, so tests never share dbt's state); dbt's output on failure."""
    import json
    import os
    import subprocess

    from sales_supervisor.dbt import DBT_EXECUTABLE
    from sales_supervisor.settings import DBT_PROJECT_DIR

    warehouse = Path(warehouse).resolve()
    work = warehouse.parent / f"dbt-{warehouse.stem}"
    args = [
        DBT_EXECUTABLE, "build", "--select", select, "--profiles-dir", str(DBT_PROJECT_DIR),
        "--target-path", str(work / "target"), "--log-path", str(work / "logs"),
    ]
    if vars:
        args += ["--vars", json.dumps(vars)]
    proc = subprocess.run(
        args, cwd=DBT_PROJECT_DIR, capture_output=True, text=True,
        env={**os.environ, "SALES_SUPERVISOR_DUCKDB_PATH": str(warehouse)},
    )
    if proc.returncode != 0:
        raise AssertionError(f"dbt build --select {select} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}")
    return proc.stdout
