"""agents/warehouse.py: one API, one parameter style, on DuckDB and (when a server is configured) PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from agents.warehouse import Warehouse, WarehouseError
from sales_supervisor.settings import Settings


@pytest.fixture(params=["duckdb", "postgres"])
def wh(request, tmp_path):
    if request.param == "duckdb":
        return Warehouse.duckdb(tmp_path / "w.duckdb")
    return Warehouse("postgres", url=request.getfixturevalue("postgres_warehouse_url"))


def _setup(wh: Warehouse) -> None:
    with wh.connect() as con:
        con.execute("create schema if not exists marts")
        con.execute(
            f"create table {wh.table('marts', 'deals')} (deal_id varchar, stage varchar, amount double precision, "
            "closed_on date, is_won boolean)"
        )


def test_named_params_casts_and_any_work_the_same(wh):
    _setup(wh)
    with wh.connect() as con:
        con.executemany(
            "insert into marts.deals values (:id, :stage, :amount, :closed, :won)",
            [
                {"id": "d1", "stage": "proposal", "amount": 100.5, "closed": None, "won": False},
                {"id": "d2", "stage": "negotiation", "amount": 50.0, "closed": dt.date(2026, 9, 1), "won": True},
                {"id": "d3", "stage": "proposal", "amount": 7.0, "closed": None, "won": False},
            ],
        )
    with wh.connect(read_only=True) as con:
        rows = con.execute(
            "select deal_id, amount::integer from marts.deals where stage = :stage and amount > :min order by deal_id",
            {"stage": "proposal", "min": 10},
        ).fetchall()
        assert rows == [("d1", 100)]  # the :: cast is SQL, not a parameter
        ids = con.execute("select deal_id from marts.deals where deal_id = any(:ids) order by 1", {"ids": ["d2", "d3"]})
        assert [r[0] for r in ids.fetchall()] == ["d2", "d3"]
        assert con.execute("select count(*) from marts.deals where deal_id like 'd%'").scalar() == 3
        assert con.execute("select count(*) from marts.deals where deal_id like :p", {"p": "d%"}).scalar() == 3
        assert con.has_table("marts", "deals") and not con.has_table("marts", "nope")
        assert con.columns("marts", "deals") == ["deal_id", "stage", "amount", "closed_on", "is_won"]
        table = con.execute("select deal_id, closed_on from marts.deals order by deal_id").fetch_arrow()
        assert table.column("closed_on").to_pylist() == [None, dt.date(2026, 9, 1), None]
        df = con.execute("select deal_id, is_won from marts.deals order by deal_id").fetch_df()
        assert list(df["deal_id"]) == ["d1", "d2", "d3"] and list(df["is_won"]) == [False, True, False]
        with pytest.raises(WarehouseError, match="no value for parameter|stage") if wh.dialect == "duckdb" else pytest.raises(Exception):
            con.execute("select 1 from marts.deals where stage = :stage", {"other": 1}).fetchall()


def test_insert_arrow_is_bulk_and_matches_columns_by_name(wh):
    _setup(wh)
    data = pa.table({
        "stage": ["proposal", "won"], "deal_id": ["a", "b"], "amount": [1.5, None],
        "closed_on": [None, dt.date(2026, 1, 2)], "is_won": [False, True],
    })
    with wh.connect() as con:
        assert con.insert_arrow("marts", "deals", data) == 2
    with wh.connect(read_only=True) as con:
        got = con.execute("select deal_id, stage, amount, closed_on, is_won from marts.deals order by deal_id").fetchall()
    assert got == [("a", "proposal", 1.5, None, False), ("b", "won", None, dt.date(2026, 1, 2), True)]


def test_a_failed_transaction_writes_nothing(wh):
    _setup(wh)
    with pytest.raises(RuntimeError), wh.connect() as con, con.transaction():
        con.execute("insert into marts.deals (deal_id) values (:id)", {"id": "x"})
        raise RuntimeError("boom")
    with wh.connect(read_only=True) as con:
        assert con.execute("select count(*) from marts.deals").scalar() == 0


def test_read_only_connections_cannot_write(wh):
    _setup(wh)
    with pytest.raises(Exception, match="(?i)read.only"), wh.connect(read_only=True) as con:
        con.execute("insert into marts.deals (deal_id) values ('x')")


def test_the_one_setting_picks_the_warehouse_and_configures_dbt_and_dlt(tmp_path):
    duck = Settings(home=tmp_path).warehouse_handle()
    assert duck.dialect == "duckdb" and duck.path == tmp_path.resolve() / "warehouse.duckdb"
    assert duck.dbt_env() == {"DBT_TARGET": "duckdb", "SALES_SUPERVISOR_DUCKDB_PATH": str(duck.path)}
    pg = Settings(home=tmp_path, warehouse="postgres", warehouse_url="postgresql+psycopg://u:p%40ss@db.internal:6543/sales").warehouse_handle()
    assert pg.dialect == "postgres" and pg.label == "PostgreSQL database sales on db.internal:6543"
    assert pg.dbt_env() == {
        "DBT_TARGET": "postgres", "SALES_SUPERVISOR_PG_HOST": "db.internal", "SALES_SUPERVISOR_PG_PORT": "6543",
        "SALES_SUPERVISOR_PG_USER": "u", "SALES_SUPERVISOR_PG_PASSWORD": "p@ss", "SALES_SUPERVISOR_PG_DBNAME": "sales",
    }
    assert type(pg.dlt_destination()).__name__ == "postgres"


def test_misconfiguration_gets_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(WarehouseError, match="needs SALES_SUPERVISOR_WAREHOUSE_URL"):
        Settings(home=tmp_path, warehouse="postgres").warehouse_handle()
    with pytest.raises(WarehouseError, match="must be a postgresql:// URL"):
        Settings(home=tmp_path, warehouse="postgres", warehouse_url="mysql://x@h/db").warehouse_handle()
    monkeypatch.setenv("SALES_SUPERVISOR_WAREHOUSE", "/tmp/old/warehouse.duckdb")  # the old meaning of the variable
    with pytest.raises(ValueError, match="chooses the warehouse engine"):
        Settings(home=tmp_path)
    monkeypatch.setenv("SALES_SUPERVISOR_WAREHOUSE", "PostgreSQL")
    assert Settings(home=tmp_path, warehouse_url="postgresql://h/db").warehouse == "postgres"


def test_postgres_connection_failure_names_the_database_not_the_password():
    wh = Warehouse("postgres", url="postgresql://u:secret@127.0.0.1:1/sales")
    with pytest.raises(WarehouseError, match="PostgreSQL database sales on 127.0.0.1:1") as err, wh.connect():
        pass
    assert "secret" not in str(err.value)
