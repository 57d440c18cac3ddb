"""`sales-supervisor autonomy`: levels per rule and how each stands against the L5 bar, sends waiting for
quiet hours to end, sends made on a manager's behalf (and recalling one), and today's LLM spend."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

autonomy_app = typer.Typer(
    help="Governed autonomy: levels per rule (L1-L5), quiet hours, sends on your behalf and recalls, LLM spend.",
    no_args_is_help=True,
)

HomeOpt = Annotated[Optional[Path], typer.Option("--home", help="Folder for all local state (default ./var, or SALES_SUPERVISOR_HOME).")]
PolicyOpt = Annotated[Optional[Path], typer.Option("--policy", help="Risk policy YAML (default: the configured one, else the shipped default).")]


def _autonomy(policy: Path | None, home: Path | None):
    from agents.autonomy.config import load_autonomy
    from agents.risk.policy import PolicyError, load_policy
    from sales_supervisor.cli import _settings, err

    try:
        return load_autonomy(load_policy(policy) if policy else _settings(home=home).risk_policy_in_force())
    except PolicyError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None


@autonomy_app.command("status")
def status(policy: PolicyOpt = None, home: HomeOpt = None) -> None:
    """Each rule's configured and effective level, its agreement against the L5 bar (read-only), and waiting sends."""
    from agents.autonomy.config import LEVEL_NAMES
    from agents.autonomy.levels import check_l5
    from agents.drafting.config import live_drafter_name
    from agents.ledger import autonomy as store
    from sales_supervisor.cli import _open_ledger, console

    settings = _autonomy(policy, home)
    drafter = live_drafter_name()
    with _open_ledger(home) as ledger:
        today = ledger.uow.now().date()
        table = Table(title=f"Autonomy levels (default {LEVEL_NAMES[settings.default_level]}; L5 bar: "
                            f"{settings.l5.min_agreement:.0%} agreement over {settings.l5.window_business_days} business days, "
                            f"at least {settings.l5.min_decisions} decisions, eval >= {settings.l5.min_eval_pass_rate:.0%})")
        for col in ("rule", "configured", "effective", "agreement in window", "why"):
            table.add_column(col)
        for rule_id in sorted(settings.rules):
            configured = settings.configured_level(rule_id)
            if configured != 5:
                table.add_row(rule_id, LEVEL_NAMES[configured], LEVEL_NAMES[configured], "-", "")
                continue
            check = check_l5(ledger, settings, rule_id, today, drafter)
            shown = "no decisions" if check.agreement is None else f"{check.agreement:.0%} ({check.approved}/{check.decided})"
            effective = 5 if check.passed else 4
            table.add_row(rule_id, LEVEL_NAMES[5], LEVEL_NAMES[effective], shown, "; ".join(check.problems) or "clears the bar")
        if not settings.rules:
            table.add_row("(every rule)", LEVEL_NAMES[settings.default_level], LEVEL_NAMES[settings.default_level], "-", "")
        console.print(table)
        waiting = store.waiting_sends(ledger.uow)
        console.print(f"{len(waiting)} send(s) waiting for the end of the recipient's quiet hours"
                      + (":" if waiting else "."))
        for w in waiting:
            item = ledger.get_item(w.item_id)
            rep = ((item.evidence or {}).get("rep") or {}).get("rep_name") if item else None
            console.print(f"  {escape(rep or w.item_id)} on {w.channel}: not before {w.not_before:%Y-%m-%d %H:%M} UTC ({escape(w.reason)})")


@autonomy_app.command("sent")
def sent(
    manager: Annotated[Optional[str], typer.Option(help="Only sends made on behalf of this manager id.")] = None,
    days: Annotated[int, typer.Option(help="How far back to look.")] = 7,
    home: HomeOpt = None,
) -> None:
    """Messages sent on a manager's behalf at L5 (delivery id, rep, deal, when, recalled or not)."""
    from agents.ledger import autonomy as store
    from sales_supervisor.cli import _open_ledger, console

    with _open_ledger(home) as ledger:
        rows = store.autonomous_sends(ledger.uow, manager, since=ledger.uow.now() - dt.timedelta(days=days))
    if not rows:
        console.print(f"No sends on anyone's behalf in the last {days} day(s).")
        return
    table = Table(title="Sent on your behalf (L5)")
    for col in ("delivery", "manager", "rep", "deal", "channel", "sent (UTC)", "recalled"):
        table.add_column(col)
    for r in rows:
        d, item, recall = r["delivery"], r["item"], r["recall"]
        ev = item.evidence or {}
        table.add_row(
            str(d.delivery_id), item.manager_id, str((ev.get("rep") or {}).get("rep_name") or item.rep_id),
            str(ev.get("subject_label") or item.opportunity_id), d.channel, f"{d.sent_at:%Y-%m-%d %H:%M}",
            f"by {recall.recalled_by}" if recall else ("no" if d.channel == "rep_slack" else "cannot (email)"),
        )
    console.print(table)


@autonomy_app.command("recall")
def recall(
    delivery: Annotated[str, typer.Argument(help="The delivery id from `autonomy sent` or the digest (or its idempotency key).")],
    note: Annotated[Optional[str], typer.Option(help="Why, for the audit trail.")] = None,
    home: HomeOpt = None,
) -> None:
    """Take back a message sent on your behalf (Slack: the DM is deleted; email cannot be recalled). Counts against the rule's L5 agreement."""
    from agents.autonomy.recall import recall_send
    from agents.ledger import LedgerError, UnknownDelivery
    from agents.review.run import slack_web_client
    from sales_supervisor.cli import _open_ledger, _operator, console, err

    operator = _operator(home)
    with _open_ledger(home) as ledger:
        try:
            result = recall_send(ledger, delivery, by=operator, slack_client=slack_web_client(), note=note)
        except UnknownDelivery:
            err.print(f"[red]No delivery {escape(delivery)!s}; `sales-supervisor autonomy sent` lists them.[/red]")
            raise typer.Exit(2) from None
        except LedgerError as exc:
            err.print(f"[red]Refused:[/red] {escape(str(exc))}")
            raise typer.Exit(4) from None
    what = "deleted from the rep's Slack DM" if result.get("deleted") else "already gone from Slack; recorded as recalled"
    console.print(f"Recalled delivery {result['delivery_id']} (item {result['item_id']}): {what}, by {escape(operator)}.")


@autonomy_app.command("spend")
def spend(
    day: Annotated[Optional[str], typer.Option(help="UTC day (YYYY-MM-DD); default today.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the KPIs as JSON.")] = False,
    policy: PolicyOpt = None,
    home: HomeOpt = None,
) -> None:
    """LLM spend for a day against the daily and per-rep caps, cost per draft, drafts switched to the template."""
    from agents.autonomy.spend import spend_summary
    from sales_supervisor.cli import _open_ledger, console, err

    caps = _autonomy(policy, home).spend
    with _open_ledger(home) as ledger:
        try:
            when = dt.date.fromisoformat(day) if day else ledger.uow.now().date()
        except ValueError:
            err.print(f"[red]--day must be a date like 2026-10-01, got {day!r}[/red]")
            raise typer.Exit(2) from None
        kpis = spend_summary(ledger, caps, when)
    if as_json:
        console.print_json(json.dumps(kpis))
        return
    per_rep = f", ${caps.per_rep_daily_usd:.2f} per rep" if caps.per_rep_daily_usd is not None else ""
    console.print(
        f"LLM spend on {kpis['spend_day']}: ${kpis['spend_today_usd']:.4f} of ${caps.daily_usd:.2f} a day{per_rep} "
        f"(${caps.per_draft_usd:.2f} reserved per draft). {kpis['drafts_today']} drafts: {kpis['llm_drafts_today']} by the LLM, "
        f"{kpis['template_drafts_today']} by the template"
        + (f"; ${kpis['cost_per_llm_draft_usd']:.4f} per LLM draft" if kpis["cost_per_llm_draft_usd"] is not None else "") + "."
    )
    for rep, usd in kpis["spend_by_rep_usd"].items():
        console.print(f"  {escape(rep)}: ${usd:.4f}")
