"""The `sales-supervisor` command line: what a person does outside the Dagster UI."""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sales_supervisor.settings import Settings

app = typer.Typer(
    name="sales-supervisor",
    help="A governed sales supervisor on Dagster and a dbt semantic layer. Every command has --help.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err = Console(stderr=True)

HomeOpt = Annotated[Optional[Path], typer.Option("--home", help="Folder for all local state (default ./var, or SALES_SUPERVISOR_HOME).")]
AsOfOpt = Annotated[Optional[str], typer.Option("--as-of", help="Run as of this date (YYYY-MM-DD). Default: the demo anchor for the demo CRM, else today.")]


def _settings(**overrides) -> Settings:
    clean = {k: v for k, v in overrides.items() if v is not None}
    if "as_of" in clean:
        try:
            clean["as_of"] = dt.date.fromisoformat(clean["as_of"])
        except ValueError:
            err.print(f"[red]--as-of must be a date like 2026-10-01, got {clean['as_of']!r}[/red]")
            raise typer.Exit(2) from None
    try:
        return Settings(**clean)
    except Exception as exc:  # pydantic ValidationError: show it plainly
        err.print(f"[red]Invalid settings:[/red] {exc}")
        raise typer.Exit(2) from None


def _print_run(summary, settings: Settings, started: float) -> None:
    from sales_supervisor.pipeline import warehouse_counts

    status = "[green]succeeded[/green]" if summary.success else "[red]FAILED[/red]"
    console.print(f"\nRun {summary.run_id[:8]} {status} in {time.monotonic() - started:.0f} s (as of {summary.as_of}).")
    for failure in summary.failures:
        console.print(f"  [red]step failed[/red] {failure}")
    counts = warehouse_counts(summary.warehouse)
    table = Table(title="What it produced", show_lines=False)
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, n in counts.items():
        table.add_row(name, f"{n:,}")
    console.print(table)
    from sales_supervisor.pipeline import run_highlights

    highlights = run_highlights(summary.warehouse, summary.run_id)
    if highlights["flags_by_rule"]:
        total = sum(n for _, n in highlights["flags_by_rule"])
        console.print(f"\nRisk flags: {total} (" + ", ".join(f"{rule} {n}" for rule, n in highlights["flags_by_rule"]) + ")")
    if highlights["drafts"]:
        console.print("Top drafted coaching actions (shadow mode: nothing is sent until a manager approves):")
        for subject, rule, severity, action, drafter in highlights["drafts"]:
            console.print(escape(f"  [{severity}] {subject} {rule}: {action}  ({drafter})"), soft_wrap=True)
    checks = summary.checks
    failed = summary.failed_checks
    console.print(f"Checks: {len(checks) - len(failed)} of {len(checks)} passed.")
    for c in failed:
        colour = "yellow" if c["severity"] == "WARN" else "red"
        console.print(f"  [{colour}]{c['severity']}[/{colour}] {c['asset']} {c['check']}: {c['description']}")
    console.print(
        "\nWhere things are:\n"
        f"  warehouse (DuckDB)   {settings.warehouse_path}\n"
        f"  demo CRM extract     {settings.demo_dir if settings.crm_source == 'demo' else settings.csv_folder}\n"
        f"  Dagster run history  {settings.home_dir / 'dagster'}   (see it with: make dev)\n"
        + (f"  step output (dbt)    {summary.log_path}\n" if summary.log_path else "")
    )


@app.command()
def run(
    home: HomeOpt = None,
    as_of: AsOfOpt = None,
    source: Annotated[Optional[str], typer.Option(help="CRM source: demo or csv.")] = None,
    csv_folder: Annotated[Optional[Path], typer.Option(help="Folder of CSV exports (with --source csv).")] = None,
    mapping: Annotated[Optional[Path], typer.Option(help="Column-mapping YAML for the CSV folder.")] = None,
    scale: Annotated[Optional[int], typer.Option(help="Demo CRM scale (multiplies reps and deals).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Dagster's step logs.")] = False,
) -> None:
    """Run the daily job once (landing, dbt marts, semantic layer, checks) and print what it produced."""
    settings = _settings(home=home, as_of=as_of, crm_source=source, csv_folder=csv_folder, csv_mapping=mapping, demo_scale=scale)
    from sales_supervisor.pipeline import run_daily_job

    started = time.monotonic()
    console.print(
        f"Running the daily job on the [bold]{settings.crm_source}[/bold] CRM as of {settings.effective_as_of()} "
        f"(state in {settings.home_dir}); this takes a minute or two..."
    )
    summary = run_daily_job(settings, log_level="INFO" if verbose else "WARNING", quiet_steps=not verbose)
    _print_run(summary, settings, started)
    if not summary.success:
        raise typer.Exit(1)


@app.command()
def demo(
    home: HomeOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Dagster's step logs.")] = False,
) -> None:
    """Run the whole pipeline once on the built-in demo CRM (what `make demo` does)."""
    run(home=home, as_of=None, source="demo", csv_folder=None, mapping=None, scale=None, verbose=verbose)


@app.command("generate-demo-crm")
def generate_demo_crm_cmd(
    out: Annotated[Path, typer.Option(help="Folder to write the CSV files into (must not exist or be empty).")],
    scale: Annotated[int, typer.Option(min=1, help="Multiplies reps and deals (1 = 24 reps, ~3,600 deals).")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives byte-identical files.")] = 7,
) -> None:
    """Write the demo CRM (CSV files, ground truth of planted risks, manifest) to a folder."""
    from connectors.demo.generator import generate_demo_crm

    if out.exists() and any(out.iterdir()):
        err.print(f"[red]{out} exists and is not empty; choose a new folder.[/red]")
        raise typer.Exit(2)
    started = time.monotonic()
    last = [0.0]

    def progress(phase: str, count: int) -> None:
        now = time.monotonic()
        if now - last[0] > 2:
            last[0] = now
            err.print(f"  {phase}: {count:,}")

    manifest = generate_demo_crm(out, seed=seed, scale=scale, progress=progress)
    console.print(f"Wrote the demo CRM (seed {seed}, scale {scale}) to {out} in {time.monotonic() - started:.1f} s:")
    for name, n in manifest.get("row_counts", {}).items():
        console.print(f"  {name:<24} {n:>12,}")


@app.command("eval")
def eval_cmd(
    drafter: Annotated[str, typer.Option(help="auto (Claude if ANTHROPIC_API_KEY is set, else template), template or claude.")] = "auto",
    gate: Annotated[float, typer.Option(help="Minimum overall pass rate; below it the command exits 1.")] = 0.9,
    out: Annotated[Optional[Path], typer.Option(help="Where to store the result (default <home>/evals/latest.json, read by the live-mode gate).")] = None,
    home: HomeOpt = None,
) -> None:
    """Run the drafter over the golden set, print pass rates per property, store the result for the live-mode gate."""
    from evals.run import main as eval_main

    settings = _settings(home=home)
    target = out or settings.home_dir / "evals" / "latest.json"
    code = eval_main(["--drafter", drafter, "--gate", str(gate), "--out", str(target)])
    raise typer.Exit(code or 0)


audit_app = typer.Typer(help="The append-only, hash-chained audit trail.", no_args_is_help=True)
review_app = typer.Typer(help="Review coaching items from a terminal: list, approve, edit, dismiss.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(review_app, name="review")


def _open_ledger(home: Path | None):
    from agents.ledger import open_ledger

    settings = _settings(home=home)
    settings.home_dir.mkdir(parents=True, exist_ok=True)
    return open_ledger(settings.ledger_url, home=settings.home_dir, delegates=settings.delegates())


@audit_app.command("verify")
def audit_verify(
    home: HomeOpt = None,
    anchor: Annotated[Optional[str], typer.Option(help="SEQ:HASH of a head recorded elsewhere, to detect rows cut from the end.")] = None,
) -> None:
    """Recompute the audit chain; report any altered, deleted or inserted row (exit 1 if tampered)."""
    from agents.ledger import verify_audit

    anchor_pair = None
    if anchor:
        seq, _, digest = anchor.partition(":")
        if not seq.isdigit() or not digest:
            err.print(f"[red]--anchor must look like 42:3f2a...; got {anchor!r}[/red]")
            raise typer.Exit(2)
        anchor_pair = (int(seq), digest)
    with _open_ledger(home) as ledger:
        report = verify_audit(ledger, anchor_pair)
    console.print(str(report))
    if not report.ok:
        raise typer.Exit(1)


@review_app.command("list")
def review_list(
    home: HomeOpt = None,
    manager: Annotated[Optional[str], typer.Option(help="Only this manager's items (manager id).")] = None,
) -> None:
    """List items waiting for a decision."""
    with _open_ledger(home) as ledger:
        items = ledger.pending_items(manager)
    if not items:
        console.print("No pending items.")
        return
    console.print(f"{len(items)} pending item(s); decide with `sales-supervisor review approve|edit|dismiss ITEM --as YOU`:\n")
    for it in items:
        draft = it.draft or {}
        console.print(
            f"[bold]{it.item_id}[/bold]  [{it.severity}] {it.rule_id}  deal {it.opportunity_id or '-'}  "
            f"rep {it.rep_id or '-'}  manager {it.manager_id}",
            soft_wrap=True,
        )
        console.print(f"    {draft.get('action', '(no draft)')}", soft_wrap=True)


def _decide(item_id: str, action: str, approver: str, home: Path | None, edited_text: str | None = None, reason: str | None = None) -> None:
    from agents.ledger import AlreadyDecided, NotAuthorised, UnknownItem

    with _open_ledger(home) as ledger:
        try:
            decision = ledger.record_decision(item_id, action, approver, "cli", edited_text=edited_text, reason=reason)
        except NotAuthorised as exc:
            err.print(f"[red]Refused:[/red] {exc}")
            raise typer.Exit(3) from None
        except AlreadyDecided as exc:
            err.print(f"[yellow]Already decided:[/yellow] {exc}")
            raise typer.Exit(4) from None
        except UnknownItem:
            err.print(f"[red]No item {item_id!r}; `sales-supervisor review list` shows the pending ones.[/red]")
            raise typer.Exit(2) from None
    console.print(f"Recorded: {decision.action} of {item_id} by {approver}.")


ApproverOpt = Annotated[str, typer.Option("--as", help="Your approver id (the rep's manager, or an allow-listed delegate).")]


@review_app.command("approve")
def review_approve(item_id: str, approver: ApproverOpt, home: HomeOpt = None) -> None:
    """Approve an item as drafted."""
    _decide(item_id, "approve", approver, home)


@review_app.command("edit")
def review_edit(
    item_id: str,
    approver: ApproverOpt,
    text: Annotated[str, typer.Option(help="The action as it should be sent.")],
    home: HomeOpt = None,
) -> None:
    """Approve an item with your own wording."""
    _decide(item_id, "edit", approver, home, edited_text=text)


@review_app.command("dismiss")
def review_dismiss(
    item_id: str,
    approver: ApproverOpt,
    reason: Annotated[Optional[str], typer.Option(help="Why (helps tune the policy).")] = None,
    home: HomeOpt = None,
) -> None:
    """Dismiss an item; nothing is sent."""
    _decide(item_id, "dismiss", approver, home, reason=reason)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
