"""Questions answered only through the semantic layer: the offline grammar, refusals, the plan's SQL safety,
team scope, and Claude's tools against a local fake of the Anthropic Messages API (tool_use / tool_result turns)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest

from agents.ask import AskScope, Catalog, answer, scope_for
from agents.ask.claude import TOOL_NAMES, AskConfig, ClaudeAsker
from agents.ask.grammar import Refusal, parse
from agents.ask.plan import Filter, PlanError, QueryPlan, render_filter
from agents.semantic_layer import SemanticLayerError, SemanticQueryRequest, SemanticQueryResult
from sales_supervisor.dbt import prepare_dbt_project
from sales_supervisor.settings import DBT_PROJECT_DIR
from tests.fakes.anthropic_server import FakeAnthropicServer, Reply

AS_OF = dt.date(2026, 10, 1)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    prepare_dbt_project()
    return Catalog.from_manifest_file(DBT_PROJECT_DIR / "target" / "semantic_manifest.json")


def plan_of(catalog, question, **kw) -> QueryPlan:
    plan = parse(question, catalog=catalog, as_of=AS_OF, **kw)
    assert isinstance(plan, QueryPlan), f"{question!r} refused: {plan}"
    plan.validate_against(catalog)
    return plan


def filters(plan) -> set[tuple[str, str, tuple]]:
    return {(f.dimension, f.op, tuple(f.values)) for f in plan.filters}


def period(start: str, end: str) -> set:
    return {("metric_time", ">=", (start,)), ("metric_time", "<=", (end,))}


# -- the grammar ---------------------------------------------------------------------------------

GRAMMAR_CASES = [
    ("How did the enterprise team do last quarter?", ("won_deals", "closed_deals", "win_rate"), (),
     {("rep__segment", "=", ("enterprise",))} | period("2026-07-01", "2026-09-30")),
    ("win rate by segment", ("win_rate",), ("opportunity__segment",), set()),
    ("What is our win rate?", ("win_rate",), (), set()),
    ("win_rate by quarter", ("win_rate",), ("metric_time__quarter",), set()),
    ("win rate by segment and quarter", ("win_rate",), ("opportunity__segment", "metric_time__quarter"), set()),
    ("Win rate for enterprise deals this year", ("win_rate",), (),
     {("opportunity__segment", "=", ("enterprise",))} | period("2026-01-01", "2026-10-01")),
    ("win rate of the mid market reps", ("win_rate",), (), {("rep__segment", "=", ("mid_market",))}),
    ("stage duration p75 by stage for smb deals", ("stage_duration_p75",), ("stage_stint__stage",),
     {("opportunity__segment", "=", ("smb",))}),
    ("median time in stage by stage", ("stage_duration_p50",), ("stage_stint__stage",), set()),
    ("stage win rate by stage", ("stage_win_rate",), ("stage_stint__stage",), set()),
    ("cycle length p75 for mid-market deals by month last year", ("cycle_length_p75",), ("metric_time__month",),
     {("opportunity__segment", "=", ("mid_market",))} | period("2025-01-01", "2025-12-31")),
    ("sales cycle by segment", ("cycle_length_p50",), ("opportunity__segment",), set()),
    ("open pipeline by rep", ("open_pipeline_amount",), ("rep", "rep__rep_name"), set()),
    ("open deals in Negotiation", ("open_deals",), (), {("opportunity__stage", "=", ("Negotiation",))}),
    ("meetings by activity type in Q3 2026", ("meeting_count",), ("activity__activity_type",), period("2026-07-01", "2026-09-30")),
    ("activities per week by stage", ("activities_per_week",), ("stage_stint__stage",), set()),
    ("won deals last month", ("won_deals",), (), period("2026-09-01", "2026-09-30")),
    ("lost deals in the last 90 days", ("lost_deals",), (), period("2026-07-04", "2026-10-01")),
    ("won deals since 2026-03-15", ("won_deals",), (), period("2026-03-15", "2026-10-01")),
    ("closed deals between 2026-01-01 and 2026-03-31", ("closed_deals",), (), period("2026-01-01", "2026-03-31")),
    ("won deals in 2025", ("won_deals",), (), period("2025-01-01", "2025-12-31")),
    ("won deals in March", ("won_deals",), (), period("2026-03-01", "2026-03-31")),
    ("won deals in November", ("won_deals",), (), period("2025-11-01", "2025-11-30")),
    ("won deals ytd", ("won_deals",), (), period("2026-01-01", "2026-10-01")),
    ("top 5 reps by won deals this year", ("won_deals",), ("rep", "rep__rep_name"), period("2026-01-01", "2026-10-01")),
    ("win rate in the software industry", ("win_rate",), (), {("account__industry", "=", ("Software",))}),
    ("win rate by industry", ("win_rate",), ("account__industry",), set()),
    ("win rate for rep rep-0002", ("win_rate",), (), {("rep", "=", ("rep-0002",))}),
    ("won deals by manager", ("won_deals",), ("manager",), set()),
    ("win rate and cycle length by segment", ("win_rate", "cycle_length_p50"), ("opportunity__segment",), set()),
    ("Won deals that left a stage late by stage", ("late_won_exits",), ("stage_exit__stage",), set()),
]


@pytest.mark.parametrize(("question", "metrics", "group_by", "expected_filters"), GRAMMAR_CASES, ids=[c[0] for c in GRAMMAR_CASES])
def test_grammar_reads_metric_group_by_filter_and_time(catalog, question, metrics, group_by, expected_filters):
    plan = plan_of(catalog, question)
    assert plan.metrics == metrics
    assert plan.group_by == group_by
    assert filters(plan) == expected_filters
    assert plan.interpretation  # what it understood, in words


def test_grammar_ranking_orders_and_limits(catalog):
    plan = plan_of(catalog, "top 5 reps by won deals this year")
    assert (plan.order_by, plan.limit) == (("-won_deals",), 5)
    plan = plan_of(catalog, "win rate by segment, lowest first")
    assert plan.order_by == ("win_rate",)


def test_stuck_deals_map_to_open_deals_in_their_current_stage(catalog):
    plan = plan_of(catalog, "Show deals stuck in Negotiation for more than 30 days")
    assert plan.metrics == ("open_deals_in_stage",)
    assert "opportunity" in plan.group_by and "opportunity__deal_name" in plan.group_by
    # More than 30 days before 2026-10-01: entered before 2026-09-01.
    assert filters(plan) == {("stage_stay__stage", "=", ("Negotiation",)), ("stage_stay__entered_stage_at", "<", ("2026-09-01",))}
    weeks = plan_of(catalog, "deals sitting in proposal for over 3 weeks")
    assert ("stage_stay__entered_stage_at", "<", ("2026-09-10",)) in filters(weeks)
    assert ("stage_stay__stage", "=", ("Proposal",)) in filters(weeks)


def test_my_team_needs_a_manager_and_filters_to_them(catalog):
    assert isinstance(parse("win rate for my team", catalog=catalog, as_of=AS_OF), Refusal)
    plan = plan_of(catalog, "win rate for my team", my_team="mgr-0001")
    assert filters(plan) == {("manager", "=", ("mgr-0001",))}


def test_saved_query_by_name(catalog):
    plan = plan_of(catalog, "deal_outcomes_by_segment")
    assert plan.saved_query == "deal_outcomes_by_segment"


REFUSED = [
    ("Why did we lose the Acme deal?", "why-question"),
    ("What will our win rate be next quarter?", "future"),
    ("Forecast pipeline for Q1", "future"),
    ("Send the digest to all reps", "change or send"),
    ("update the stage of opp-000248 to Closed Won", "change or send"),
    ("select * from marts.fct_opportunities", "raw SQL"),
    ("win rate'; drop table marts.fct_opportunities; --", "raw SQL"),
    ("what is the weather in Paris", "no governed metric"),
    ("win rate of left-handed reps", "not understood: 'left-handed'"),
    ("customer satisfaction by segment", "no governed metric"),
    ("win rate by colour", "not understood"),
    ("Show deals stuck in Limbo for more than 30 days", "not a pipeline stage"),
    ("late_won_exits by rep", "cannot be broken down by rep"),
    ("top 3 win rate", "ranking needs something to rank"),
    ("closed deals between 2026-03-01 and 2026-01-01", "ends"),
    ("", "empty"),
]


@pytest.mark.parametrize(("question", "why"), REFUSED, ids=[c[0] or "empty" for c in REFUSED])
def test_unanswerable_questions_are_refused_with_the_reason(catalog, question, why):
    out = parse(question, catalog=catalog, as_of=AS_OF)
    assert isinstance(out, Refusal), f"{question!r} was answered as {out}"
    assert why in out.reason


# -- plans: governed names and quoted literals only -----------------------------------------------

def test_filters_render_literals_never_sql():
    sneaky = Filter(dimension="opportunity__segment", values=("smb' OR 1=1 --",))
    assert render_filter(sneaky, "categorical") == "{{ Dimension('opportunity__segment') }} = 'smb'' OR 1=1 --'"
    assert render_filter(Filter(dimension="metric_time", op=">=", values=("2026-07-01",)), "time") == (
        "{{ TimeDimension('metric_time', 'day') }} >= '2026-07-01'"
    )
    with pytest.raises(PlanError):
        render_filter(Filter(dimension="metric_time", op=">=", values=("now() - interval 1 day",)), "time")
    with pytest.raises(ValueError):
        Filter(dimension="segment') }} or 1=1 {{ ('", values=("x",))
    with pytest.raises(ValueError):
        Filter(dimension="opportunity__segment", op="; drop", values=("x",))


def test_plans_name_only_governed_metrics_and_dimensions(catalog):
    for bad in (
        QueryPlan(metrics=("revenue_we_made_up",)),
        QueryPlan(metrics=("win_rate",), group_by=("stage_exit__stage",)),
        QueryPlan(metrics=("win_rate",), filters=(Filter(dimension="raw__salary", values=("1",)),)),
        QueryPlan(metrics=("win_rate",), order_by=("amount",)),
        QueryPlan(saved_query="drop_everything"),
    ):
        with pytest.raises(PlanError):
            bad.validate_against(catalog)


# -- answering, scoped, against a recording stand-in of the semantic layer ------------------------

class RecordingLayer:
    """The SemanticLayer interface over the real manifest; records queries and answers with fixed rows."""

    def __init__(self, catalog: Catalog, rows=None, fail_on: str | None = None) -> None:
        self.semantic_manifest = catalog.manifest
        self.calls: list[SemanticQueryRequest] = []
        self.rows = rows or [{"win_rate": 0.25, "won_deals": 15, "closed_deals": 60}]
        self.fail_on = fail_on

    def _result(self, request: SemanticQueryRequest) -> SemanticQueryResult:
        self.calls.append(request)
        if self.fail_on and any(self.fail_on in w for w in request.where):
            raise SemanticLayerError("Got error(s) during query resolution.\nError #1: no join path")
        cols = tuple(self.rows[0])
        return SemanticQueryResult(
            query_id=request.query_id("m" * 64), request=request, sql="SELECT 1 -- MetricFlow SQL", manifest_hash="m" * 64,
            columns=cols, rows=tuple(self.rows), result_hash=hashlib.sha256(json.dumps(self.rows).encode()).hexdigest(),
        )

    def query(self, metrics, group_by=(), where=None, order_by=None, limit=None):
        return self._result(SemanticQueryRequest(tuple(metrics), tuple(group_by), tuple(where or ()), tuple(order_by or ()), limit))

    def saved_query(self, name):
        return self._result(SemanticQueryRequest((), (), saved_query=name))


def test_answer_carries_query_ids_sql_and_rows(catalog):
    layer = RecordingLayer(catalog)
    out = answer("How did the enterprise team do last quarter?", layer=layer, as_of=AS_OF, catalog=catalog)
    assert out.answered and out.engine == "grammar"
    assert "Win rate: 25.0%" in out.text and "Won deals: 15" in out.text
    (q,) = out.queries
    assert q.query_id.startswith("mfq_") and q.sql and q.rows == layer.rows
    assert "{{ Dimension('rep__segment') }} = 'enterprise'" in layer.calls[0].where


def test_a_refusal_runs_no_query_and_is_audited(catalog, tmp_path):
    from agents.ledger import open_ledger

    layer = RecordingLayer(catalog)
    with open_ledger(None, home=tmp_path) as ledger:
        out = answer("What will our win rate be next quarter?", layer=layer, as_of=AS_OF, catalog=catalog, ledger=ledger,
                     scope=AskScope("mgr-0001", ("mgr-0001",)))
        assert not out.answered and "future" in out.reason and out.text.startswith("Cannot answer")
        assert layer.calls == []
        (row,) = [r for r in ledger.audit_rows() if r.action.startswith("ask.")]
        assert (row.action, row.actor) == ("ask.refused", "mgr-0001")
        assert ledger.verify_audit().ok


def test_a_managers_questions_are_limited_to_their_team(catalog):
    layer = RecordingLayer(catalog)
    scope = scope_for("mgr-0001", {"mgr-0003": ["mgr-0001"]})
    assert scope.manager_ids == ("mgr-0001", "mgr-0003")
    out = answer("win rate by rep", layer=layer, as_of=AS_OF, catalog=catalog, scope=scope)
    assert out.answered
    assert "{{ Entity('opportunity__manager') }} IN ('mgr-0001', 'mgr-0003')" in layer.calls[-1].where
    # Another manager's team: refused before any query.
    n = len(layer.calls)
    out = answer("win rate for manager mgr-0002", layer=layer, as_of=AS_OF, catalog=catalog, scope=scope)
    assert not out.answered and "own team" in out.reason and len(layer.calls) == n
    # Someone who is neither a manager nor a delegate sees nothing.
    nobody = scope_for("slack:U999", {}, is_manager=False)
    out = answer("win rate", layer=layer, as_of=AS_OF, catalog=catalog, scope=nobody)
    assert not out.answered and "neither a manager nor a delegate" in out.reason


def test_a_baseline_not_kept_per_team_is_answered_company_wide_but_not_deal_level(catalog):
    layer = RecordingLayer(catalog, rows=[{"stage_exit__stage": "Proposal", "late_won_exits": 4}])
    scope = AskScope("mgr-0001", ("mgr-0001",))
    out = answer("late_won_exits by stage", layer=layer, as_of=AS_OF, catalog=catalog, scope=scope)
    assert out.answered and out.queries[0].company_wide and "Company-wide" in out.text
    assert not any("manager" in w for w in layer.calls[-1].where)


# -- Claude: only read-only semantic-layer tools -------------------------------------------------

def tool_use(name: str, tool_input: dict, ident: str = "toolu_1") -> Reply:
    return Reply(body={"content": [{"type": "tool_use", "id": ident, "name": name, "input": tool_input}], "stop_reason": "tool_use"})


def asker(server) -> ClaudeAsker:
    return ClaudeAsker(AskConfig(api_key="test-key-not-real", base_url=server.base_url, model="claude-test", max_retries=0))


def tool_results(request) -> list[dict]:
    return [b for m in request.body["messages"] if m["role"] == "user" and isinstance(m["content"], list)
            for b in m["content"] if b.get("type") == "tool_result"]


def test_claude_lists_metrics_runs_a_metricflow_query_and_cites_it(catalog):
    layer = RecordingLayer(catalog)
    with FakeAnthropicServer() as server:
        server.enqueue(
            tool_use("list_metrics", {}),
            tool_use("list_dimensions", {"metrics": ["win_rate"]}, "toolu_2"),
            tool_use("run_metric_query", {
                "metrics": ["win_rate", "won_deals", "closed_deals"],
                "filters": [{"dimension": "rep__segment", "op": "=", "values": ["enterprise"]},
                            {"dimension": "metric_time", "op": ">=", "values": ["2026-07-01"]},
                            {"dimension": "metric_time", "op": "<=", "values": ["2026-09-30"]}],
            }, "toolu_3"),
            Reply.text("The enterprise team won 15 of 60 closed deals last quarter, a 25.0% win rate [mfq_x]."),
        )
        out = answer("How did the enterprise team do last quarter?", layer=layer, as_of=AS_OF, catalog=catalog, asker=asker(server))
        requests = server.message_requests()
    assert out.answered and out.engine == "claude:claude-test" and "25.0%" in out.text
    assert len(out.queries) == 1 and out.queries[0].sql and out.refused_tool_calls == []
    assert "{{ TimeDimension('metric_time', 'day') }} >= '2026-07-01'" in layer.calls[0].where
    first = requests[0].body
    assert [t["name"] for t in first["tools"]] == list(TOOL_NAMES)
    assert first["system"][0]["cache_control"] == {"type": "ephemeral"}
    # No tool takes SQL or a filter expression: every property is a name, an operator from a list, or a literal.
    schema = json.dumps(first["tools"]).lower()
    assert '"sql"' not in schema and "where" not in schema
    assert "As-of date: 2026-10-01" in first["messages"][0]["content"]
    # The tool results went back on the wire as tool_result turns; the query result carries its id.
    results = tool_results(requests[-1])
    assert len(results) == 3 and not any(r.get("is_error") for r in results)
    assert out.queries[0].query_id in results[-1]["content"]
    assert "win_rate" in results[0]["content"] and "rep__segment" in results[1]["content"]


def test_claude_cannot_run_sql_or_unknown_tools(catalog):
    layer = RecordingLayer(catalog)
    with FakeAnthropicServer() as server:
        server.enqueue(
            tool_use("run_sql", {"sql": "select * from marts.fct_opportunities"}),
            tool_use("run_metric_query", {"metrics": ["win_rate"], "sql": "select 1"}, "toolu_2"),
            tool_use("run_metric_query", {"metrics": ["win_rate"], "filters": [
                {"dimension": "opportunity__segment = 'smb' or 1=1 --", "op": "=", "values": ["x"]}]}, "toolu_3"),
            tool_use("run_metric_query", {"metrics": ["win_rate"], "filters": [
                {"dimension": "opportunity__segment", "op": "like", "values": ["%"]}]}, "toolu_4"),
            tool_use("run_metric_query", {"metrics": ["salaries"]}, "toolu_5"),
            tool_use("update_crm", {"opportunity_id": "opp-1", "stage": "Closed Won"}, "toolu_6"),
            Reply.text("Win rate is 99%."),
        )
        out = answer("win rate", layer=layer, as_of=AS_OF, catalog=catalog, asker=asker(server))
        requests = server.message_requests()
    assert layer.calls == []  # nothing reached the semantic layer, let alone the warehouse
    assert len(out.refused_tool_calls) == 6
    assert out.refused_tool_calls[0].startswith("run_sql: unknown tool")
    assert "update_crm: unknown tool" in out.refused_tool_calls[5]
    assert all(r.get("is_error") for r in tool_results(requests[-1]))
    # An answer resting on no governed query is no answer.
    assert not out.answered and "without running a governed query" in out.text


def test_claude_saying_it_cannot_answer_is_a_refusal(catalog):
    layer = RecordingLayer(catalog)
    with FakeAnthropicServer() as server:
        server.enqueue(tool_use("list_metrics", {}), Reply.text("CANNOT ANSWER: the metrics hold no forecasts."))
        out = answer("Will we hit quota?", layer=layer, as_of=AS_OF, catalog=catalog, asker=asker(server))
    assert not out.answered and out.reason == "the metrics hold no forecasts."


def test_claude_queries_are_scoped_like_the_grammars(catalog):
    layer = RecordingLayer(catalog)
    with FakeAnthropicServer() as server:
        server.enqueue(
            tool_use("run_metric_query", {"metrics": ["win_rate"], "filters": [{"dimension": "manager", "op": "=", "values": ["mgr-0002"]}]}),
            tool_use("run_metric_query", {"metrics": ["win_rate"], "group_by": ["rep"]}, "toolu_2"),
            Reply.text("Your team's win rate is 25.0% [mfq]."),
        )
        out = answer("win rate by rep", layer=layer, as_of=AS_OF, catalog=catalog, asker=asker(server),
                     scope=AskScope("mgr-0001", ("mgr-0001",)))
    assert out.answered and "own team" in out.refused_tool_calls[0]
    assert "{{ Entity('opportunity__manager') }} IN ('mgr-0001')" in layer.calls[-1].where


def test_claude_stops_at_the_question_budget(catalog):
    layer = RecordingLayer(catalog)
    with FakeAnthropicServer() as server:
        server.enqueue(tool_use("list_metrics", {}))
        cfg = AskConfig(api_key="k", base_url=server.base_url, model="claude-test", max_retries=0, budget_usd=0.0)
        out = answer("win rate", layer=layer, as_of=AS_OF, catalog=catalog, asker=ClaudeAsker(cfg))
        assert server.message_requests() == []
    assert not out.answered and out.reason == "budget exhausted"


# -- end to end: the real semantic layer on the demo warehouse, through the CLI --------------------

@pytest.mark.slow
def test_ask_cli_answers_through_metricflow_on_the_demo(built_warehouse):
    from typer.testing import CliRunner

    from sales_supervisor.cli import app

    runner = CliRunner()
    home = str(built_warehouse.home)
    res = runner.invoke(app, ["ask", "How did the enterprise team do last quarter?", "--home", home, "--offline", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    (q,) = out["queries"]
    assert q["query_id"].startswith("mfq_") and "rep__segment" in q["sql"] and "'2026-07-01'" in q["sql"]
    row = q["rows"][0]
    assert row["closed_deals"] > 0 and row["win_rate"] == pytest.approx(row["won_deals"] / row["closed_deals"])

    res = runner.invoke(app, ["ask", "Show deals stuck in Negotiation for more than 30 days", "--home", home, "--offline", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)["queries"][0]["rows"]
    assert rows and all(r["stage_stay__entered_stage_at__day"][:10] < "2026-09-01" for r in rows)
    assert all(r["opportunity__deal_name"] for r in rows)
    # Check against the marts: the same deals, computed independently.
    import duckdb

    with duckdb.connect(str(built_warehouse.warehouse), read_only=True) as con:
        expected = {r[0] for r in con.execute(
            "select opportunity_id from marts.fct_stage_history where is_current and deal_outcome = 'open' "
            "and stage = 'Negotiation' and cast(entered_at as date) < date '2026-09-01'").fetchall()}
        manager = con.execute("select manager_id from marts.fct_opportunities where opportunity_id = ?",
                              [rows[0]["opportunity"]]).fetchone()[0]
    assert {r["opportunity"] for r in rows} == expected

    # As that deal's manager: only their team's deals; rich output shows the query id, SQL and rows.
    res = runner.invoke(app, ["ask", "Show deals stuck in Negotiation for more than 30 days", "--home", home, "--offline",
                              "--as", manager], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "query mfq_" in res.output and "SELECT" in res.output and f"IN ('{manager}')" in res.output
    assert rows[0]["opportunity__deal_name"] in res.output

    res = runner.invoke(app, ["ask", "Why did we lose?", "--home", home, "--offline"])
    assert res.exit_code == 1 and "Cannot answer" in res.output


def test_claude_citing_a_number_not_in_the_rows_is_rejected(catalog):
    from agents.ask.claude import unsupported_numbers

    layer = RecordingLayer(catalog)
    query = {"metrics": ["win_rate", "won_deals", "closed_deals"]}
    with FakeAnthropicServer() as server:
        server.enqueue(tool_use("run_metric_query", query), Reply.text("Win rate was 31.0% on 15 won of 60 closed [mfq_1]."))
        out = answer("win rate", layer=layer, as_of=AS_OF, catalog=catalog, asker=asker(server))
    assert not out.answered and "31.0%" in out.reason and "15" not in out.reason
    assert out.queries  # what it did run is still shown
    # Rounded values, percentages, counts of rows, dates and the question's own numbers are fine.
    (q,) = out.queries
    assert unsupported_numbers("Win rate 25% (25.0%), 15 of 60, 1 row, since 2026-07-01, top 5 [mfq_ab12]", [q], "top 5 by win rate", AS_OF) == []
    assert unsupported_numbers("Win rate 26%", [q], "win rate", AS_OF) == ["26%"]


def test_answer_as_scopes_by_the_settings_delegates(catalog, tmp_path):
    from agents.ask import answer_as
    from sales_supervisor.settings import Settings

    delegates = tmp_path / "delegates.yaml"
    delegates.write_text("mgr-0003: [dlg-9]\n")
    settings = Settings(home=tmp_path, delegates_file=delegates)
    layer = RecordingLayer(catalog)
    out = answer_as("win rate by rep", layer=layer, settings=settings, approver_id="dlg-9", offline=True, catalog=catalog)
    assert out.answered and out.scope == ["dlg-9", "mgr-0003"]
    assert "IN ('dlg-9', 'mgr-0003')" in layer.calls[-1].where[-1]
    unrestricted = answer_as("win rate by rep", layer=layer, settings=settings, offline=True, catalog=catalog)
    assert unrestricted.scope is None and not any("manager" in w for w in layer.calls[-1].where)


@pytest.mark.parametrize(("question", "metrics"), [
    ("What's the win rate for smb this quarter?", ("win_rate",)),
    ("How many deals did we win last month?", ("won_deals",)),
    ("How many deals did we lose in Q2?", ("lost_deals",)),
    ("What is the enterprise team's win rate?", ("win_rate",)),
])
def test_everyday_phrasings(catalog, question, metrics):
    assert plan_of(catalog, question).metrics == metrics
