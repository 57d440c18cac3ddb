"""Storing a risk run: every flag, evidence row, cited query, suppressed flag and not-applicable
rule lands with its values, in one transaction, through bulk (Arrow) inserts, never executemany."""

from __future__ import annotations

import datetime as dt
import json

import duckdb

import agents.risk.store as store
from agents.risk.engine import Snooze, evaluate
from agents.risk.features import SourceCoverage
from agents.risk.policy import load_policy
from tests.test_risk_fixtures import AS_OF, change, deal, make_baselines, rep


def _run():
    deals = [
        deal("opp-1", days_in_stage=35, amount=20_000.0, close_in=-3),
        deal("opp-2", amount_changes=(change(1, "amount", 100, 200, 3),)),
        deal("opp-3", days_in_stage=35, account_tags=("Strategic",)),
        deal("opp-4", days_in_stage=35, coverage=SourceCoverage(has_activities=False)),
    ]
    snooze = Snooze(opportunity_id="opp-2", rule_id=None, until=AS_OF + dt.timedelta(days=3), reason="later", by="mgr-1")
    baselines = make_baselines()
    return evaluate(deals, [rep(n_open=60)], baselines, load_policy(), AS_OF, [snooze]), baselines


class _NoExecutemany:
    def __init__(self, con):
        self._con = con

    def executemany(self, *a, **k):  # pragma: no cover - the assertion is that it is never reached
        raise AssertionError("store_risk_run used executemany (row by row)")

    def __getattr__(self, name):
        return getattr(self._con, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._con.__exit__(*exc)


def test_a_risk_run_is_stored_in_bulk_with_every_value(tmp_path, monkeypatch):
    run, baselines = _run()
    assert run.flags and run.suppressed and run.not_applicable
    queries = list(baselines.results)
    warehouse = tmp_path / "w.duckdb"
    from agents.warehouse import WarehouseConnection

    def no_executemany(self, *a, **k):  # pragma: no cover - the assertion is that it is never reached
        raise AssertionError("store_risk_run used executemany (row by row)")

    real_init = WarehouseConnection.__init__
    monkeypatch.setattr(WarehouseConnection, "executemany", no_executemany)
    monkeypatch.setattr(WarehouseConnection, "__init__",
                        lambda self, wh, raw: real_init(self, wh, _NoExecutemany(raw)))
    store.store_risk_run(warehouse, run, queries, "run-1")

    with duckdb.connect(str(warehouse), read_only=True) as con:
        flags = con.execute(
            "select flag_id, rule_id, as_of, amount, severity, confidence, priority, playbooks, flag_json "
            "from risk.risk_flags order by flag_id").fetchall()
        assert [(r[0], r[1], r[2]) for r in flags] == sorted((f.flag_id, f.rule_id, f.as_of) for f in run.flags)
        by_id = {f.flag_id: f for f in run.flags}
        for flag_id, _, _, amount, severity, confidence, priority, playbooks, flag_json in flags:
            f = by_id[flag_id]
            assert (amount, severity, confidence, priority) == (f.amount, f.severity, f.confidence, f.priority)
            assert playbooks == ";".join(f.playbooks)
            assert json.loads(flag_json) == json.loads(f.model_dump_json())
        evidence = con.execute("select flag_id, object, record_id, source_url, note from risk.flag_evidence").fetchall()
        assert sorted(evidence, key=str) == sorted(
            ((f.flag_id, r.object, r.record_id, r.source_url, r.note) for f in run.flags for r in f.crm_records), key=str)
        assert con.execute("select count(*) from risk.flag_queries").fetchone()[0] == sum(
            len(f.semantic_query_ids) for f in run.flags)
        supp = con.execute("select flag_id, kind, reason, suppressed_by, until from risk.suppressed_flags").fetchall()
        assert sorted(supp, key=str) == sorted(
            ((s.flag.flag_id, s.kind, s.reason, s.by, s.until) for s in run.suppressed), key=str)
        na = con.execute("select rule_id, reason, subjects from risk.not_applicable").fetchall()
        assert sorted(na) == sorted((n.rule_id, n.reason, n.count) for n in run.not_applicable)
        stored_q = con.execute("select query_id, row_count, as_of from semantic.semantic_queries").fetchall()
        assert sorted(stored_q) == sorted((q.query_id, len(q.rows), AS_OF) for q in queries)


def test_bulk_insert_with_named_columns_casts_to_the_table_types(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute("create schema risk")
        con.execute("create table risk.t (a VARCHAR, d DATE, x DOUBLE, n BIGINT, empty VARCHAR)")
        rows = [["one", dt.date(2026, 10, 1), 1, 2, None], ["two", None, 2.5, None, None]]
        store.bulk_insert(con, "risk.t", rows, columns=["a", "d", "x", "n", "empty"])
        assert con.execute("select * from risk.t order by a").fetchall() == [
            ("one", dt.date(2026, 10, 1), 1.0, 2, None), ("two", None, 2.5, None, None)]
        store.bulk_insert(con, "risk.t", [], columns=["a"])  # nothing to do
        assert con.execute("select count(*) from risk.t").fetchone()[0] == 2


def test_a_risk_run_is_stored_in_bulk_on_postgres_through_copy(postgres_warehouse_url, monkeypatch):
    """The same run stored on PostgreSQL: COPY (never executemany), every value as on DuckDB, and `explain`
    reads it back there."""
    import psycopg

    from agents.risk.explain import explain_opportunity
    from agents.warehouse import Warehouse

    run, baselines = _run()
    wh = Warehouse("postgres", url=postgres_warehouse_url)
    with wh.connect() as con:  # the marts explain reads: the one deal it is asked about
        con.execute("create schema marts")
        con.execute("create table marts.fct_opportunities (opportunity_id text, opportunity_name text, stage text, "
                    "amount double precision, close_date date, owner_rep_id text, segment text, is_closed boolean, "
                    "source_url text)")
        con.execute("insert into marts.fct_opportunities values ('opp-1', 'Acme', 'proposal', 20000, null, 'rep-1', "
                    "'smb', false, null)")
    monkeypatch.setattr(psycopg.Cursor, "executemany", lambda *a, **k: (_ for _ in ()).throw(
        AssertionError("store_risk_run used executemany (row by row)")))
    store.store_risk_run(wh, run, list(baselines.results), "run-pg")
    store.store_risk_run(wh, run, list(baselines.results), "run-pg-2")  # appends (tables exist)
    with wh.connect(read_only=True) as con:
        flags = con.execute("select flag_id, rule_id, as_of, amount, confidence, flag_json from risk.risk_flags "
                            "where run_id = 'run-pg' order by flag_id").fetchall()
        assert [(r[0], r[1], r[2]) for r in flags] == sorted((f.flag_id, f.rule_id, f.as_of) for f in run.flags)
        by_id = {f.flag_id: f for f in run.flags}
        assert all((r[3], r[4]) == (by_id[r[0]].amount, by_id[r[0]].confidence) for r in flags)
        supp = con.execute("select flag_id, kind, until from risk.suppressed_flags where run_id = 'run-pg'").fetchall()
        assert sorted(supp, key=str) == sorted(((s.flag.flag_id, s.kind, s.until) for s in run.suppressed), key=str)
        assert con.execute("select count(*) from semantic.semantic_queries").scalar() == 2 * len(baselines.results)
    explained = explain_opportunity(wh, "opp-1")
    assert explained["run_id"] in ("run-pg", "run-pg-2") and explained["deal"]["opportunity_name"] == "Acme"
    assert sorted(f["rule_id"] for f in explained["flags"]) == sorted(f.rule_id for f in run.flags if f.opportunity_id == "opp-1")
    assert explained["flags"] and explained["queries"]
