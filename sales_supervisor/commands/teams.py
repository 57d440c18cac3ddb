"""`sales-supervisor teams ...`: Microsoft Teams as a second manager channel (serve, post, resolve)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
err = Console(stderr=True)

teams_app = typer.Typer(
    help="Microsoft Teams, a second manager channel: the digest as an Adaptive Card with approve / edit / dismiss. "
    "Needs TEAMS_APP_ID and TEAMS_APP_PASSWORD (the Azure Bot's app registration); see the README's Teams section.",
    no_args_is_help=True,
)
HomeOpt = Annotated[Optional[Path], typer.Option("--home", help="Folder for all local state (default ./var, or SALES_SUPERVISOR_HOME).")]


def _teams(home: Path | None):
    from agents.review.teams import TeamsSettings
    from sales_supervisor.cli import _settings

    settings = _settings(home=home)
    try:
        return settings, TeamsSettings.from_env(home=settings.home_dir)
    except ValueError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None


@teams_app.command("serve")
def teams_serve(
    port: Annotated[int, typer.Option(help="HTTP port (the Bot Framework's usual 3978).")] = 3978,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    home: HomeOpt = None,
) -> None:
    """Run the Teams bot: every request's Bot Framework JWT is validated; decisions go to the review ledger."""
    from agents.review.teams import MESSAGES_PATH, serve
    from sales_supervisor.cli import _open_ledger, _startup_mode

    settings, teams_settings = _teams(home)
    with _open_ledger(home) as ledger:
        mode = _startup_mode(ledger, settings)
        console.print(f"Teams bot in {mode} mode on {host}:{port} (messaging endpoint: https://<your host>{MESSAGES_PATH})")
        from sales_supervisor.commands.ask import slack_ask_function

        serve(port, ledger=ledger, settings=teams_settings, host=host, ask=slack_ask_function(settings, ledger))


@teams_app.command("post")
def teams_post(home: HomeOpt = None) -> None:
    """Post each manager's latest digest (with undecided items) to their Teams chat, at most once.
    Exit code 1 when a post was not sent or its outcome is unknown."""
    from agents.review.teams import STATUS_NOT_SENT, STATUS_UNKNOWN, TeamsApp
    from sales_supervisor.cli import _open_ledger

    _settings, teams_settings = _teams(home)
    with _open_ledger(home) as ledger:
        results = TeamsApp(ledger, teams_settings).post_latest(actor="cli")
    if not results:
        console.print("No manager has a Teams chat with the bot yet (they install the app, or write to it, first).")
        return
    table = Table(title="Teams digests")
    for col in ("manager", "digest", "status", "detail"):
        table.add_column(col)
    bad = False
    for manager, digest, status, detail in results:
        bad |= status in (STATUS_NOT_SENT, STATUS_UNKNOWN)
        colour = {"sent": "green", STATUS_NOT_SENT: "yellow", STATUS_UNKNOWN: "red"}.get(status, "white")
        table.add_row(manager, digest, f"[{colour}]{status}[/{colour}]", escape(detail))
    console.print(table)
    raise typer.Exit(1 if bad else 0)


@teams_app.command("resolve")
def teams_resolve(
    digest_id: Annotated[str, typer.Argument(help="The digest whose Teams post has an unknown outcome.")],
    sent: Annotated[bool, typer.Option("--sent/--not-sent", help="What you saw in the manager's Teams chat.")] = ...,
    resolver: Annotated[Optional[str], typer.Option("--as", help="Your approver id (checked against the identities file; default: yourself).")] = None,
    home: HomeOpt = None,
) -> None:
    """Record what a person saw in Teams for a post whose outcome was unknown (--not-sent: the next post retries)."""
    from agents.review.teams import TeamsApp
    from sales_supervisor.cli import _acting_as, _open_ledger

    _settings, teams_settings = _teams(home)
    acting, operator = _acting_as(resolver, home)
    if acting != operator:
        err.print(f"[red]Refused:[/red] you are {escape(operator)}; a post is resolved by whoever checked it, as themselves.")
        raise typer.Exit(4)
    with _open_ledger(home) as ledger:
        try:
            status = TeamsApp(ledger, teams_settings).resolve(digest_id, sent=sent, resolver=operator)
        except (KeyError, ValueError) as exc:
            err.print(f"[red]{escape(str(exc))}[/red]")
            raise typer.Exit(2) from None
    console.print(f"Recorded: digest {digest_id}'s Teams post {status}, by {operator}.")


@teams_app.command("manifest")
def teams_manifest(
    app_id: Annotated[Optional[str], typer.Option("--app-id", help="The Azure Bot's app id (default: TEAMS_APP_ID).")] = None,
    name: Annotated[str, typer.Option(help="The app's name in Teams.")] = "Sales Supervisor",
) -> None:
    """Print the Teams app manifest.json (zip it with color.png and outline.png icons and upload it in Teams)."""
    import json
    import os

    from agents.review.teams import app_manifest

    app_id = app_id or os.environ.get("TEAMS_APP_ID")
    if not app_id:
        err.print("[red]--app-id (or TEAMS_APP_ID) is required: the Azure Bot's app id[/red]")
        raise typer.Exit(2)
    console.print(json.dumps(app_manifest(app_id, name=name), indent=2), soft_wrap=True, markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(teams_app, name="teams")
