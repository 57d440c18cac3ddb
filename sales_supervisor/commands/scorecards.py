"""`sales-supervisor scorecards ...`: weekly rep scorecards from a terminal (issue 14).

- ``scorecards list [--as-of D]``: the latest scorecards with their verdicts;
- ``scorecards history [REP]``: a rep's verdict history (the review ledger);
- ``scorecards confirm ITEM``: record a manager-only verdict (BELOW_FLOOR_PIP, CRITICAL) after an
  explicit second confirmation (type the verdict, or pass it with --verdict). It is never sent to the rep.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

scorecards_app = typer.Typer(help="Weekly rep scorecards: list them, a rep's verdict history, confirm a manager-only verdict.",
                             no_args_is_help=True)

HomeOpt = Annotated[Optional[Path], typer.Option("--home", help="State folder (default: SALES_SUPERVISOR_HOME or ./var).")]


def _cli():
    from sales_supervisor import cli

    return cli


@scorecards_app.command("list")
def scorecards_list(
    home: HomeOpt = None,
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="Scorecard date (default: the latest built).")] = None,
) -> None:
    """The scorecards of the latest scorecard day (or --as-of), most serious verdict first."""
    import datetime as dt
    import json

    from agents.warehouse import Warehouse

    cli = _cli()
    settings = cli._settings(home=home)
    warehouse = Warehouse.from_settings(settings)
    if not warehouse.exists():
        cli.err.print("[red]No warehouse yet: run the pipeline on a scorecard day first (`make demo-monday`).[/red]")
        raise typer.Exit(2)
    try:
        day = dt.date.fromisoformat(as_of) if as_of else None
    except ValueError:
        cli.err.print(f"[red]--as-of must be a date like 2026-09-28, got {as_of!r}[/red]")
        raise typer.Exit(2) from None
    with warehouse.connect(read_only=True) as con:
        if not con.has_table("accountability", "scorecards"):
            cli.err.print("[yellow]No scorecards built yet: they are built on runs as of the policy's scorecard weekday (Monday).[/yellow]")
            raise typer.Exit(1)
        run = con.execute(
            "select run_id, as_of from accountability.scorecards " + ("where as_of = :as_of " if day else "")
            + "order by created_at desc limit 1", {"as_of": day} if day else None).fetchone()
        if run is None:
            cli.err.print(f"[yellow]No scorecards as of {as_of}.[/yellow]")
            raise typer.Exit(1)
        rows = con.execute("select scorecard_json from accountability.scorecards where run_id = :r", {"r": run[0]}).fetchall()
    order = {"CRITICAL": 0, "BELOW_FLOOR_PIP": 1, "BELOW_FLOOR": 2, "MEETS": 3, "EXCEEDS": 4}
    cards = sorted((json.loads(r[0]) for r in rows), key=lambda c: (order.get(c["verdict"], 9), c.get("rep_name") or ""))
    table = Table(title=f"Weekly scorecards as of {run[1]} ({len(cards)} reps)")
    for col in ("rep", "verdict", "act/wk", "mtg/wk", "cover", "attain", "floors missed"):
        table.add_column(col, no_wrap=col in ("verdict", "act/wk", "mtg/wk", "cover", "attain"))

    def f(v, fmt):
        return "-" if v is None else format(v, fmt)

    for c in cards:
        s = c["scalars"]
        missed = ", ".join(fl["name"] for fl in c.get("floors", []) if not fl["met"]) or "-"
        table.add_row(c.get("rep_name") or c["rep_id"], c["verdict"], f(s.get("activities_per_week"), ".0f"),
                      f(s.get("meetings_per_week"), ".0f"), f(c.get("coverage"), ".1f") + ("x" if c.get("coverage") is not None else ""),
                      f(c.get("attainment"), ".0%"), missed)
    cli.console.print(table)


@scorecards_app.command("history")
def scorecards_history(rep: Annotated[Optional[str], typer.Argument(help="A rep id (default: every rep).")] = None,
                       home: HomeOpt = None) -> None:
    """A rep's verdict history, oldest first (kept in the review ledger, audited)."""
    cli = _cli()
    with cli._open_ledger(home) as ledger:
        rows = ledger.verdict_history(rep)
    if not rows:
        cli.console.print("No verdicts recorded yet." if rep is None else f"No verdicts recorded for {rep}.")
        return
    table = Table(title="Scorecard verdict history")
    for col in ("rep", "week of", "verdict", "previous", "why"):
        table.add_column(col, no_wrap=col in ("week of", "verdict", "previous"))
    for v in rows:
        name = (v.scorecard or {}).get("rep_name") or v.rep_id
        table.add_row(f"{name} ({v.rep_id})", v.as_of.isoformat(), v.verdict, v.previous_verdict or "-", v.reason or "-")
    cli.console.print(table)


@scorecards_app.command("confirm")
def scorecards_confirm(
    item_id: str,
    verdict: Annotated[Optional[str], typer.Option("--verdict", help="The verdict, typed again: the second confirmation (asked for when left out).")] = None,
    approver: Annotated[Optional[str], typer.Option("--as", help="Act as this approver id (you, or as that manager's delegate).")] = None,
    home: HomeOpt = None,
) -> None:
    """Record a manager-only scorecard verdict (BELOW_FLOOR_PIP or CRITICAL) after a second confirmation.
    It stays with you: the system never sends it to the rep."""
    from rich.markup import escape

    from agents.ledger import LedgerError
    from agents.ledger.audience import is_manager_only

    cli = _cli()
    approver, operator = cli._acting_as(approver, home)
    with cli._open_ledger(home) as ledger:
        item_id = cli._resolve_item_id(ledger, item_id)
        item = ledger.get_item(item_id)
        if item is None:
            cli.err.print(f"[red]No item {item_id!r}.[/red]")
            raise typer.Exit(2)
        if not is_manager_only(item):
            cli.err.print(f"[red]Item {item_id} is not a manager-only verdict: use `sales-supervisor review approve`.[/red]")
            raise typer.Exit(2)
        flag = (item.evidence or {}).get("flag") or {}
        expected = str(flag.get("observed"))
        rep = ((item.evidence or {}).get("rep") or {}).get("rep_name") or item.rep_id
        cli.console.print(f"{expected} for {rep}: {flag.get('message', '')}\nRecording it keeps it in the rep's "
                          "history and the audit trail; it is never sent to the rep.", soft_wrap=True, markup=False)
        typed = verdict if verdict is not None else typer.prompt(f"Type {expected} to confirm")
        if typed.strip().upper() != expected:
            cli.err.print(f"[red]Not confirmed ({typed!r} is not {expected}); nothing recorded.[/red]")
            raise typer.Exit(5)
        try:
            decision = ledger.record_decision(item_id, "approve", approver, "cli", operator=operator, confirmed=True,
                                              reason=f"second confirmation: {expected}")
        except LedgerError as exc:
            cli.err.print(f"[red]Refused:[/red] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(3) from None
    cli.console.print(f"Recorded: {expected} for {rep} confirmed by {decision.approver_id} (item {item_id}); "
                      "manager only, never sent to the rep.", soft_wrap=True, markup=False)


@scorecards_app.command("backtest")
def scorecards_backtest(
    start: Annotated[Optional[str], typer.Option(help="First replay date (default: a year before the as-of date).")] = None,
    end: Annotated[Optional[str], typer.Option(help="Last replay date (default: the start of the as-of date's quarter).")] = None,
    step_days: Annotated[int, typer.Option(help="Days between replay dates.")] = 28,
    home: HomeOpt = None,
) -> None:
    """Replay the rep-level triggers as of past dates: does a coverage gap (or any trigger) precede a missed quarter?"""
    import datetime as dt

    from agents.accountability.metrics import quarter_start
    from agents.accountability.quality import rep_backtest

    cli = _cli()
    settings = cli._settings(home=home)
    as_of = settings.effective_as_of()
    end_d = dt.date.fromisoformat(end) if end else quarter_start(as_of) - dt.timedelta(days=1)
    start_d = dt.date.fromisoformat(start) if start else end_d - dt.timedelta(days=365)
    if step_days < 1 or start_d > end_d:
        cli.err.print("[red]--start must be on or before --end, and --step-days at least 1.[/red]")
        raise typer.Exit(2)
    dates = []
    d = start_d
    while d <= end_d:
        dates.append(d)
        d += dt.timedelta(days=step_days)
    with cli._semantic_layer(settings) as layer:
        rows = rep_backtest(settings.warehouse_path, layer, settings.risk_policy_in_force(), dates)
    table = Table(title=f"Rep-level triggers replayed on {len(dates)} dates {start_d}..{end_d}: later missed the quarter?")
    for col in ("trigger", "flagged", "missed", "not flagged", "missed ", "lift"):
        table.add_column(col, justify="left" if col == "trigger" else "right")

    def pct(x):
        return "-" if x is None else f"{x:.0%}"

    for r in rows:
        table.add_row(r["trigger"], str(r["flagged"]), pct(r["flagged_missed_rate"]), str(r["unflagged"]),
                      pct(r["unflagged_missed_rate"]), "-" if r["lift"] is None else f"{r['lift']:.2f}")
    cli.console.print(table)
