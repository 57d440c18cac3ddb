"""The risk step's baselines without a second MetricFlow round (agents/baselines.py): the semantic_layer
step asks the baseline queries on the run's warm engine and keeps their answers with provenance; the
risk step's StoredAnswers serves a request this run already asked (same query id) from that store and
sends anything else to MetricFlow. On the built demo: the numbers equal a fresh MetricFlow answer."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re

import duckdb
import pytest

from agents.baselines import StoredAnswers, store_provenance
from agents.risk.baselines import fetch_baselines, time_filter
from agents.semantic_layer import SemanticQueryRequest, SemanticQueryResult

MANIFEST = hashlib.sha256(b"definitions").hexdigest()
AS_OF = dt.date(2026, 9, 30)


class CountingLayer:
    """A stand-in for agents.semantic_layer.SemanticLayer that answers every request and counts them."""

    manifest_hash = MANIFEST
    engine_id = "fake-engine"

    def __init__(self) -> None:
        self.asked: list[SemanticQueryRequest] = []

    def query(self, metrics, group_by=(), where=None, order_by=None, limit=None) -> SemanticQueryResult:
        request = SemanticQueryRequest(tuple(metrics), tuple(group_by), tuple(where or ()), tuple(order_by or ()), limit)
        self.asked.append(request)
        rows = ({"opportunity__segment": "smb", **{m: 3.5 for m in metrics}, "completed_stints": 40, "closed_deals": 40,
                 "won_deals": 30},) if group_by else ({**{m: 2.5 for m in metrics}, "completed_stints": 90,
                                                        "closed_deals": 90, "won_deals": 50},)
        return SemanticQueryResult(
            query_id=request.query_id(MANIFEST), request=request, sql=f"select /* {','.join(metrics)} */ 1",
            manifest_hash=MANIFEST, columns=tuple(rows[0]), rows=rows,
            result_hash=hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest(), metricflow_version="0.0",
        )


@pytest.fixture
def warehouse(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(path)).close()
    return path


def test_a_request_asked_earlier_in_the_run_is_served_from_the_store(warehouse):
    engine = CountingLayer()
    asked = fetch_baselines(engine, AS_OF)
    store_provenance(warehouse, asked.results, as_of=AS_OF, run_id="run-1")
    assert len(engine.asked) == 5

    stored = StoredAnswers(engine, warehouse, "run-1")
    again = fetch_baselines(stored, AS_OF)
    assert len(engine.asked) == 5  # no MetricFlow round: all five answered from the store
    assert stored.served == set(asked.query_ids)
    assert again.results == asked.results  # same ids, requests, SQL, rows and hashes
    assert again.win_rate("smb").value == asked.win_rate("smb").value == 3.5
    assert stored.engine_id == "fake-engine"  # everything else is the run's layer


def test_other_runs_dates_and_definitions_go_to_metricflow(warehouse):
    engine = CountingLayer()
    store_provenance(warehouse, fetch_baselines(engine, AS_OF).results, as_of=AS_OF, run_id="run-1")
    asked = len(engine.asked)

    other_run = StoredAnswers(engine, warehouse, "run-2")  # another run's answers may be of older marts
    fetch_baselines(other_run, AS_OF)
    assert len(engine.asked) == asked + 5 and not other_run.served

    same_run = StoredAnswers(engine, warehouse, "run-1")
    fetch_baselines(same_run, AS_OF - dt.timedelta(days=1))  # another as-of date: another request
    assert len(engine.asked) == asked + 10 and not same_run.served
    same_run.query(["win_rate"], [], where=time_filter(AS_OF))  # a request nobody stored
    assert len(engine.asked) == asked + 11

    changed = CountingLayer()
    changed.manifest_hash = hashlib.sha256(b"edited definitions").hexdigest()
    fetch_baselines(StoredAnswers(changed, warehouse, "run-1"), AS_OF)
    assert len(changed.asked) == 5  # the metric definitions changed: ask again


def test_a_stored_row_whose_id_does_not_match_its_request_is_not_served(warehouse):
    engine = CountingLayer()
    results = fetch_baselines(engine, AS_OF).results
    store_provenance(warehouse, results, as_of=AS_OF, run_id="run-1")
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update semantic.semantic_queries set request_json = replace(request_json, '2026-09-30', '2026-09-29')"
                    " where query_id = ?", [results[0].query_id])
    stored = StoredAnswers(engine, warehouse, "run-1")
    fetch_baselines(stored, AS_OF)
    assert results[0].query_id not in stored.served and len(stored.served) == 4


@pytest.mark.slow
def test_the_daily_runs_risk_step_used_the_baselines_the_semantic_step_asked(built_warehouse):
    """In the built demo run, the semantic_layer step stored the five baseline answers before the
    risk step wrote its flags (once each: the risk step did not store them again), the flags cite
    them, and they equal a fresh MetricFlow answer."""
    from agents.risk.policy import load_policy
    from agents.semantic_layer import SemanticLayer
    from sales_supervisor.settings import DBT_PROJECT_DIR

    settings = built_warehouse.settings
    as_of = settings.effective_as_of()
    with duckdb.connect(str(built_warehouse.warehouse), read_only=True) as con:
        run_id, flags_at = con.execute(
            "select run_id, min(created_at) from risk.risk_flags group by run_id order by 2 desc limit 1").fetchone()
        stored = con.execute(
            "select query_id, count(*), max(executed_at) from semantic.semantic_queries "
            "where run_id = ? and saved_query is null group by query_id", [run_id]).fetchall()
        cited = {r[0] for r in con.execute("select distinct query_id from risk.flag_queries where run_id = ?",
                                           [run_id]).fetchall()}
    layer = SemanticLayer(DBT_PROJECT_DIR, DBT_PROJECT_DIR, built_warehouse.dbt_target, built_warehouse.warehouse)
    try:
        policy = load_policy()
        fresh = fetch_baselines(layer, as_of, min_closed_deals=policy.min_closed_deals)
        served = StoredAnswers(layer, built_warehouse.warehouse, run_id)
        from_store = fetch_baselines(served, as_of, min_closed_deals=policy.min_closed_deals)
    finally:
        layer.close()
    counts = {q: (n, at) for q, n, at in stored}
    for qid in fresh.query_ids:
        assert counts[qid][1] <= flags_at, qid  # asked before the risk step wrote its flags
    assert len(counts) > len(fresh.query_ids)  # the rep metrics were asked ahead too
    assert all(n == 1 for n, _ in counts.values())  # what the risk step was served, it did not store again
    assert served.served == set(fresh.query_ids)
    # The same numbers as MetricFlow's answer now. Not the same bytes: its SQL text numbers its CTEs per
    # engine, and DuckDB's parallel sums may differ in the last bits between two runs of one query.
    assert [r.query_id for r in from_store.results] == [r.query_id for r in fresh.results]
    for stored_result, fresh_result in zip(from_store.results, fresh.results):
        assert stored_result.rows and len(stored_result.rows) == len(fresh_result.rows)
        for a, b in zip(stored_result.rows, fresh_result.rows):
            assert a.keys() == b.keys()
            assert {k: pytest.approx(v, rel=1e-9) if isinstance(v, float) else v for k, v in a.items()} == b
    assert cited & set(fresh.query_ids)


PG_URL = os.environ.get("SALES_SUPERVISOR_TEST_POSTGRES_URL")


@pytest.mark.skipif(not PG_URL, reason="SALES_SUPERVISOR_TEST_POSTGRES_URL is not set")
def test_stored_answers_are_served_on_postgres_too():
    import psycopg

    from agents.warehouse import Warehouse

    libpq = re.sub(r"^postgresql\+\w+://", "postgresql://", PG_URL)
    db = f"stored_answers_{os.getpid()}"
    with psycopg.connect(libpq, autocommit=True) as admin:
        admin.execute(f"create database {db}")
    try:
        wh = Warehouse("postgres", url=PG_URL.rsplit("/", 1)[0] + "/" + db)
        engine = CountingLayer()
        asked = fetch_baselines(engine, AS_OF)
        store_provenance(wh, asked.results, as_of=AS_OF, run_id="run-1")
        stored = StoredAnswers(engine, wh, "run-1")
        assert fetch_baselines(stored, AS_OF).results == asked.results
        assert len(engine.asked) == 5 and stored.served == set(asked.query_ids)
    finally:
        with psycopg.connect(libpq, autocommit=True) as admin:
            admin.execute(f"drop database {db} with (force)")
