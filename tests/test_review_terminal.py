"""The terminal review (issue 12.9 and 12.6): `review list` highest priority first (per rep or team-wide),
`--held-back`, `review show` / `explain` with the flag, baseline, CRM rows, query pages and decision history."""

from __future__ import annotations

import datetime as dt

import pytest
from typer.testing import CliRunner

from agents.ledger import open_ledger
from agents.review.digests import build_digests
from agents.review.posting import post_digest
from agents.review.queue import order_queue
from agents.review.recurrence import HeldBack
from sales_supervisor.cli import app
from tests.test_review_fixtures import AS_OF, MANAGERS, REPS, make_draft, make_flag, pairs

runner = CliRunner()


@pytest.fixture
def home(tmp_path):
    detail = {
        "query_id": "sq_stage_duration", "saved_query": "deal_curve", "sql": "SELECT 42 AS answer", "row_count": 1,
        "rows": [{"stage_duration_p75": 30.0}], "metricflow_version": "0.x", "executed_at": "2026-10-01", "manifest_hash": "h",
        "request": {"metrics": ["stage_duration_p75"], "group_by": [], "where": []},
    }
    held = HeldBack(flag_id="f-h", rule_id="no_recent_activity", opportunity_id="opp-h", rep_id="rep-1", severity="low",
                    amount=100.0, kind="cap", why="below the top 2 of this rep", deal_name="Held Deal Ltd")
    digests = build_digests(pairs(), REPS, MANAGERS, AS_OF, 2, held_back=[held], query_details={"sq_stage_duration": detail})
    with open_ledger(home=tmp_path) as ledger:
        for d in digests:
            post_digest(ledger, d, None, tmp_path / "outbox")
    return tmp_path


def _list(home, *args):
    result = runner.invoke(app, ["review", "list", "--home", str(home), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_review_list_is_highest_priority_first(home):
    out = _list(home, "--manager", "mgr-1")
    # rep-1: opp-b (critical, 40k) before opp-a (medium, 50k); then rep-2
    assert out.index("opp-b") < out.index("opp-a") < out.index("opp-d")
    assert " 1. " in out and " 2. " in out
    team = _list(home, "--rank", "team")
    assert team.index("opp-b") < team.index("opp-a") < team.index("opp-d") < team.index("opp-e")


def test_order_queue_ranks_team_wide_by_severity_x_amount(home):
    with open_ledger(home=home) as ledger:
        items = ledger.pending_items()
    by_team = [it.opportunity_id for it in order_queue(items, "team")]
    assert by_team == ["opp-b", "opp-a", "opp-d", "opp-e"]
    by_rep = [it.opportunity_id for it in order_queue(items, "rep")]
    assert by_rep[:3] == ["opp-b", "opp-a", "opp-d"]


def test_held_back_listed_with_why(home):
    out = _list(home, "--held-back")
    assert "Held Deal Ltd" in out and "below the top 2 of this rep" in out
    assert "opp-c" in out  # held back by the digest's own per-rep cap


def test_review_show_and_explain(home):
    with open_ledger(home=home) as ledger:
        item = next(it for it in ledger.pending_items() if it.opportunity_id == "opp-b")
        ledger.record_decision(item.item_id, "dismiss", "mgr-1", "cli", reason="already in legal")
    shown = runner.invoke(app, ["review", "show", item.item_id[:8], "--home", str(home)])
    assert shown.exit_code == 0, shown.output
    for text in ("Book a pricing review", "stalled_in_stage", "stage_duration_p75", "entered Proposal", "dismiss", "already in legal"):
        assert text in shown.output, text
    explained = runner.invoke(app, ["explain", item.item_id[:8], "--home", str(home)])
    assert explained.exit_code == 0 and "SELECT 42 AS answer" in explained.output
    missing = runner.invoke(app, ["explain", "zzzz", "--home", str(home)])
    assert missing.exit_code == 2


def test_risk_explain_reads_the_latest_run(tmp_path):
    import duckdb

    flag = make_flag("opp-a", "rep-1")
    wh = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(wh)) as con:
        con.execute("create schema risk; create schema marts; create schema semantic")
        con.execute("create table risk.risk_flags (run_id varchar, as_of date, opportunity_id varchar, flag_json varchar, created_at timestamp)")
        con.execute("insert into risk.risk_flags values ('run-1', ?, 'opp-a', ?, now())", [AS_OF, flag.model_dump_json()])
        con.execute("create table risk.suppressed_flags (run_id varchar, subject_id varchar, rule_id varchar, kind varchar, reason varchar, suppressed_by varchar, until date)")
        con.execute("insert into risk.suppressed_flags values ('run-1', 'opp-a', 'no_recent_activity', 'snooze', 'on holiday', 'mgr-1', ?)", [AS_OF + dt.timedelta(days=7)])
        con.execute("""create table marts.fct_opportunities as select 'opp-a' as opportunity_id, 'Acme renewal' as opportunity_name,
                       'Proposal' as stage, 10000.0 as amount, date '2026-11-01' as close_date, 'rep-1' as owner_rep_id,
                       'smb' as segment, false as is_closed, null as source_url""")
        con.execute("create table semantic.semantic_queries (query_id varchar, saved_query varchar, sql varchar, rows_json varchar, run_id varchar)")
    result = runner.invoke(app, ["risk", "explain", "opp-a", "--home", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for text in ("Acme renewal", "stalled_in_stage", "observed 64", "entered Proposal", "suppressed (snooze)", "on holiday"):
        assert text in result.output, text


@pytest.mark.parametrize("args", [["explain"], ["review", "show"], ["risk", "explain"], ["review", "list"]])
def test_new_commands_have_help(args):
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output
