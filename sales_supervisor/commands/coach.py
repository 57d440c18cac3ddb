"""`sales-supervisor brief OPP` and `sales-supervisor brief-eval`: the deal coach from a terminal."""

from __future__ import annotations

import datetime as dt
import os
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from sales_supervisor.cli import AsOfOpt, HomeOpt, _open_ledger, _operator, _settings, console, err


class BriefFormat(str, Enum):
    terminal = "terminal"
    markdown = "markdown"
    html = "html"


class BriefDrafter(str, Enum):
    auto = "auto"
    template = "template"
    claude = "claude"


PlaybookOpt = Annotated[Optional[Path], typer.Option(
    "--playbook", help="Stage playbook YAML (default: SALES_SUPERVISOR_PLAYBOOK, else agents/coach/default_playbook.yaml).")]


def claude_from_env(kind: str):
    """The Claude brief drafter from the same variables as the coaching drafts (None: template only)."""
    from agents.coach.claude import ClaudeBriefDrafter
    from agents.drafting.config import DRAFTER_MODEL_ENV, DrafterConfig

    if kind == "template":
        return None
    cfg = DrafterConfig(api_key=os.environ.get("ANTHROPIC_API_KEY") or None, base_url=os.environ.get("ANTHROPIC_BASE_URL") or None,
                        model=os.environ.get(DRAFTER_MODEL_ENV) or DrafterConfig().model)
    if not cfg.has_api_key:
        if kind == "claude":
            err.print("[red]--drafter claude needs ANTHROPIC_API_KEY[/red]")
            raise typer.Exit(2)
        return None
    return ClaudeBriefDrafter(cfg)


def _as_of(settings, warehouse) -> dt.date:
    """--as-of, else the latest risk run's as-of, else the run default (demo anchor / today)."""
    if settings.as_of:
        return settings.as_of
    from agents.coach.facts import latest_risk_run
    from agents.coach.service import WarehouseBusy, _connect

    try:
        with _connect(warehouse) as con:
            run = latest_risk_run(con)
    except (WarehouseBusy, FileNotFoundError):
        run = None
    if run and run.get("as_of"):
        return dt.date.fromisoformat(str(run["as_of"])[:10])
    return settings.effective_as_of()


def brief(
    opportunity_id: Annotated[str, typer.Argument(help="The deal's CRM id (e.g. opp-000219).")],
    fmt: Annotated[BriefFormat, typer.Option("--format", help="terminal (default), markdown or html (written to a file).")] = BriefFormat.terminal,
    out: Annotated[Optional[Path], typer.Option(help="File for markdown/html (default <home>/outbox/briefs/<as-of>/<deal>.md|html).")] = None,
    drafter: Annotated[BriefDrafter, typer.Option(help="auto (Claude if ANTHROPIC_API_KEY is set, else template), template or claude.")] = BriefDrafter.auto,
    playbook: PlaybookOpt = None,
    home: HomeOpt = None,
    as_of: AsOfOpt = None,
) -> None:
    """A one-page brief for one deal: stakeholder map, next best action from the stage playbook, process adherence,
    pre-call prep. Every line cites the CRM rows and semantic-layer queries it rests on.

    Only the deal's rep, their manager or the manager's delegates may see it (you are who the identities file
    says); it is read-only advice (nothing is sent or written to the CRM) and every brief served is audited.
    """
    from agents.coach.facts import DealNotFound
    from agents.coach.playbook import PlaybookError, load_playbook
    from agents.coach.render import to_html, to_markdown, to_rich
    from agents.coach.service import BriefRefused, WarehouseBusy, serve_brief
    from agents.semantic_layer import SemanticLayer, SemanticLayerError, manifest_hash
    from sales_supervisor.dbt import manifest_is_stale, parse_dbt_project
    from sales_supervisor.settings import DBT_PROJECT_DIR

    from agents.warehouse import Warehouse, WarehouseError

    settings = _settings(home=home, as_of=as_of)
    try:
        warehouse = Warehouse.from_settings(settings)
    except WarehouseError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    if not warehouse.exists():
        err.print(f"[red]No warehouse at {settings.warehouse_path}; run `make demo` (or `sales-supervisor run`) first.[/red]")
        raise typer.Exit(2)
    requester = _operator(home)
    try:
        pb = load_playbook(playbook or os.environ.get("SALES_SUPERVISOR_PLAYBOOK") or None)
    except PlaybookError as exc:
        err.print(f"[red]Stage playbook:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    if manifest_is_stale():
        parse_dbt_project()
    target = DBT_PROJECT_DIR / "target"
    claude = claude_from_env(drafter.value)
    day = _as_of(settings, warehouse)
    with _open_ledger(home) as ledger:
        try:
            result = serve_brief(
                opportunity_id, requester, warehouse=warehouse, ledger=ledger, as_of=day,
                cache_dir=settings.home_dir / "coach",
                layer_factory=lambda: SemanticLayer(DBT_PROJECT_DIR, DBT_PROJECT_DIR, target, settings.warehouse_path),
                manifest_sha=manifest_hash(target / "semantic_manifest.json"), playbook=pb, claude=claude, channel="cli",
            )
        except BriefRefused as exc:
            err.print(f"[red]Not allowed:[/red] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(3) from None
        except DealNotFound as exc:
            err.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
            raise typer.Exit(2) from None
        except (WarehouseBusy, SemanticLayerError, FileNotFoundError) as exc:
            err.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
            raise typer.Exit(2) from None
    b = result.brief
    if result.findings:  # the template is built to pass; a finding here is a bug to report, shown, not hidden
        err.print(f"[yellow]The validator found {len(result.findings)} problem(s) in this brief:[/yellow]")
        for f in result.findings[:10]:
            err.print(f"  {escape(str(f))}", soft_wrap=True)
    if fmt == BriefFormat.terminal:
        console.print(to_rich(b))
    else:
        ext = "md" if fmt == BriefFormat.markdown else "html"
        path = out or settings.home_dir / "outbox" / "briefs" / day.isoformat() / f"{opportunity_id}.{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(to_markdown(b) if ext == "md" else to_html(b), encoding="utf-8")
        console.print(f"Wrote {path}")
    console.print(f"[dim]{result.latency_s * 1000:.0f} ms · cost ${result.cost_usd:.4f} · drafter {escape(b.drafter)}"
                  f" · team figures {'cached' if result.team_figures_cached else 'queried'} · audited as {escape(requester)}[/dim]")


def brief_eval(
    gate: Annotated[float, typer.Option(help="Minimum pass rate; below it the command exits 1.")] = 0.9,
    drafter: Annotated[BriefDrafter, typer.Option(help="auto, template or claude (the Claude drafter rewords the template).")] = BriefDrafter.auto,
    out: Annotated[Optional[Path], typer.Option(help="Report JSON (default <home>/evals/briefs.json).")] = None,
    home: HomeOpt = None,
) -> None:
    """The brief eval gate (`make eval-briefs`): the golden set of deal briefs (stages x data gaps), each checked for
    grounding and for what it must and must not say; exit 1 below the gate."""
    from evals.briefs import GOLDEN_BRIEFS, format_report, run_brief_eval

    settings = _settings(home=home)
    report = run_brief_eval(GOLDEN_BRIEFS, claude=claude_from_env(drafter.value), gate=gate)
    target = out or settings.home_dir / "evals" / "briefs.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(report.model_dump_json(indent=2), encoding="utf-8")
    console.print(format_report(report), markup=False, soft_wrap=True)
    with _open_ledger(home) as ledger:
        ledger.record_event("cli", "coach.brief_eval", "eval", "briefs", {
            "drafter": report.drafter, "pass_rate": report.pass_rate, "cases": report.cases, "gate": gate, "passed": report.gate_passed})
    raise typer.Exit(0 if report.gate_passed else 1)


def register(app: typer.Typer) -> None:
    app.command("brief")(brief)
    app.command("brief-eval")(brief_eval)
