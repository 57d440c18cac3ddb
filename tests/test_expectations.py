"""Great Expectations suites and validate_table, on small DuckDB files (no dbt)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

from connectors.schema import RAW_OBJECTS, create_empty_raw_tables
from expectations import SUITES, SuiteSpec, TableNotFoundError, WarehouseLockedError, validate_table
from expectations.suites import ACTIVITY_TYPES, in_set, not_null, primary_key

SEGMENTS = ("smb", "mid_market", "enterprise")  # the demo CRM's; the suites take the team's own from the data

T0 = dt.datetime(2026, 7, 1, 9, 0)
MARTS = [
    "dim_managers",
    "dim_reps",
    "dim_accounts",
    "dim_contacts",
    "fct_opportunities",
    "fct_stage_history",
    "fct_field_history",
    "fct_activities",
    "bridge_activity_contacts",
]


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict[str, Any]]) -> None:
    lineage = {"_source_system": "test", "_loaded_at": T0} if table.startswith("raw.") else {}
    for row in rows:
        row = {**lineage, **row}
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        con.execute(f"insert into {table} ({cols}) values ({marks})", list(row.values()))


def _opportunity(i: int, **over: Any) -> dict[str, Any]:
    return {
        "opportunity_id": f"006{i:04d}",
        "account_id": "001A",
        "owner_rep_id": "005R",
        "stage": "Discovery",
        "amount": 1000.0 * i,
        "created_at": T0,
        **over,
    }


def _activity(i: int, **over: Any) -> dict[str, Any]:
    return {
        "activity_id": f"00T{i:04d}",
        "opportunity_id": "0060001",
        "activity_type": ACTIVITY_TYPES[i % 4],
        "occurred_at": T0 + dt.timedelta(days=i),
        **over,
    }


@pytest.fixture()
def warehouse(tmp_path: Path) -> Path:
    """Empty raw tables, good stages/reps/accounts/opportunities, 8 good activities, good marts."""
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        create_empty_raw_tables(con)
        _insert(
            con,
            "raw.stages",
            [
                {"stage": "Discovery", "stage_order": 1, "is_closed": False, "is_won": False},
                {"stage": "Closed Won", "stage_order": 2, "is_closed": True, "is_won": True},
            ],
        )
        _insert(con, "raw.accounts", [{"account_id": "001A", "account_name": "Acme", "employees": 40}])
        _insert(con, "raw.opportunities", [_opportunity(i) for i in range(1, 11)])
        _insert(con, "raw.activities", [_activity(i) for i in range(8)])

        con.execute("create schema marts")
        con.execute(
            "create table marts.fct_opportunities (opportunity_id varchar, account_id varchar, owner_rep_id varchar, "
            "manager_id varchar, opportunity_name varchar, stage varchar, stage_order integer, amount double, "
            "created_at timestamp, close_date date, is_closed boolean, is_won boolean, closed_at timestamp, "
            "source_system varchar, source_url varchar, segment varchar, outcome varchar, cycle_days integer)"
        )
        for i in range(1, 7):
            won = i % 2 == 0
            con.execute(
                "insert into marts.fct_opportunities values (?, '001A', '005R', '005M', ?, ?, ?, ?, ?, null, ?, ?, ?, "
                "'demo', null, ?, ?, ?)",
                [
                    f"006{i:04d}",
                    f"Deal {i}",
                    "Closed Won" if won else "Discovery",
                    2 if won else 1,
                    500.0 * i,
                    T0,
                    won,
                    won,
                    T0 + dt.timedelta(days=10 * i) if won else None,
                    SEGMENTS[i % 3],
                    "won" if won else "open",
                    10 * i if won else None,
                ],
            )
        con.execute(
            "create table marts.fct_activities (activity_id varchar, opportunity_id varchar, account_id varchar, "
            "rep_id varchar, activity_type varchar, occurred_at timestamp)"
        )
        con.execute(
            "insert into marts.fct_activities select activity_id, opportunity_id, account_id, rep_id, activity_type, "
            "occurred_at from raw.activities"
        )
        con.execute(
            "create table marts.bridge_activity_contacts (activity_id varchar, contact_id varchar, buying_role varchar)"
        )
        con.execute(
            "insert into marts.bridge_activity_contacts values "
            "('00T0001', '003A', 'champion'), ('00T0001', '003B', 'decision_maker'), ('00T0002', '003A', null)"
        )
        con.execute(
            "create table marts.fct_stage_history (stage_history_id varchar, opportunity_id varchar, stage varchar, "
            "entered_at timestamp, exited_at timestamp, segment varchar, stage_order integer, duration_days double, "
            "is_current boolean, deal_outcome varchar, meetings_count integer, activities_count integer)"
        )
        con.execute(
            "insert into marts.fct_stage_history values "
            "('sh1', '0060002', 'Discovery', ?, ?, 'smb', 1, 5, false, 'won', 1, 3), "
            "('sh2', '0060002', 'Closed Won', ?, null, 'smb', 2, 0, true, 'won', 0, 0)",
            [T0, T0 + dt.timedelta(days=5), T0 + dt.timedelta(days=5)],
        )
        # the team's segments are whatever its accounts and reps carry
        con.execute(
            "create table marts.dim_accounts (account_id varchar, account_name varchar, segment varchar, "
            "employees integer, is_strategic boolean)"
        )
        con.execute("insert into marts.dim_accounts values ('001A', 'Acme', 'smb', 40, false), ('001B', 'Big', 'enterprise', 5000, true)")
        con.execute("create table marts.dim_reps (rep_id varchar, rep_name varchar, segment varchar, quarterly_quota double)")
        con.execute("insert into marts.dim_reps values ('005R', 'Rep', 'mid_market', 1000)")
    return path


def _failures(result, column: str) -> dict[str, Any]:
    return {f.expectation_type: f for f in result.failures if f.column == column}


# -- the registry ------------------------------------------------------------------------------


def test_registry_covers_every_raw_object_and_mart():
    assert set(SUITES) == {f"raw.{n}" for n in RAW_OBJECTS} | {f"marts.{n}" for n in MARTS}
    for key, spec in SUITES.items():
        assert spec.table == key


@pytest.mark.parametrize("key", sorted(SUITES))
def test_every_suite_builds(key: str):
    spec = SUITES[key]
    suite = spec.build(value_sets={sql: ["x"] for sql in spec.value_set_queries}, require_rows=True)
    assert len(suite.expectations) == len(spec.checks) + 1
    # Without the warehouse, checks whose value set comes from it are left out, nothing else.
    unresolved = spec.build(require_rows=False)
    assert len(unresolved.expectations) == len(spec.checks) - sum(1 for c in spec.checks if c.value_set_sql)
    assert spec.columns, f"{key} checks no column"


def test_activity_tables_may_be_empty_but_deals_may_not():
    for key in ("raw.activities", "raw.activity_contacts", "marts.fct_activities", "marts.bridge_activity_contacts"):
        assert SUITES[key].require_rows is False
    for key in ("raw.opportunities", "raw.stages", "marts.fct_opportunities"):
        assert SUITES[key].require_rows is True


# -- good data passes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "raw.stages",
        "raw.accounts",
        "raw.opportunities",
        "raw.activities",
        "marts.fct_opportunities",
        "marts.fct_activities",
        "marts.bridge_activity_contacts",
        "marts.fct_stage_history",
    ],
)
def test_good_tables_pass(warehouse: Path, key: str):
    result = validate_table(warehouse, key)
    assert result.success, result.describe()
    assert result.failures == []
    assert result.table == key
    assert result.rows_checked > 0
    assert result.describe().startswith(f"{key}: ")


def test_empty_activity_table_passes_and_empty_deals_fail(warehouse: Path):
    with duckdb.connect(str(warehouse)) as con:
        con.execute("delete from raw.activities")
        con.execute("delete from raw.accounts")
        con.execute("delete from raw.opportunities")
    activities = validate_table(warehouse, "raw.activities")
    assert activities.success and activities.rows_checked == 0
    # A deals-only export has no accounts: an empty accounts table is not an error (the summary names it).
    assert validate_table(warehouse, "raw.accounts").success

    deals = validate_table(warehouse, "raw.opportunities")
    assert not deals.success
    [failure] = deals.failures
    assert failure.expectation_type == "expect_table_row_count_to_be_between"
    assert failure.column is None
    assert "raw.opportunities: expect_table_row_count_to_be_between failed (observed 0" in deals.describe()
    # The row-count rule is per call.
    assert validate_table(warehouse, "raw.opportunities", require_rows=False).success
    assert not validate_table(warehouse, "raw.activities", require_rows=True).success


# -- bad data fails, naming table, column and count ------------------------------------------------


def test_bad_opportunities_name_column_and_exact_counts(warehouse: Path):
    with duckdb.connect(str(warehouse)) as con:
        _insert(
            con,
            "raw.opportunities",
            [
                _opportunity(0, opportunity_id=None),  # null id
                _opportunity(1),  # duplicate of 0060001
                _opportunity(20, amount=-5.0),
                _opportunity(21, amount=-7.5),
                _opportunity(22, stage="Negotiation"),  # not a stage in raw.stages
            ],
        )
    result = validate_table(warehouse, "raw.opportunities")
    assert not result.success
    assert result.rows_checked == 15

    key = _failures(result, "opportunity_id")
    assert key["expect_column_values_to_not_be_null"].unexpected_count == 1
    # Uniqueness counts every row that shares its id: the original and the duplicate.
    assert key["expect_column_values_to_be_unique"].unexpected_count == 2
    assert key["expect_column_values_to_be_unique"].sample_values == ("0060001",)

    amount = _failures(result, "amount")["expect_column_values_to_be_between"]
    assert amount.unexpected_count == 2
    assert amount.unexpected_percent == pytest.approx(100 * 2 / 15)
    assert set(amount.sample_values) == {-5.0, -7.5}

    stage = _failures(result, "stage")["expect_column_values_to_be_in_set"]
    assert stage.unexpected_count == 1 and stage.sample_values == ("Negotiation",)

    assert {f.column for f in result.failures} == {"opportunity_id", "amount", "stage"}
    text = result.describe()
    assert len(text.splitlines()) == len(result.failures) == 4
    assert "raw.opportunities.amount: expect_column_values_to_be_between failed for 2 of 15 rows (e.g. -5.0, -7.5)" in text
    assert "raw.opportunities.opportunity_id: expect_column_values_to_not_be_null failed for 1 of 15 rows" in text
    assert "raw.opportunities.stage: expect_column_values_to_be_in_set failed for 1 of 15 rows (e.g. 'Negotiation')" in text


def test_unknown_activity_type_and_missing_timestamp(warehouse: Path):
    with duckdb.connect(str(warehouse)) as con:
        _insert(con, "raw.activities", [_activity(100, activity_type="webinar"), _activity(101, occurred_at=None)])
    result = validate_table(warehouse, "raw.activities")
    assert not result.success
    kind = _failures(result, "activity_type")["expect_column_values_to_be_in_set"]
    assert (kind.unexpected_count, kind.sample_values) == (1, ("webinar",))
    when = _failures(result, "occurred_at")["expect_column_values_to_not_be_null"]
    assert when.unexpected_count == 1
    assert "raw.activities.activity_type: expect_column_values_to_be_in_set failed for 1 of 10 rows" in result.describe()


def test_bad_marts(warehouse: Path):
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update marts.fct_opportunities set segment = 'Enterprise' where opportunity_id = '0060001'")
        con.execute(
            "update marts.fct_opportunities set cycle_days = -3, closed_at = ? where opportunity_id = '0060002'",
            [T0 - dt.timedelta(days=3)],
        )
        con.execute("update marts.fct_stage_history set duration_days = -1 where stage_history_id = 'sh1'")
        con.execute(
            "insert into marts.bridge_activity_contacts values ('00T0001', '003A', 'champion'), ('00T0003', '003C', 'cfo')"
        )
        con.execute("insert into marts.fct_activities values ('00T0099', null, null, null, 'Call', ?)", [T0])

    opps = validate_table(warehouse, "marts.fct_opportunities")
    assert {(f.column, f.expectation_type, f.unexpected_count) for f in opps.failures} == {
        ("segment", "expect_column_values_to_be_in_set", 1),
        ("cycle_days", "expect_column_values_to_be_between", 1),
        ("closed_at,created_at", "expect_column_pair_values_a_to_be_greater_than_b", 1),
    }
    assert (
        "marts.fct_opportunities.cycle_days: expect_column_values_to_be_between failed for 1 of 6 rows (e.g. -3)"
        in opps.describe()
    )

    history = validate_table(warehouse, "marts.fct_stage_history")
    [failure] = history.failures
    assert (failure.column, failure.unexpected_count, failure.sample_values) == ("duration_days", 1, (-1.0,))

    bridge = validate_table(warehouse, "marts.bridge_activity_contacts")
    assert {(f.column, f.expectation_type, f.unexpected_count) for f in bridge.failures} == {
        ("activity_id,contact_id", "expect_compound_columns_to_be_unique", 2),
        ("buying_role", "expect_column_values_to_be_in_set", 1),
    }
    assert (
        "marts.bridge_activity_contacts.activity_id,contact_id: "
        "expect_compound_columns_to_be_unique failed for 2 of 5 rows" in bridge.describe()
    )

    activities = validate_table(warehouse, "marts.fct_activities")
    [failure] = activities.failures
    assert (failure.column, failure.unexpected_count, failure.sample_values) == ("activity_type", 1, ("Call",))


# -- clear errors ------------------------------------------------------------------------------------


def test_suite_reading_a_missing_column_fails_clearly(warehouse: Path):
    spec = SuiteSpec(
        "raw.accounts",
        checks=(*primary_key("account_id"), *not_null("account_tier"), in_set("account_tier", ["gold"])),
    )
    result = validate_table(warehouse, "raw.accounts", suite=spec)
    assert not result.success
    [failure] = result.failures  # the two checks on the column are reported once, the rest still run
    assert failure.expectation_type == "expect_column_to_exist"
    assert failure.column == "account_tier"
    assert failure.unexpected_count is None
    text = result.describe()
    assert text.startswith(
        "raw.accounts.account_tier: expect_column_to_exist failed (column 'account_tier' is not in raw.accounts"
    )
    assert "expect_column_values_to_not_be_null" in text

    with duckdb.connect(str(warehouse)) as con:  # a mart built without a contract column
        con.execute("alter table marts.fct_opportunities drop column cycle_days")
    result = validate_table(warehouse, "marts.fct_opportunities")
    assert [(f.expectation_type, f.column) for f in result.failures] == [("expect_column_to_exist", "cycle_days")]


def test_missing_table_and_unknown_key_fail_clearly(warehouse: Path, tmp_path: Path):
    with pytest.raises(TableNotFoundError, match=r"marts\.dim_managers not found in warehouse"):
        validate_table(warehouse, "marts.dim_managers")
    with pytest.raises(KeyError, match="no suite for 'raw.nope'"):
        validate_table(warehouse, "raw.nope")
    with pytest.raises(FileNotFoundError, match="raw.accounts"):
        validate_table(tmp_path / "absent.duckdb", "raw.accounts")
    with duckdb.connect(str(warehouse)) as con:
        con.execute("drop table raw.stages")
    with pytest.raises(TableNotFoundError, match=r"raw\.opportunities: the value set query .*raw\.stages"):
        validate_table(warehouse, "raw.opportunities")


def test_validation_opens_the_warehouse_read_only(warehouse: Path):
    # A read-only DuckDB connection cannot coexist with a read-write one in the same process,
    # so holding one open shows validate_table asks for nothing more.
    with duckdb.connect(str(warehouse), read_only=True):
        assert validate_table(warehouse, "raw.stages").success


def test_a_warehouse_locked_by_a_writer_gives_a_clear_error(warehouse: Path):
    hold_write_lock = "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('ok', flush=True); sys.stdin.read()"
    writer = subprocess.Popen(
        [sys.executable, "-c", hold_write_lock, str(warehouse)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "ok"
        with pytest.raises(WarehouseLockedError, match="raw.stages"):
            validate_table(warehouse, "raw.stages")
    finally:
        writer.communicate(input="", timeout=30)
    assert validate_table(warehouse, "raw.stages").success


def test_max_rows_validates_a_reproducible_sample(warehouse: Path):
    with duckdb.connect(str(warehouse)) as con:
        _insert(con, "raw.activities", [_activity(i) for i in range(8, 500)])
    result = validate_table(warehouse, "raw.activities", max_rows=100)
    assert result.success and result.sampled
    assert (result.rows_checked, result.total_rows) == (100, 500)
    assert "100 sampled rows (table has 500)" in result.describe()
    full = validate_table(warehouse, "raw.activities", max_rows=1000)
    assert not full.sampled and full.rows_checked == 500


def test_segments_are_the_teams_own_not_a_hard_coded_list(warehouse: Path):
    """Regions as segments pass; a deal segment no account or rep carries fails."""
    with duckdb.connect(str(warehouse)) as con:
        for table in ("marts.dim_accounts", "marts.dim_reps", "marts.fct_opportunities", "marts.fct_stage_history"):
            con.execute(f"update {table} set segment = case when segment = 'smb' then 'east' else 'west' end")
    assert validate_table(warehouse, "marts.fct_opportunities").success
    assert validate_table(warehouse, "marts.fct_stage_history").success
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update marts.fct_opportunities set segment = 'north' where opportunity_id = '0060001'")
    failures = validate_table(warehouse, "marts.fct_opportunities").failures
    assert [(f.column, f.expectation_type) for f in failures] == [("segment", "expect_column_values_to_be_in_set")]


# -- cost: a passing table is validated once, pass/fail only ---------------------------------------


def test_a_passing_table_is_validated_once_without_details_and_a_failing_one_is_described(warehouse: Path, monkeypatch):
    """GX computes unexpected counts and value lists only for a table that fails (a second pass), so the usual
    case, a table that passes, costs one pass/fail validation; the failures are still described in full."""
    import great_expectations as gx

    formats: list[str] = []
    run = gx.ValidationDefinition.run

    def spy(self, *args, **kwargs):
        formats.append((kwargs.get("result_format") or {}).get("result_format"))
        return run(self, *args, **kwargs)

    monkeypatch.setattr(gx.ValidationDefinition, "run", spy)
    assert validate_table(warehouse, "raw.opportunities").success
    assert formats == ["BOOLEAN_ONLY"]

    formats.clear()
    with duckdb.connect(str(warehouse)) as con:
        _insert(con, "raw.opportunities", [_opportunity(20, amount=-5.0)])
    result = validate_table(warehouse, "raw.opportunities")
    assert formats == ["BOOLEAN_ONLY", "SUMMARY"]
    [failure] = result.failures
    assert (failure.column, failure.unexpected_count, failure.sample_values) == ("amount", 1, (-5.0,))
