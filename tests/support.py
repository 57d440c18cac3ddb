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
