"""The accountability metrics (semantic_models/accountability.yml) cross-checked against direct SQL on
the marts, per rep, as of a Monday; and the planted rep cases measured like the deal rules (issue 14)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from agents.accountability.metrics import fetch_rep_metrics
from agents.semantic_layer import SemanticLayer
from sales_supervisor.settings import DBT_PROJECT_DIR

MONDAY = dt.date(2026, 9, 28)
CUT = "2026-09-28 23:59:59"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sql(built_warehouse) -> dict:
    """Direct SQL on the marts, read before MetricFlow opens the file."""
    with duckdb.connect(str(built_warehouse.warehouse), read_only=True) as con:
        def q(text, params=()):
            return con.execute(text, list(params)).fetchall()

        return {
            "won_q3": dict(q(f"""select owner_rep_id, sum(amount) from marts.fct_opportunities
                                where is_won and closed_at >= '2026-07-01' and closed_at <= '{CUT}' group by 1""")),
            "quota_q3": dict(q("select rep_id, quota_amount from marts.fct_quotas where quarter_start = '2026-07-01'")),
            "quota_q4": dict(q("select rep_id, quota_amount from marts.fct_quotas where quarter_start = '2026-10-01'")),
            "closing_q4": dict(q(f"""select owner_rep_id, sum(amount) from marts.fct_opportunities
                                    where created_at <= '{CUT}' and (not is_closed or closed_at > '{CUT}')
                                      and close_date >= '2026-10-01' and close_date < '2027-01-01' group by 1""")),
            "win_recent": {r: (w / n, n) for r, w, n in q(f"""
                select owner_rep_id, sum(case when is_won then 1 else 0 end), sum(case when is_closed then 1 else 0 end)
                from marts.fct_opportunities where closed_at > timestamp '{CUT}' - interval 90 day
                  and cast(closed_at as date) <= date '2026-09-28' group by 1""")},
            "activities": {(r, w, t): n for r, w, t, n in q("""
                select rep_id, date_trunc('week', occurred_at)::date, activity_type, count(*) from marts.fct_activities
                where occurred_at >= '2026-08-03' and occurred_at < '2026-09-28' group by 1, 2, 3""")},
            "created": {(r, w): (n, a) for r, w, n, a in q("""
                select owner_rep_id, date_trunc('week', created_at)::date, count(*), sum(amount) from marts.fct_opportunities
                where created_at >= '2026-08-03' and created_at < '2026-09-28' group by 1, 2""")},
        }


@pytest.fixture(scope="module")
def metrics(built_warehouse, sql):
    d = Path(DBT_PROJECT_DIR)
    with SemanticLayer(d, d, built_warehouse.dbt_target, built_warehouse.warehouse) as layer:
        return fetch_rep_metrics(layer, MONDAY)


def test_attainment_and_coverage_match_direct_sql(metrics, sql):
    assert metrics.has_quotas and metrics.periods.coverage_start == dt.date(2026, 10, 1)
    for rep, quota in sql["quota_q3"].items():
        m = metrics.reps.get(rep)
        if rep not in sql["won_q3"]:
            continue
        assert m.quota == pytest.approx(quota) and m.won_amount == pytest.approx(sql["won_q3"][rep]), rep
        assert m.attainment == pytest.approx(sql["won_q3"][rep] / quota), rep
    checked = 0
    for rep, pipeline in sql["closing_q4"].items():
        m = metrics.reps[rep]
        assert m.pipeline_closing == pytest.approx(pipeline), rep
        if rep in sql["quota_q4"]:
            assert m.coverage == pytest.approx(pipeline / sql["quota_q4"][rep]), rep  # nothing won yet in Q4
            checked += 1
    assert checked >= 20


def test_win_rate_activity_and_pipeline_created_match_direct_sql(metrics, sql):
    for rep, (rate, n) in sql["win_recent"].items():
        assert metrics.reps[rep].win_rate_recent == pytest.approx(rate) and metrics.reps[rep].closed_recent == n, rep
    got = {(r, w, t): n for r, m in metrics.reps.items() for w, types in m.activities_by_week.items() for t, n in types.items()}
    assert got == sql["activities"]
    created = {(r, w): v for r, m in metrics.reps.items() for w, v in m.created_by_week.items()}
    assert set(created) == set(sql["created"])
    for key, (n, amount) in sql["created"].items():
        assert created[key][0] == n and created[key][1] == pytest.approx(amount), key
    assert len(metrics.periods.weeks) == 8 and metrics.periods.weeks[-1] == dt.date(2026, 9, 21)


def test_planted_rep_cases_are_found(built_warehouse):
    from agents.accountability.quality import measure_reps
    from agents.risk.policy import load_policy

    d = Path(DBT_PROJECT_DIR)
    with SemanticLayer(d, d, built_warehouse.dbt_target, built_warehouse.warehouse) as layer:
        monday, rows = measure_reps(built_warehouse.warehouse, layer, load_policy(None), dt.date(2026, 10, 1),
                                    built_warehouse.demo_dir / "ground_truth.csv")
    assert monday == MONDAY
    by_rule = {q.rule_id: q for q in rows}
    assert set(by_rule) == {"low_coverage", "win_rate_drop", "attainment_below_midpoint", "activity_below_floor",
                            "scorecard EXCEEDS"}
    for q in rows:
        assert q.truth >= 1 and q.recall >= 0.9 and q.precision >= 0.8, q.as_row()


def test_a_monday_digest_opens_with_scorecards_and_rep_triggers(built_warehouse, tmp_path):
    """What `sales-supervisor run --as-of 2026-09-28` (a Monday) shows: the weekly scorecards first, then
    rep-level triggers among the items; run on a copy of the session's warehouse (scorecards, flags,
    drafts and digests only)."""
    import shutil

    from sales_supervisor.pipeline import run_daily_job
    from sales_supervisor.settings import Settings

    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(built_warehouse.warehouse, home / "warehouse.duckdb")
    settings = Settings(home=home, crm_source="demo", as_of=MONDAY)
    summary = run_daily_job(settings, selection=["accountability/rep_scorecards", "risk/risk_flags",
                                                 "risk/coaching_drafts", "review/manager_digests"])
    assert summary.success, summary.failures
    digests = sorted((home / "outbox" / "digests" / MONDAY.isoformat()).glob("*.md"))
    assert len(digests) == 3
    text = "\n".join(p.read_text() for p in digests)
    for p in digests:
        body = p.read_text()
        assert body.index("## Weekly scorecards") < body.index("## Decide these first"), p.name
    assert text.count(": MEETS**") + text.count(": EXCEEDS**") + text.count(": BELOW\\_FLOOR") >= 20
    for rule in ("low coverage", "win rate drop", "attainment below midpoint", "activity below floor"):
        assert rule in text, rule
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        verdicts = dict(con.execute("select rep_id, verdict from accountability.scorecards").fetchall())
        run_id = con.execute("select run_id from risk.risk_flags where as_of = ? order by created_at desc limit 1",
                             [MONDAY]).fetchone()[0]
        from agents.risk.store import evidence_report

        evidence = evidence_report(con, run_id)
    assert verdicts["rep-0018"] == "EXCEEDS" and evidence["evidence_rate"] == 1.0
    from agents.ledger import open_ledger

    with open_ledger(home=home) as ledger:
        assert {v.rep_id for v in ledger.verdict_history()} == set(verdicts)
