"""`sales-supervisor console`: serve the web console; `console add-user`: create a sign-in account."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

console_app = typer.Typer(
    help="The supervisor console (web): managers triage digests, ops admins watch and steer the agent.",
    invoke_without_command=True,
)
out = Console()
err = Console(stderr=True)

HomeOpt = Annotated[Optional[Path], typer.Option("--home", help="Folder for all local state (default ./var, or SALES_SUPERVISOR_HOME).")]


def _settings(home: Path | None):
    from sales_supervisor.settings import Settings

    return Settings(**({"home": home} if home else {}))


@console_app.callback()
def serve(
    ctx: typer.Context,
    host: Annotated[Optional[str], typer.Option(help="Interface to listen on (default 127.0.0.1, SALES_SUPERVISOR_CONSOLE_HOST).")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port (default 8040, SALES_SUPERVISOR_CONSOLE_PORT).")] = None,
    home: HomeOpt = None,
) -> None:
    """Serve the console (uvicorn) and print its address. Subcommands: add-user, users."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from agents.ledger.accounts import AccountsFile
    from sales_supervisor.console.app import create_app
    from sales_supervisor.console.settings import ConsoleSettings

    settings = _settings(home)
    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    cs = ConsoleSettings(**overrides)
    users = AccountsFile(cs.users_path(settings.home_dir))
    app = create_app(settings, cs)
    out.print(f"Supervisor console: [bold]{cs.base_url()}/[/bold]  (state {settings.home_dir}; Ctrl-C stops it)", soft_wrap=True)
    if not users.load() and not cs.trusted_header and settings.crm_source == "demo":
        _demo_accounts(app.state.console.ledger, users)
    elif not users.load() and not cs.trusted_header:
        out.print(
            f"[yellow]No accounts yet in {users.path}.[/yellow] Add one: `sales-supervisor console add-user LOGIN --role manager "
            "--approver-id MANAGER_ID` (or --role ops_admin).", soft_wrap=True,
        )
    uvicorn.run(app, host=cs.host, port=cs.port, log_level="warning", proxy_headers=bool(cs.trusted_header),
                forwarded_allow_ips=",".join(cs.trusted_proxies) if cs.trusted_header else None)


def _demo_accounts(ledger, users) -> None:
    """On the demo CRM with no accounts yet: one account per manager with a digest, and an ops admin, sharing one
    random password printed here once (the console listens on 127.0.0.1 unless told otherwise)."""
    import secrets

    from sales_supervisor.console.views import manager_names

    names = manager_names(ledger)
    if not names:
        out.print("[yellow]No digests yet: run `make demo` first, then restart the console.[/yellow]")
        return
    password = secrets.token_urlsafe(9)
    for manager_id, name in sorted(names.items()):
        users.add(manager_id, password, role="manager", approver_id=manager_id, name=name)
    users.add("admin", password, role="ops_admin", name="Sales ops admin")
    out.print(f"Demo accounts created in {users.path} (password [bold]{password}[/bold] for each):", soft_wrap=True)
    for manager_id, name in sorted(names.items()):
        out.print(f"  {manager_id:<14} manager  {name}")
    out.print("  admin          ops admin")
    out.print("Real accounts: `sales-supervisor console add-user LOGIN --role manager --approver-id MANAGER_ID`.")


@console_app.command("add-user")
def add_user(
    login: Annotated[str, typer.Argument(help="The sign-in name (with SSO: the login your proxy puts in the trusted header).")],
    role: Annotated[str, typer.Option(help="manager, delegate or ops_admin.")],
    approver_id: Annotated[Optional[str], typer.Option(help="The approver id this person decides as (the manager id, or the delegate's id); the same id the CLI identities file and Slack map to.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Display name.")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from standard input (for scripts).")] = False,
    sso_only: Annotated[bool, typer.Option("--sso-only", help="No password: this login signs in only through the trusted SSO header.")] = False,
    home: HomeOpt = None,
) -> None:
    """Add (or replace) a console account; the password is stored as an argon2id hash."""
    from agents.ledger.accounts import AccountsFile
    from sales_supervisor.console.settings import ConsoleSettings

    settings = _settings(home)
    path = ConsoleSettings().users_path(settings.home_dir)
    if sso_only:
        password = None
    elif password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        account = AccountsFile(path).add(login, password, role=role, approver_id=approver_id, name=name)
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    known = settings.delegates()
    out.print(f"Account {account.login} ({account.role}{', approver ' + account.approver_id if account.approver_id else ''}) saved in {path}.",
              soft_wrap=True)
    if account.role == "delegate" and not any(account.approver_id in ds for ds in known.values()):
        out.print(f"[yellow]{account.approver_id} is nobody's delegate yet:[/yellow] add it under a manager in the delegates file "
                  "(SALES_SUPERVISOR_DELEGATES_FILE) or it sees no digest.", soft_wrap=True)


@console_app.command("users")
def list_users(home: HomeOpt = None) -> None:
    """List console accounts (login, role, approver id; never the hashes)."""
    from agents.ledger.accounts import AccountsFile
    from sales_supervisor.console.settings import ConsoleSettings

    settings = _settings(home)
    path = ConsoleSettings().users_path(settings.home_dir)
    accounts = AccountsFile(path).load()
    if not accounts:
        out.print(f"No accounts in {path}.")
        return
    for a in accounts.values():
        out.print(f"{a.login:<16} {a.role:<10} {a.approver_id or '-':<14} {a.name or ''}{'' if a.password_hash else '  (SSO only)'}")
