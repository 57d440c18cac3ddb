"""The quotas file beside any CRM source (issue 14): CSV or YAML, rep or team, a quarter, an amount;
clear errors naming the row and field; in the marts a file row wins over the CRM's own quota and a
team quota is split over the team's active reps."""

from __future__ import annotations

import datetime as dt
import shutil

import duckdb
import pytest

from agents.accountability.quotas import QuotaFileError, land_quotas_file, parse_period, read_quotas_file


def test_csv_and_yaml_read_the_same_rows(tmp_path):
    csv_file = tmp_path / "quotas.csv"
    csv_file.write_text("rep,team,period,amount\nrep-0001,,2026-Q3,\"250,000\"\n,mgr-0002,2026-07-01,1200000\n")
    yaml_file = tmp_path / "quotas.yaml"
    yaml_file.write_text("quotas:\n  - {rep: rep-0001, period: 2026-Q3, amount: 250000}\n"
                         "  - {team: mgr-0002, period: '2026-07-01', amount: 1200000}\n")
    a, b = read_quotas_file(csv_file), read_quotas_file(yaml_file)
    assert [(r.rep, r.team, r.quarter_start, r.amount) for r in a] == [(r.rep, r.team, r.quarter_start, r.amount) for r in b]
    assert a[0].quarter_start == dt.date(2026, 7, 1) and a[0].amount == 250_000 and a[1].team == "mgr-0002"
    assert parse_period("2027q1") == dt.date(2027, 1, 1)


@pytest.mark.parametrize("content, match", [
    ("rep,amount\nr1,5\n", "header lacks period"),
    ("rep,team,period,amount\nr1,m1,2026-Q3,5\n", "row 1, field 'rep': give exactly one of rep and team"),
    ("rep,period,amount\nr1,2026-Q5,5\n", "row 1, field 'period'"),
    ("rep,period,amount\nr1,2026-Q3,5\nr2,2026-Q3,lots\n", "row 2, field 'amount'"),
    ("rep,period,amount\nr1,2026-Q3,-5\n", "cannot be negative"),
])
def test_a_bad_row_is_named(tmp_path, content, match):
    f = tmp_path / "q.csv"
    f.write_text(content)
    with pytest.raises(QuotaFileError, match=match):
        read_quotas_file(f)


@pytest.mark.slow
def test_file_quotas_win_over_the_crm_and_teams_are_split(built_warehouse, tmp_path):
    from tests.test_semantic_layer import _dbt

    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(built_warehouse.warehouse, warehouse)
    with duckdb.connect(str(warehouse)) as con:
        team = con.execute("select rep_id from marts.dim_reps where manager_id = 'mgr-0003' and is_active order by rep_id").fetchall()
        email = con.execute("select email from marts.dim_reps where rep_id = 'rep-0001'").fetchone()[0]
    quotas = tmp_path / "quotas.csv"
    quotas.write_text(f"rep,team,period,amount\n{email.upper()},,2026-Q3,999000\nrep-0018,,2026-Q3,500000\n"
                      ",mgr-0003,2026-Q4,7000000\n")
    from agents.warehouse import Warehouse

    with Warehouse.duckdb(warehouse).connect() as con:
        assert land_quotas_file(con, quotas) == 3
    _dbt(["run", "--select", "stg_crm__quota_file", "stg_crm__quotas", "fct_quotas",
          "--vars", '{"as_of_date": "2026-10-01"}'], warehouse, tmp_path / "target")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        q = dict(con.execute("select quota_id, quota_amount from marts.fct_quotas").fetchall())
        src = dict(con.execute("select quota_id, source_system from marts.fct_quotas").fetchall())
    assert q["rep-0001|2026-07-01"] == 999_000 and src["rep-0001|2026-07-01"] == "quotas_file"  # by email, any case
    assert q["rep-0018|2026-07-01"] == 500_000
    members = [r for (r,) in team]  # the team's active reps; rep-0018 has its own Q3 row, not a Q4 one
    assert len(members) >= 6
    for rep in members:
        assert q[f"{rep}|2026-10-01"] == pytest.approx(7_000_000 / len(members)), rep
    assert src["rep-0002|2026-10-01"] == "demo"  # the CRM's own quota where the file says nothing
    assert len([k for k in q if k.startswith("rep-0001|")]) == len(set(k for k in q if k.startswith("rep-0001|")))
