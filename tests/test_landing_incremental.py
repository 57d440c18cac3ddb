"""Incremental landing for API sources: cursors, merge by key, deletions, schema drift."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from connectors.csv_folder import Batch, ObjectReport
from connectors.landing import (
    RejectSpool,
    crm_dlt_pipeline,
    crm_dlt_source,
    finish_landing,
    load_cursors,
    save_cursors,
    write_rejections,
)


class FakeApiSource:
    """Serves opportunities changed since a cursor, like a CRM API with a modified-since filter."""

    source_system = "fakecrm"
    incremental = True

    def __init__(self, records: list[dict]):
        self.records = records
        self.reports: dict[str, ObjectReport] = {}
        self.cursors: dict[str, str] = {}
        self.requested_since: dict[str, str | None] = {}

    def read(self, object_name, batch_size=1000, cursor=None):
        self.requested_since[object_name] = cursor
        if object_name != "opportunities":
            self.reports[object_name] = ObjectReport(object_name, None, present=False)
            return
        changed = [r for r in self.records if cursor is None or r["modified"] > cursor]
        rows = [
            {
                "opportunity_id": r["id"], "stage": r["stage"], "amount": r["amount"],
                "created_at": dt.datetime(2026, 1, 1), "_is_deleted": r.get("deleted", False),
                "_extra": r.get("extra", {}), "_source_file": "api", "_source_row": i,
            }
            for i, r in enumerate(changed, 1)
        ]
        self.reports[object_name] = ObjectReport(object_name, "GET /deals", rows=len(rows))
        if changed:
            self.cursors[object_name] = max(r["modified"] for r in changed)
        if rows:
            yield Batch(rows=rows)


def _land(source, warehouse: Path, tmp: Path, run: str) -> None:
    spool = RejectSpool(tmp / f"rej-{run}.jsonl")
    pipeline = crm_dlt_pipeline(warehouse, tmp / "dlt")
    cursors = load_cursors(warehouse, source.source_system)
    pipeline.run(crm_dlt_source(source, None, ["opportunities", "accounts"], spool, run, cursors))
    write_rejections(warehouse, spool)
    save_cursors(warehouse, source.source_system, source.cursors, run)
    finish_landing(warehouse, source, run, dt.datetime(2026, 10, 1))


def _opps(warehouse: Path) -> dict:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {
            r[0]: r[1:]
            for r in con.execute("select opportunity_id, amount, _is_deleted, _extra from raw.opportunities").fetchall()
        }


def test_second_landing_fetches_only_changes_and_merges_them(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    records = [
        {"id": "d1", "stage": "Open", "amount": 100.0, "modified": "2026-09-01T00:00:00"},
        {"id": "d2", "stage": "Open", "amount": 200.0, "modified": "2026-09-02T00:00:00"},
    ]
    first = FakeApiSource(records)
    _land(first, warehouse, tmp_path, "run-1")
    assert first.requested_since["opportunities"] is None
    assert set(_opps(warehouse)) == {"d1", "d2"}

    # d2 changes (with a field the canonical shape lacks), d1 is archived, d3 is new
    records[1] = {**records[1], "amount": 250.0, "modified": "2026-09-10T00:00:00", "extra": {"hs_priority": "high"}}
    records[0] = {**records[0], "deleted": True, "modified": "2026-09-11T00:00:00"}
    records.append({"id": "d3", "stage": "Open", "amount": 300.0, "modified": "2026-09-12T00:00:00"})
    second = FakeApiSource(records)
    _land(second, warehouse, tmp_path, "run-2")
    assert second.requested_since["opportunities"] == "2026-09-02T00:00:00"  # the stored cursor
    opps = _opps(warehouse)
    assert set(opps) == {"d1", "d2", "d3"}  # merged by key, nothing duplicated, nothing lost
    assert opps["d1"][1] is True  # deleted in the CRM: kept, flagged
    assert opps["d2"][0] == 250.0 and '"hs_priority": "high"' in opps["d2"][2]

    # nothing changed: an empty incremental extract leaves the table as it was
    third = FakeApiSource(records)
    _land(third, warehouse, tmp_path, "run-3")
    assert third.requested_since["opportunities"] == "2026-09-12T00:00:00"
    assert set(_opps(warehouse)) == {"d1", "d2", "d3"}
    assert load_cursors(warehouse, "fakecrm") == {"opportunities": "2026-09-12T00:00:00"}


class FakeNativeSource:
    """A CRM-native source: its own dataset and tables, one of them a config snapshot."""

    source_system = "fakenative"
    incremental = True
    dataset = "raw_fakenative"

    def __init__(self, names: list[str], mapping: dict[str, str]):
        from connectors.schema import ID, STR, Field, RawObject

        self.tables = {
            "things": RawObject("things", ("thing_id",), (Field("thing_id", ID, True), Field("name", STR)), feeds="accounts"),
            "map_kinds": RawObject("map_kinds", ("source_value",), (Field("source_value", ID, True), Field("kind", STR)), feeds="accounts", snapshot=True),
        }
        self.names, self.mapping = names, mapping
        self.reports: dict[str, ObjectReport] = {}
        self.cursors: dict[str, str] = {}

    def read(self, table, batch_size=1000, cursor=None):
        if table == "things":
            rows = [{"thing_id": n, "name": n.upper()} for n in self.names]
        else:
            rows = [{"source_value": k, "kind": v} for k, v in self.mapping.items()]
        for i, row in enumerate(rows, 1):
            row.update(_source_file="api", _source_row=i, _is_deleted=False, _extra={})
        self.reports[table] = ObjectReport(table, "api", rows=len(rows))
        if table == "things" and rows:
            self.cursors[table] = "c1"
        if rows:
            yield Batch(rows=rows)


def test_native_tables_created_empty_take_rows_later_and_snapshots_are_replaced(tmp_path):
    from connectors.landing import ensure_landing_tables, land_source

    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:  # another source's landing created them, empty
        ensure_landing_tables(con)
        for name, obj in FakeNativeSource([], {}).tables.items():
            from connectors.landing import _ensure_table

            con.execute("create schema if not exists raw_fakenative")
            _ensure_table(con, obj, "raw_fakenative")
    land_source(FakeNativeSource(["a", "b"], {"x": "one", "y": "two"}), warehouse, tmp_path, "run-1")
    reports = land_source(FakeNativeSource(["c"], {"z": "three"}), warehouse, tmp_path, "run-2")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        things = sorted(r[0] for r in con.execute("select thing_id from raw_fakenative.things").fetchall())
        kinds = con.execute("select source_value, kind from raw_fakenative.map_kinds").fetchall()
        active = con.execute("select dataset, source_system, landing_id from raw.active_source").fetchall()
    assert things == ["a", "b", "c"]  # merged by key
    assert kinds == [("z", "three")]  # the config snapshot is replaced whole
    assert active == [("raw_fakenative", "fakenative", "run-2")]
    accounts = next(r for r in reports if r["object"] == "accounts")
    assert accounts["rows"] == 2 and "raw_fakenative.things (1)" in accounts["source_file"]
