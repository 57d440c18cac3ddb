"""`sales-supervisor ask "..."`: a question answered only through the semantic layer, with its queries."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table

console = Console()
err = Console(stderr=True)

ROWS_SHOWN = 25

ASK_HELP = """Answer a question from the governed metrics only, with each query's id, SQL and rows.

With ANTHROPIC_API_KEY set, Claude answers through tools that can only list
metrics and run MetricFlow queries (model: SALES_SUPERVISOR_ASK_MODEL, else the
drafter's); without it, or with --offline, a deterministic grammar reads the
question. Exit code 0: answered; 1: cannot be answered (the reason is printed).

\b
The offline grammar (README: "Questions through the semantic layer"):
  metrics   win rate, won / lost / closed deals, open deals, pipeline,
            cycle length (p50/p75), stage duration, stage win rate,
            activities, meetings, meetings per week, any metric name or
            label; "how did ... do" = won, closed deals and win rate
  group-by  by segment, stage, rep, manager, team, account, industry,
            activity type, deal, day, week, month, quarter, year
  filters   smb / mid market / enterprise ("enterprise team" = the reps'
            segment), a stage ("in Negotiation"), "in the <x> industry",
            rep / manager / account / deal <id>, my team
  time      this / last week, month, quarter, year; ytd, qtd, mtd;
            last N days, weeks, months; since YYYY-MM-DD;
            between A and B; in Q3 [2026]; in 2025; in March [2026]
  ranking   top / bottom N reps (...), highest / lowest
  stuck     deals stuck in <stage> for more than N days / weeks

\b
Examples:
  sales-supervisor ask "How did the enterprise team do last quarter?"
  sales-supervisor ask "Show deals stuck in Negotiation for more than
    30 days" --as mgr-0001
  sales-supervisor ask "win rate by segment and quarter" --json
"""


def ask(
    question: Annotated[str, typer.Argument(help="The question, in quotes.")],
    home: Annotated[Optional[Path], typer.Option("--home", help="Folder for all local state (default ./var, or SALES_SUPERVISOR_HOME).")] = None,
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="Count relative periods ('last quarter') from this date (YYYY-MM-DD); default: the run date.")] = None,
    approver: Annotated[Optional[str], typer.Option("--as", help="Answer as this manager (or delegate) id: limited to their team(s), as in Slack and Teams.")] = None,
    offline: Annotated[bool, typer.Option("--offline", help="Use the offline grammar even when an Anthropic key is set.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer as JSON (all rows).")] = False,
    show_sql: Annotated[bool, typer.Option("--sql/--no-sql", help="Show each query's SQL (default: shown).")] = True,
) -> None:
    from agents.ask import answer, make_asker, scope_for
    from sales_supervisor.cli import _open_ledger, _operator_label, _semantic_layer, _settings

    settings = _settings(home=home, as_of=as_of)
    asker = None if offline else make_asker(settings)
    with _open_ledger(home) as ledger:
        scope = None
        if approver:
            scope = scope_for(approver, settings.delegates(), is_manager=not approver.startswith(("slack:", "teams:")))
        with _semantic_layer(settings) as layer:
            result = answer(question, layer=layer, settings=settings, scope=scope, asker=asker, ledger=ledger,
                            actor=_operator_label())
    if as_json:
        console.print_json(result.model_dump_json())
    else:
        print_answer(result, show_sql=show_sql)
    raise typer.Exit(0 if result.answered else 1)


def print_answer(result: Any, *, show_sql: bool = True) -> None:
    from agents.ask.answer import format_value
    from agents.ask.grammar import dimension_words

    style = "green" if result.answered else "yellow"
    console.print(Panel(escape(result.text), title=f"[bold]{escape(result.question)}[/bold]", border_style=style,
                        subtitle=f"{result.engine}, as of {result.as_of}" + (f", as {result.asked_by}" if result.asked_by else "")))
    for hint in result.hints:
        console.print(f"[dim]{escape(hint)}[/dim]", soft_wrap=True)
    for refusal in result.refused_tool_calls:
        console.print(f"[yellow]refused tool call[/yellow] {escape(refusal)}", soft_wrap=True)
    for q in result.queries:
        console.print(f"\n[bold]query {q.query_id}[/bold]: {escape(q.description)}", soft_wrap=True)
        if show_sql:
            console.print(Syntax(q.sql.strip(), "sql", word_wrap=True))
        table = Table(show_lines=False, title=f"{q.row_count} row{'s' if q.row_count != 1 else ''}")
        metrics = set(q.request.get("metrics") or [])
        for c in q.columns:
            table.add_column(c.replace("_", " ") if c in metrics else dimension_words(c), justify="right" if q.rows and isinstance(q.rows[0].get(c), (int, float)) else "left")
        for row in q.rows[:ROWS_SHOWN]:
            table.add_row(*(escape(format_value(c, row.get(c))) for c in q.columns))
        console.print(table)
        if q.row_count > ROWS_SHOWN:
            console.print(f"[dim]{q.row_count - ROWS_SHOWN} more rows (--json shows all)[/dim]")


def slack_ask_function(settings: Any, ledger: Any):
    """``ask(question, approver_id)`` for the Slack ``/ask`` command: one semantic layer for the app's life
    (opened on the first question; it holds the warehouse only while a query runs), the asker's team scope."""
    import threading

    from agents.ask import answer_as

    lock = threading.Lock()
    state: dict[str, Any] = {}

    def ask_fn(question: str, approver_id: str):
        with lock:
            if "layer" not in state:
                from agents.semantic_layer import SemanticLayer
                from sales_supervisor.dbt import prepare_dbt_project
                from sales_supervisor.settings import DBT_PROJECT_DIR

                prepare_dbt_project()
                state["layer"] = SemanticLayer(DBT_PROJECT_DIR, DBT_PROJECT_DIR, DBT_PROJECT_DIR / "target", settings.warehouse_path)
            return answer_as(question, layer=state["layer"], settings=settings, approver_id=approver_id, ledger=ledger)

    return ask_fn


def register(app: typer.Typer) -> None:
    app.command("ask", help=ASK_HELP)(ask)
