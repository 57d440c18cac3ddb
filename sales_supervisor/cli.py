"""The `sales-supervisor` command line: what a person does outside the Dagster UI."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from enum import Enum
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
AsOfOpt = Annotated[Optional[str], typer.Option("--as-of", help="Run as of this date (YYYY-MM-DD). Default: the demo anchor for the demo CRM, the latest timestamp in the export for a CSV folder, else today.")]


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

    from sales_supervisor.pipeline import landing_summary

    failed_errors = summary.failed_error_checks
    if not summary.success:
        status = "[red]FAILED[/red]"
    elif failed_errors:
        status = f"[red]succeeded with {len(failed_errors)} failed check{'s' if len(failed_errors) != 1 else ''}[/red]"
    else:
        status = "[green]succeeded[/green]"
    console.print(f"\nRun {summary.run_id[:8]} {status} in {time.monotonic() - started:.0f} s (as of {summary.as_of}).")
    for failure in summary.failures:
        console.print(f"  [red]step failed[/red] {escape(failure)}", soft_wrap=True)
    landing = landing_summary(summary.warehouse, summary.run_id)
    if landing.lines:
        console.print("Landed (every input row landed, quarantined in raw.rejected_rows, or skipped):")
        for line in landing.lines:
            console.print(f"  {escape(line)}", soft_wrap=True)
    for line in landing.missing + landing.absent_fields:
        console.print(f"  [yellow]{escape(line)}[/yellow]", soft_wrap=True)
    if landing.not_applicable:
        console.print("Rules not applicable (the data they need is missing):")
        for line in landing.not_applicable:
            console.print(f"  {escape(line)}", soft_wrap=True)
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
    digests = summary.asset_metadata.get("review/manager_digests")
    if digests:
        kpis = digests.get("kpis") or {}
        share = kpis.get("reps_reviewed_share")
        evidence = kpis.get("evidence_rate")
        console.print(
            f"\nManager digests: {digests.get('digests')} ({digests.get('posted_to_slack')} to Slack, "
            f"{digests.get('written_to_outbox')} to the outbox {digests.get('outbox')}); {kpis.get('items')} items to decide."
        )
        console.print(
            "KPIs: reps reviewed "
            + ("-" if share is None else f"{share:.0%}")
            + f" of {kpis.get('active_reps')} active; evidence rate "
            + ("-" if evidence is None else f"{evidence:.0%}")
            + "; median business days flag -> approval "
            + str(kpis.get("median_business_days_flag_to_approval") if kpis.get("median_business_days_flag_to_approval") is not None else "-")
            + "; decisions by manager "
            + (json.dumps(kpis.get("decisions_by_manager")) if kpis.get("decisions_by_manager") else "none yet")
            + "; dismissal rate by rule "
            + (json.dumps(kpis.get("dismissal_rate_by_rule")) if kpis.get("dismissal_rate_by_rule") else "none yet")
            + "; shadow agreement by rule "
            + (json.dumps(kpis.get("shadow_agreement_by_rule")) if kpis.get("shadow_agreement_by_rule") else "none yet"),
            soft_wrap=True,
        )
        if digests.get("unrouted_items"):
            why = (
                "the export has no users file (reps/managers)"
                if any(m.startswith(("no users", "no managers")) for m in landing.missing)
                else "the source has no reps/managers for their owners (map the CRM's users file)"
            )
            console.print(
                f"[yellow]{digests['unrouted_items']} flagged deal(s) reached no manager:[/yellow] {why}. "
                "They are in risk.coaching_drafts.",
                soft_wrap=True,
            )
        home_flag = f" --home {settings.home_dir}" if settings.home_dir != Settings().home_dir else ""
        console.print(
            f"Decide: `.venv/bin/sales-supervisor review list{home_flag}`, then `review approve ITEM{home_flag}` "
            f"(once, map your login to your approver id: `users: {{<login>: MANAGER_ID}}` in {settings.identities_path}).",
            soft_wrap=True,
        )
    checks = summary.checks
    failed = summary.failed_checks
    console.print(f"Checks: {len(checks) - len(failed)} of {len(checks)} passed.")
    for c in failed:
        colour = "yellow" if c["severity"] == "WARN" else "red"
        console.print(f"  [{colour}]{c['severity']}[/{colour}] {c['asset']} {c['check']}: {c['description']}")
    console.print(
        "\nWhere things are:\n"
        f"  warehouse            {settings.warehouse_handle().label}\n"
        f"  CRM extract          {settings.demo_dir if settings.crm_source == 'demo' else settings.csv_folder}\n"
        f"  Dagster run history  {settings.home_dir / 'dagster'}   (see it with: make dev)\n"
        + (f"  step output (dbt)    {summary.log_path}\n" if summary.log_path else "")
    )


@app.command()
def run(
    home: HomeOpt = None,
    as_of: AsOfOpt = None,
    source: Annotated[
        Optional[str],
        typer.Option(help="CRM source: demo, csv, hubspot, salesforce or pipedrive (default: SALES_SUPERVISOR_CRM_SOURCE, else demo)."),
    ] = None,
    csv_folder: Annotated[Optional[Path], typer.Option(help="Folder of CSV exports (with --source csv).")] = None,
    mapping: Annotated[Optional[Path], typer.Option(help="Column-mapping YAML for the CSV folder.")] = None,
    scale: Annotated[Optional[int], typer.Option(help="Demo CRM scale (multiplies reps and deals).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Dagster's step logs.")] = False,
) -> None:
    """Run the daily job once (landing, dbt marts, semantic layer, checks) and print what it produced."""
    settings = _settings(home=home, as_of=as_of, crm_source=source, csv_folder=csv_folder, csv_mapping=mapping, demo_scale=scale)
    from sales_supervisor.pipeline import run_daily_job

    from connectors.mapping import MappingError
    from connectors.registry import preflight

    try:
        preflight(settings)
    except Exception as exc:  # noqa: BLE001 - missing credentials, a bad folder or mapping: one line, no traceback
        err.print(f"[red]Cannot read the CRM source:[/red] {escape(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)}")
        raise typer.Exit(2) from None
    from connectors.registry import export_as_of

    as_of_note = ""
    try:
        export_date = export_as_of(settings)
    except Exception as exc:  # noqa: BLE001 - the landing reports the file's problems; fall back to today
        export_date, as_of_note = None, f" (the export's latest timestamp could not be read: {exc}; using today)"
    if export_date is not None:
        settings = settings.model_copy(update={"as_of": export_date})
        as_of_note = " (the export's latest timestamp; --as-of to choose another date)"
    started = time.monotonic()
    console.print(
        f"Running the daily job on the [bold]{settings.crm_source}[/bold] CRM as of {settings.effective_as_of()}{as_of_note} "
        f"(state in {settings.home_dir}); this takes a minute or two..."
    )
    # Without --verbose, a failed step is reported once by the summary, not by Dagster's stack traces.
    from sales_supervisor.pipeline import use_local_dagster_home
    from sales_supervisor.progress import job_step_count, run_progress

    use_local_dagster_home(settings)
    with run_progress(console, job_step_count(), enabled=None if not verbose else False):
        summary = run_daily_job(settings, log_level="INFO" if verbose else "CRITICAL", quiet_steps=not verbose)
    _print_run(summary, settings, started)
    if not summary.success or summary.failed_error_checks:
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
    for name, n in manifest.get("files", {}).items():
        console.print(f"  {name:<24} {n:>12,} rows")
    console.print(f"  planted risk cases: {manifest.get('planted_counts')}  (ground truth in {out / 'ground_truth.csv'})", soft_wrap=True)


class DrafterChoice(str, Enum):
    auto = "auto"
    template = "template"
    claude = "claude"


@app.command("eval")
def eval_cmd(
    drafter: Annotated[
        DrafterChoice, typer.Option(help="auto (Claude if ANTHROPIC_API_KEY is set, else template), template or claude.")
    ] = "auto",
    gate: Annotated[float, typer.Option(help="Minimum overall pass rate; below it the command exits 1.")] = 0.9,
    out: Annotated[Optional[Path], typer.Option(help="Where to write the full report (default <home>/evals/latest.json).")] = None,
    home: HomeOpt = None,
) -> None:
    """Run the drafter over the golden set, print pass rates per property, and record the result in the ledger.

    The live-mode gate reads the result recorded for the drafter and model live mode will use
    (SALES_SUPERVISOR_DRAFTER_MODEL, the pipeline's setting), from the ledger (audited), never from the file.
    """
    from evals.run import GOLDEN_PATH, _drafter_from_env, format_report, run_eval

    settings = _settings(home=home)
    target = out or settings.home_dir / "evals" / "latest.json"
    chosen = _drafter_from_env(str(drafter.value if hasattr(drafter, "value") else drafter))
    report = run_eval(chosen, GOLDEN_PATH, out_path=target, gate=gate)
    console.print(format_report(report), markup=False, soft_wrap=True)
    with _open_ledger(home) as ledger:
        ledger.record_eval(report.drafter, report.model_dump(mode="json"), actor=_operator_label())
    console.print(f"Recorded in the ledger for drafter {report.drafter} (the live-mode gate reads it from there).")
    raise typer.Exit(0 if report.gate_passed else 1)


audit_app = typer.Typer(help="The append-only, hash-chained audit trail.", no_args_is_help=True)
review_app = typer.Typer(help="Review coaching items from a terminal: list, approve, edit, dismiss.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(review_app, name="review")


def _open_ledger(home: Path | None):
    from agents.ledger import open_ledger

    settings = _settings(home=home)
    settings.home_dir.mkdir(parents=True, exist_ok=True)
    try:
        delegates = settings.delegates()
    except (OSError, ValueError) as exc:
        err.print(f"[red]Cannot read the delegates file:[/red] {exc}")
        raise typer.Exit(2) from None
    try:
        return open_ledger(settings.ledger_url, home=settings.home_dir, delegates=delegates, max_edited_chars=settings.max_edited_chars)
    except ModuleNotFoundError as exc:
        err.print(f"[red]The review ledger URL needs a database driver that is not installed:[/red] {exc}")
        raise typer.Exit(2) from None


@audit_app.command("verify")
def audit_verify(
    home: HomeOpt = None,
    anchor: Annotated[Optional[str], typer.Option(help="SEQ:HASH of a head recorded elsewhere (instead of the latest anchor in the anchor file).")] = None,
    anchor_file: Annotated[Optional[Path], typer.Option(help="Anchor file to read the latest anchor from (default: SALES_SUPERVISOR_ANCHOR_FILE or <home>/anchors/audit-anchors.jsonl).")] = None,
    no_anchor: Annotated[bool, typer.Option("--no-anchor", help="Check the chain and the rows only (rows cut from the end go unnoticed).")] = False,
) -> None:
    """Recompute the audit chain, cross-check items, decisions and deliveries against it, and check the latest anchor (exit 1 if tampered)."""
    from agents.ledger import verify_audit
    from agents.ledger.anchors import Anchor, AnchorFile, default_anchor_path

    settings = _settings(home=home)
    used: Anchor | None = None
    if anchor:
        seq, _, digest = anchor.partition(":")
        if not seq.isdigit() or not digest:
            err.print(f"[red]--anchor must look like 42:3f2a...; got {anchor!r}[/red]")
            raise typer.Exit(2)
        used = Anchor(int(seq), digest, "-", "given on the command line", "--anchor")
    elif not no_anchor:
        path = anchor_file or settings.anchor_file or default_anchor_path(settings.home_dir)
        try:
            used = AnchorFile(path).latest()
        except (OSError, ValueError) as exc:
            err.print(f"[red]Cannot read the anchor file:[/red] {escape(str(exc))}")
            raise typer.Exit(2) from None
        if used is None:
            console.print(
                f"[yellow]No anchor at {path}: rows cut from the end or a recomputed chain cannot be detected.[/yellow]",
                soft_wrap=True,
            )
    with _open_ledger(home) as ledger:
        report = verify_audit(ledger, used.pair if used else None)
    if used is not None:
        console.print(escape(f"Checked against {used.describe()}."), soft_wrap=True)
    console.print(escape(str(report)), soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("anchor")
def audit_anchor(
    home: HomeOpt = None,
    reason: Annotated[str, typer.Option(help="Why (recorded with the anchor).")] = "manual anchor",
) -> None:
    """Write the audit chain head to the anchor file(s) now (runs and publishes do this on their own)."""
    from agents.ledger.anchors import anchor_targets, write_anchor

    settings = _settings(home=home)
    client = None
    if settings.anchor_slack_channel:
        from agents.review.run import slack_web_client

        client = slack_web_client()
    with _open_ledger(home) as ledger:
        targets = anchor_targets(
            settings.home_dir, anchor_file=settings.anchor_file, external_path=settings.anchor_external_path,
            slack_channel=settings.anchor_slack_channel, slack_client=client,
        )
        result = write_anchor(ledger, targets, reason=reason, actor=_operator_label())
    console.print(escape(f"Anchored seq {result.anchor.seq} {result.anchor.hash} to {', '.join(result.written) or 'nothing'}."), soft_wrap=True)
    for name, error in result.failed:
        err.print(escape(f"not written to {name}: {error}"))
    if result.failed:
        raise typer.Exit(1)


@review_app.command("list")
def review_list(
    home: HomeOpt = None,
    manager: Annotated[Optional[str], typer.Option(help="Only this manager's items (manager id).")] = None,
    all_digests: Annotated[bool, typer.Option("--all", help="Include undecided items of older digests too.")] = False,
    rank: Annotated[str, typer.Option(help="rep: each rep's items in digest order, reps by their most urgent item; team: everything by severity x amount.")] = "rep",
    held_back: Annotated[bool, typer.Option("--held-back", help="List the flagged deals the digests held back (per-rep cap, standing decisions), with why.")] = False,
) -> None:
    """List items waiting for a decision (each manager's latest digest), highest priority first."""
    from agents.review.queue import held_back_items, order_queue
    from sales_supervisor.explain import print_queue

    if rank not in ("rep", "team"):
        err.print("[red]--rank must be rep or team[/red]")
        raise typer.Exit(2)
    if held_back:
        rows = held_back_items(_settings(home=home).home_dir / "outbox", manager)
        if not rows:
            console.print("Nothing held back in the latest digests.")
            return
        console.print(f"{len(rows)} flagged deal(s) held back from the latest digests (not drafted as items), and why:\n")
        last = None
        for h in rows:
            if (h["manager_id"], h.get("rep_name")) != last:
                last = (h["manager_id"], h.get("rep_name"))
                console.print(f"[bold]{escape(str(h.get('rep_name') or h.get('rep_id')))}[/bold] (manager {escape(h['manager_id'])})")
            amount = f"  ${h['amount']:,.0f}" if h.get("amount") else ""
            console.print(f"  - {escape(str(h.get('deal_name') or h.get('opportunity_id') or '-'))}{amount}  {h['rule_id']}: "
                          f"{escape(h['why'])}", soft_wrap=True)
        return
    with _open_ledger(home) as ledger:
        items = ledger.pending_items(manager, latest_only=not all_digests)
    if not items:
        console.print("No pending items.")
        return
    print_queue(console, order_queue(items, rank), rank)  # type: ignore[arg-type]
    console.print(
        "Decide with `sales-supervisor review approve|edit|dismiss ITEM` (the short id is enough; --as to act for "
        "another manager); `sales-supervisor review show ITEM` explains one.",
        soft_wrap=True,
    )


def _explain_item(item_id: str, home: Path | None, show_sql: bool) -> None:
    from agents.review.queue import explain_item, resolve_item_prefix
    from sales_supervisor.explain import print_explanation

    with _open_ledger(home) as ledger:
        matches = resolve_item_prefix(ledger, item_id)
        if len(matches) != 1:
            err.print(f"[red]{'No item' if not matches else 'More than one item'} matches {item_id!r}.[/red]")
            raise typer.Exit(2)
        data = explain_item(ledger, matches[0], _settings(home=home).home_dir / "outbox")
    print_explanation(console, data, show_sql=show_sql)


@review_app.command("show")
def review_show(item_id: str, home: HomeOpt = None, sql: Annotated[bool, typer.Option(help="Print the SQL too.")] = False) -> None:
    """One item in full: the action and why, the flag and its baseline, the CRM rows, the queries, the decision history."""
    _explain_item(item_id, home, sql)


def _operator(home: Path | None) -> str:
    """The approver id of whoever runs this command, from the identities file (OS user or SALES_SUPERVISOR_TOKEN)."""
    import os

    from agents.ledger.identity import Identities, UnknownOperator, current_os_user

    settings = _settings(home=home)
    try:
        identities = Identities.load(settings.identities_path)
        return identities.operator(os_user=current_os_user(), token=os.environ.get("SALES_SUPERVISOR_TOKEN"))
    except UnknownOperator as exc:
        err.print(f"[red]Who are you?[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(3) from None
    except (OSError, ValueError) as exc:
        err.print(f"[red]Cannot read the identities file:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None


def _operator_label() -> str:
    from agents.ledger.identity import current_os_user

    return f"os:{current_os_user() or 'unknown'}"


def _acting_as(approver: str | None, home: Path | None) -> tuple[str, str]:
    """(approver, operator): ``--as`` names whom you act for (default: yourself); the ledger judges whether you may."""
    if approver is not None and not approver.strip():
        err.print("[red]--as is empty: give the approver id you act as (or leave --as out to act as yourself).[/red]")
        raise typer.Exit(2)
    operator = _operator(home)
    return (approver.strip() if approver else operator), operator


def _resolve_item_id(ledger, item_id: str) -> str:
    """A full item id, or a unique prefix of one (decided items included, so both get the same answer)."""
    matches = [it.item_id for it in ledger.find_items(item_id)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        err.print(f"[red]{item_id!r} matches {len(matches)} items; give more characters.[/red]")
        raise typer.Exit(2)
    return item_id


def _decide(item_id: str, action: str, approver: str | None, home: Path | None, edited_text: str | None = None, reason: str | None = None) -> None:
    from agents.ledger import AlreadyDecided, EditTooLong, LedgerError, NotAuthorised, UnknownItem

    if action == "edit" and not (edited_text or "").strip():
        err.print("[red]--text is empty: an edit needs the action as it should be sent.[/red]")
        raise typer.Exit(2)
    approver, operator = _acting_as(approver, home)
    with _open_ledger(home) as ledger:
        item_id = _resolve_item_id(ledger, item_id)
        try:
            decision = ledger.record_decision(
                item_id, action, approver, "cli", edited_text=edited_text, reason=reason, operator=operator
            )
        except NotAuthorised as exc:
            err.print(f"[red]Refused:[/red] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(3) from None
        except AlreadyDecided as exc:
            d = exc.decision
            err.print(
                f"[yellow]Already decided:[/yellow] item {item_id} was "
                f"{ {'approve': 'approved', 'edit': 'edited and approved', 'dismiss': 'dismissed'}.get(d.action, d.action)} by {d.approver_id} "
                f"at {d.decided_at:%Y-%m-%d %H:%M}Z; decisions are final.",
                soft_wrap=True,
            )
            raise typer.Exit(4) from None
        except EditTooLong as exc:
            err.print(f"[red]--text is too long:[/red] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(2) from None
        except UnknownItem:
            err.print(f"[red]No item {item_id!r}; `sales-supervisor review list` shows the pending ones.[/red]")
            raise typer.Exit(2) from None
        except LedgerError as exc:  # e.g. ConfirmationRequired: a manager-only scorecard verdict
            err.print(f"[yellow]Not recorded:[/yellow] {escape(str(exc))}. "
                      f"Use `sales-supervisor scorecards confirm {item_id}`.", soft_wrap=True)
            raise typer.Exit(5) from None
    on_behalf = f" (operator {operator})" if operator != approver else ""
    console.print(f"Recorded: {decision.action} of {item_id} by {approver}{on_behalf}.", soft_wrap=True)


ApproverOpt = Annotated[
    Optional[str],
    typer.Option("--as", help="Act as this approver id (default: yourself, from the identities file); only that approver or their delegate may."),
]


@review_app.command("approve")
def review_approve(item_id: str, approver: ApproverOpt = None, home: HomeOpt = None) -> None:
    """Approve an item as drafted."""
    _decide(item_id, "approve", approver, home)


@review_app.command("edit")
def review_edit(
    item_id: str,
    text: Annotated[str, typer.Option(help="The action as it should be sent (at most SALES_SUPERVISOR_MAX_EDITED_CHARS, default 2,000 characters).")],
    approver: ApproverOpt = None,
    home: HomeOpt = None,
) -> None:
    """Approve an item with your own wording."""
    _decide(item_id, "edit", approver, home, edited_text=text)


@review_app.command("dismiss")
def review_dismiss(
    item_id: str,
    approver: ApproverOpt = None,
    reason: Annotated[Optional[str], typer.Option(help="Why (helps tune the policy).")] = None,
    home: HomeOpt = None,
) -> None:
    """Dismiss an item; nothing is sent."""
    _decide(item_id, "dismiss", approver, home, reason=reason)


risk_app = typer.Typer(help="The risk policy: its quality on planted cases, and snoozes. (See also: backtest.)", no_args_is_help=True)
slack_app_cli = typer.Typer(help="The Slack app managers decide in.", no_args_is_help=True)
app.add_typer(risk_app, name="risk")
app.add_typer(slack_app_cli, name="slack")


def _semantic_layer(settings: Settings):
    from agents.semantic_layer import SemanticLayer
    from sales_supervisor.dbt import manifest_is_stale, parse_dbt_project
    from sales_supervisor.settings import DBT_PROJECT_DIR

    if not settings.warehouse_path.exists() and settings.warehouse == "duckdb":
        err.print(f"[red]No warehouse at {settings.warehouse_path}; run `make demo` (or `sales-supervisor run`) first.[/red]")
        raise typer.Exit(2)
    if settings.warehouse != "duckdb":
        import os

        from sales_supervisor.dbt import semantic_manifest_dir

        wh = settings.warehouse_handle()
        return SemanticLayer(DBT_PROJECT_DIR, DBT_PROJECT_DIR, semantic_manifest_dir(settings), target=wh.dialect,
                             env={**os.environ, **wh.dbt_env()})
    if manifest_is_stale():
        parse_dbt_project()
    return SemanticLayer(DBT_PROJECT_DIR, DBT_PROJECT_DIR, DBT_PROJECT_DIR / "target", settings.warehouse_path)


PolicyOpt = Annotated[Optional[Path], typer.Option("--policy", help="Risk policy YAML; wins over the version applied with `policy apply` (default: that version, else agents/risk/default_policy.yaml).")]


@risk_app.command("explain")
def risk_explain(opportunity_id: str, home: HomeOpt = None, as_of: AsOfOpt = None) -> None:
    """Why a deal is or is not flagged in the latest risk run: each flag with its baseline, CRM rows and queries,
    and any suppression (snooze, exclusion, per-rep cap)."""
    from agents.risk.explain import explain_opportunity

    settings = _settings(home=home, as_of=as_of)
    if not settings.warehouse_path.exists():
        err.print(f"[red]No warehouse at {settings.warehouse_path}; run the pipeline first.[/red]")
        raise typer.Exit(2)
    data = explain_opportunity(settings.warehouse_path, opportunity_id, settings.as_of)
    if data["run_id"] is None:
        err.print("[red]No risk run found for that date.[/red]")
        raise typer.Exit(2)
    deal = data["deal"]
    if deal is None:
        err.print(f"[red]No deal {opportunity_id!r} in marts.fct_opportunities.[/red]")
        raise typer.Exit(2)
    console.print(
        f"[bold]{escape(str(deal['opportunity_name']))}[/bold] ({opportunity_id}): {escape(str(deal['stage']))}, "
        f"${(deal['amount'] or 0):,.0f}, rep {escape(str(deal['owner_rep_id']))}, {deal['segment']}; risk run {data['run_id'][:8]} "
        f"as of {data['as_of']}", soft_wrap=True,
    )
    if not data["flags"] and not data["suppressed"]:
        console.print("Not flagged by any rule in this run.")
    for f in data["flags"]:
        b = f.get("baseline") or {}
        console.print(
            f"\n[bold]{f['rule_id']}[/bold] {f['severity']} (confidence {f['confidence']:.0%}"
            f"{', primary' if f.get('is_primary') else ', supporting'}): {escape(f['message'])}", soft_wrap=True,
        )
        console.print(f"  observed {f['observed']} vs threshold {f['threshold']}"
                      + (f"; baseline {b.get('metric')} = {b.get('value')} {b.get('slice')} n={b.get('sample_size')}" if b else ""),
                      soft_wrap=True)
        for s in f.get("supporting") or []:
            console.print(f"  also: {s['rule_id']} ({s['severity']}): {escape(s['message'])}", soft_wrap=True)
        for r in f["crm_records"]:
            console.print(f"  CRM {r['object']} {escape(r['record_id'])}: {escape(str(r.get('note') or ''))} {escape(str(r.get('source_url') or ''))}", soft_wrap=True)
        for q in f["semantic_query_ids"]:
            detail = data["queries"].get(q, {})
            console.print(f"  query {q} ({detail.get('saved_query') or 'baseline query'}): {len(detail.get('rows', []))} rows", soft_wrap=True)
    for s in data["suppressed"]:
        console.print(f"\n[yellow]{s['rule_id']} suppressed ({s['kind']})[/yellow]: {escape(str(s['reason']))}"
                      + (f" by {s['by']} until {s['until']}" if s.get("by") else ""), soft_wrap=True)


@risk_app.command("quality")
def risk_quality(home: HomeOpt = None, policy: PolicyOpt = None, as_of: AsOfOpt = None) -> None:
    """Per-rule precision and recall of the policy on the demo CRM's planted risk cases."""
    from agents.risk.engine import assess
    from agents.risk.quality import planted_precision_recall

    settings = _settings(home=home, as_of=as_of, risk_policy=policy)
    truth = settings.demo_dir / "ground_truth.csv"
    if not truth.exists():
        err.print(f"[red]No ground truth at {truth}: this measures the demo CRM (run `make demo` first).[/red]")
        raise typer.Exit(2)
    with _semantic_layer(settings) as layer:
        run, _ = assess(settings.warehouse_path, layer, settings.risk_policy_in_force(), settings.effective_as_of())
    table = Table(title=f"Planted cases, policy {run.policy_version}, as of {run.as_of}")
    for col in ("rule", "truth", "flagged", "true pos.", "precision", "recall"):
        table.add_column(col, justify="right" if col != "rule" else "left")
    below = False
    for q in planted_precision_recall(run, truth):
        p, r = q.precision, q.recall
        below |= (p is not None and p < 0.8) or (r is not None and r < 0.9)
        table.add_row(q.rule_id, str(q.truth), str(q.flagged), str(q.true_positives),
                      "-" if p is None else f"{p:.2f}", "-" if r is None else f"{r:.2f}")
    # Rep-level triggers and the EXCEEDS verdict, as of the scorecard Monday (issue 14).
    from agents.accountability.quality import measure_reps

    with _semantic_layer(settings) as layer:
        monday, rep_rows = measure_reps(settings.warehouse_path, layer, settings.risk_policy_in_force(),
                                        settings.effective_as_of(), truth)
    for q in rep_rows:
        p, r = q.precision, q.recall
        below |= (p is not None and p < 0.8) or (r is not None and r < 0.9)
        table.add_row(f"{q.rule_id} (rep, {monday})", str(q.truth), str(q.flagged), str(q.true_positives),
                      "-" if p is None else f"{p:.2f}", "-" if r is None else f"{r:.2f}")
    console.print(table)
    if below:
        err.print("[yellow]Some rule is below precision 0.8 or recall 0.9.[/yellow]")
        raise typer.Exit(1)


@app.command("explain")
def explain_cmd(item_id: str, home: HomeOpt = None) -> None:
    """Explain a digest item: the flag, the baseline, the CRM rows, each semantic query (definition, filters,
    SQL, rows) and the decision history."""
    _explain_item(item_id, home, True)


@app.command()
def backtest(
    home: HomeOpt = None,
    policy: PolicyOpt = None,
    start: Annotated[Optional[str], typer.Option(help="First replay date (default: six months before the last).")] = None,
    end: Annotated[Optional[str], typer.Option(help="Last replay date (default: the day before the run's as-of date).")] = None,
    step_days: Annotated[int, typer.Option(min=1, help="Days between replays.")] = 7,
) -> None:
    """Replay the policy as of past dates (only data known then) and report lift and lead time per rule."""
    from agents.risk.quality import backtest as run_backtest

    settings = _settings(home=home, risk_policy=policy)
    try:
        start_d = dt.date.fromisoformat(start) if start else None
        end_d = dt.date.fromisoformat(end) if end else settings.effective_as_of() - dt.timedelta(days=1)
    except ValueError:
        err.print("[red]--start and --end are dates like 2026-04-01[/red]")
        raise typer.Exit(2) from None
    with _semantic_layer(settings) as layer:
        console.print("Replaying the policy weekly; this takes about half a minute per six months...")
        report = run_backtest(settings.warehouse_path, layer, settings.risk_policy_in_force(), start_d, end_d, step_days)
    console.print(report.table())
    console.print(
        "\nbad% = share of flagged (unflagged) deals later lost or slipped more than 30 days; "
        "lift = flagged bad% / unflagged bad% (95% CI: bootstrap interval; verdict: lift = interval above 1, no lift = "
        "interval below the lift floor, not enough data = too few deals or too wide to tell); lead = median days from first flag to loss."
    )
    from agents.review.demotion import demoted_rules, save_backtest_lifts

    pol = settings.risk_policy_in_force()
    lifts = {r.rule_id: (round(r.lift, 4) if r.lift is not None else None) for r in report.rules}
    saved = save_backtest_lifts(settings.home_dir, lifts, start=report.start, end=report.end)
    demoted = demoted_rules(lifts, pol.demotion.lift_floor, enabled=pol.demotion.enabled)
    floor = pol.demotion.lift_floor
    if demoted:
        console.print(f"Lift floor {floor:g}: the digests show these rules as informational (not to decide): "
                      + ", ".join(f"{r} (lift {v:.2f})" for r, v in demoted.items()), soft_wrap=True)
    else:
        console.print(f"Lift floor {floor:g}: no rule is below it; none is demoted.")
    console.print(f"Lifts saved to {saved} (the next run's digests read them).", soft_wrap=True)
    from agents.learning.charts import backtest_charts  # issue 17: lift per rule with its interval, PNG + HTML

    charts = backtest_charts(report, saved.parent, floor=floor)
    console.print("Charts: " + ", ".join(str(p) for p in charts), soft_wrap=True)


@risk_app.command("snooze")
def risk_snooze(
    opportunity_id: str,
    until: Annotated[str, typer.Option(help="Last day the flag stays silent (YYYY-MM-DD, inclusive); it can return the day after.")],
    reason: Annotated[str, typer.Option(help="Why; recorded in the audit trail.")],
    approver: ApproverOpt = None,
    rule: Annotated[Optional[str], typer.Option(help="Only this rule (default: every rule on the deal).")] = None,
    home: HomeOpt = None,
) -> None:
    """Snooze a flagged deal through a date: only its manager or a delegate may; logged, and the flag returns after it."""
    from agents.ledger import NotAuthorised, SnoozeRefused

    try:
        until_d = dt.date.fromisoformat(until)
    except ValueError:
        err.print(f"[red]--until must be a date like 2026-11-30, got {until!r}[/red]")
        raise typer.Exit(2) from None
    settings = _settings(home=home)
    approver, operator = _acting_as(approver, home)
    from agents.accountability.policy import TRIGGERS

    known = [*settings.risk_policy_in_force().rule_ids, *TRIGGERS]  # rep-level triggers: snooze with the rep id
    with _open_ledger(home) as ledger:
        try:
            ledger.snooze(
                opportunity_id, until_d, by=approver, reason=reason, rule_id=rule, known_rules=known, operator=operator, channel="cli"
            )
        except NotAuthorised as exc:
            err.print(f"[red]Refused:[/red] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(3) from None
        except SnoozeRefused as exc:
            message = str(exc)
            err.print(f"[red]{escape(message[:1].upper() + message[1:])}[/red]", soft_wrap=True)
            raise typer.Exit(2) from None
    console.print(f"Snoozed {rule or 'all rules'} on {opportunity_id} through {until_d} (inclusive; audited).")


publish_app = typer.Typer(
    help="Publish approved items (what the approval sensor triggers); list and resolve deliveries whose outcome is unknown.",
    invoke_without_command=True,
)
app.add_typer(publish_app, name="publish")


@publish_app.callback()
def publish(ctx: typer.Context, home: HomeOpt = None) -> None:
    """Publish approved items now: rep DM/email and CRM note, exactly once (email: at most once).

    Subcommands: `attention` lists deliveries whose outcome is unknown (never resent automatically);
    `resolve ID --sent|--not-sent --as YOU` records what a person found out.
    """
    if ctx.invoked_subcommand is not None:
        return
    from sales_supervisor.pipeline import run_publish_job

    settings = _settings(home=home)
    summary = run_publish_job(settings)
    for failure in summary.failures:
        err.print(f"[red]{failure}[/red]")
    for key, value in summary.metadata.items():
        console.print(f"  {key:<20} {value}")
    if summary.metadata.get("needs_attention"):
        console.print(
            f"[yellow]{summary.metadata['needs_attention']} delivery(ies) need a person:[/yellow] "
            "`sales-supervisor publish attention` lists them.",
            soft_wrap=True,
        )
    if not summary.success:
        raise typer.Exit(1)


@publish_app.command("attention")
def publish_attention(home: HomeOpt = None) -> None:
    """List deliveries whose outcome is unknown: they are never resent until a person resolves them (exit 1 if any)."""
    with _open_ledger(home) as ledger:
        waiting = ledger.deliveries_needing_attention()
        rows = [(d, ledger.get_item(d.item_id)) for d in waiting]
    if not rows:
        console.print("No deliveries need attention.")
        return
    console.print(
        f"{len(rows)} delivery(ies) may or may not have reached the rep or the CRM. Check, then record what you found with "
        "`sales-supervisor publish resolve ID --sent|--not-sent --as YOU` (--not-sent sends it again on the next publish):\n",
        soft_wrap=True,
    )
    for d, item in rows:
        deal = ((item.evidence or {}).get("deal_name") if item else None) or (item.opportunity_id if item else None) or "-"
        who = f"rep {item.rep_id}" if item else "-"
        console.print(
            escape(f"{d.delivery_id}  {d.channel}  item {d.item_id}  {deal}  {who}  attempts {d.attempts}  since {d.claimed_at:%Y-%m-%d %H:%M} UTC"),
            soft_wrap=True,
        )
        console.print(escape(f"    {d.error or 'outcome unknown'}"), soft_wrap=True)
    raise typer.Exit(1)


@publish_app.command("resolve")
def publish_resolve(
    delivery: Annotated[str, typer.Argument(help="The delivery id shown by `publish attention` (or its idempotency key).")],
    sent: Annotated[Optional[bool], typer.Option("--sent/--not-sent", help="--sent: it arrived (never sent again); --not-sent: it did not (sent again on the next publish).")] = None,
    resolver: Annotated[Optional[str], typer.Option("--as", help="Your approver id (checked against the identities file; default: yourself).")] = None,
    note: Annotated[Optional[str], typer.Option(help="What you checked, for the audit trail.")] = None,
    home: HomeOpt = None,
) -> None:
    """Record a person's verdict on a delivery whose outcome was unknown (audited under your established identity)."""
    from agents.ledger import LedgerError, UnknownDelivery

    if sent is None:
        err.print("[red]Say what you found: --sent (it arrived) or --not-sent (it did not).[/red]")
        raise typer.Exit(2)
    acting, operator = _acting_as(resolver, home)
    if acting != operator:
        err.print(f"[red]Refused:[/red] you are {escape(operator)}; a delivery is resolved by whoever checked it, as themselves.")
        raise typer.Exit(3)
    resolver = operator
    with _open_ledger(home) as ledger:
        try:
            resolved = ledger.resolve_delivery(delivery, sent=sent, resolver=resolver, note=note)
        except UnknownDelivery:
            err.print(f"[red]No delivery {delivery!r}; `sales-supervisor publish attention` lists the open ones.[/red]")
            raise typer.Exit(2) from None
        except LedgerError as exc:
            err.print(f"[red]Refused:[/red] {exc}")
            raise typer.Exit(4) from None
    verdict = "sent (will not be sent again)" if sent else "not sent (the next publish sends it again)"
    console.print(f"Recorded: delivery {resolved.delivery_id} ({resolved.channel}, item {resolved.item_id}) {verdict}, by {resolver}.")


def _startup_mode(ledger, settings: Settings) -> str:
    """The mode a manager-facing server starts in (shadow unless live mode passes its gates); a
    refused live mode is printed and exits 2."""
    from agents.review.modes import LiveModeRefused, ModeSettings, apply_startup_mode

    try:
        return apply_startup_mode(ledger, ModeSettings.from_env(), home=settings.home_dir)
    except LiveModeRefused as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None


@slack_app_cli.command("serve")
def slack_serve(
    port: Annotated[int, typer.Option(help="HTTP port (ignored in Socket Mode); 3000 is the Dagster UI's.")] = 3030,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    home: HomeOpt = None,
) -> None:
    """Run the Slack app (HTTP mode; Socket Mode when SLACK_APP_TOKEN is set). Needs SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET."""
    from agents.review.slack_app import SlackAppSettings, serve

    settings = _settings(home=home)
    try:
        slack_settings = SlackAppSettings.from_env()
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    with _open_ledger(home) as ledger:
        mode = _startup_mode(ledger, settings)
        console.print(f"Slack app in {mode} mode on {host}:{port} (interactivity URL: https://<your host>/slack/events)")
        from sales_supervisor.commands.ask import slack_ask_function

        serve(port, ledger=ledger, settings=slack_settings, host=host, ask=slack_ask_function(settings, ledger))


@slack_app_cli.command("manifest")
def slack_manifest(
    request_url: Annotated[Optional[str], typer.Option(help="Public URL of /slack/events (HTTP mode).")] = None,
    socket_mode: Annotated[bool, typer.Option("--socket-mode", help="Manifest for Socket Mode (no public URL).")] = False,
) -> None:
    """Print the Slack app manifest to paste at api.slack.com/apps (Create New App -> From a manifest)."""
    import yaml

    from agents.review.slack_app import app_manifest

    if request_url and not request_url.startswith("https://"):
        err.print(f"[red]--request-url must be the public https:// URL of /slack/events, got {request_url!r}[/red]")
        raise typer.Exit(2)
    url = None if socket_mode else (request_url or "https://YOUR-HOST/slack/events")
    console.print(yaml.safe_dump(app_manifest(url), sort_keys=False), soft_wrap=True, markup=False)


def main() -> None:  # pragma: no cover - the console script; tests call `app`
    from sales_supervisor.pycache import keep_bytecode_cache

    keep_bytecode_cache(_home_option(sys.argv[1:]))  # before the heavy imports of each command (dagster, dbt, MetricFlow)
    app()


def _home_option(argv: list[str]) -> Path | None:
    """The value of a command's --home option, read before typer parses it (the bytecode cache goes under it)."""
    for i, arg in enumerate(argv):
        if arg == "--home" and i + 1 < len(argv):
            return Path(argv[i + 1])
        if arg.startswith("--home="):
            return Path(arg.split("=", 1)[1])
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())


from sales_supervisor.commands import coach as _coach_commands  # noqa: E402  (the deal coach: brief, brief-eval)

_coach_commands.register(app)

from sales_supervisor.commands.ask import register as _register_ask  # noqa: E402

_register_ask(app)
from sales_supervisor.commands.teams import register as _register_teams  # noqa: E402

_register_teams(app)
from sales_supervisor.commands.console import console_app  # noqa: E402  (the supervisor console, issue 15)

app.add_typer(console_app, name="console")
from sales_supervisor.commands.loop import register as _register_loop  # noqa: E402  (issue 17: policy, outcomes, rule-lab)

_register_loop(app)

from sales_supervisor.commands.scorecards import scorecards_app  # noqa: E402  (issue 14)

app.add_typer(scorecards_app, name="scorecards")
from sales_supervisor.commands.autonomy import autonomy_app  # noqa: E402  (issue 18: levels, quiet hours, spend)

app.add_typer(autonomy_app, name="autonomy")
