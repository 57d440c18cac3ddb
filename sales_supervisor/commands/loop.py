"""Commands of the learning loop (issue 17): policy versions, action outcomes, the rule lab.

``policy list/show/diff/propose/apply/rollback/reject`` manage the policy
version store (agents/risk/versions.py). Which policy a run reads: an explicit
``--policy`` file (or SALES_SUPERVISOR_RISK_POLICY) wins, then the version applied
here, then the shipped default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from sales_supervisor.cli import HomeOpt, _open_ledger, _operator, _settings, console, err

policy_app = typer.Typer(
    help="Risk policy versions: list, diff, propose, apply, roll back (every change audited). "
    "What a run reads: --policy / SALES_SUPERVISOR_RISK_POLICY wins, then the applied version, then the shipped default.",
    no_args_is_help=True,
)


def _store(ledger):
    from agents.risk.versions import PolicyVersionStore

    return PolicyVersionStore(ledger)


def _version_ref(ref: str) -> int | str:
    if ref.lower() in ("default", "shipped"):
        return "default"
    try:
        return int(ref.lstrip("v#"))
    except ValueError:
        err.print(f"[red]A policy version is a number from `policy list` (or 'default'), got {ref!r}[/red]")
        raise typer.Exit(2) from None


def _fail(exc: Exception, code: int = 2) -> typer.Exit:
    err.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
    return typer.Exit(code)


@policy_app.command("list")
def policy_list(home: HomeOpt = None) -> None:
    """Every stored policy version, newest first, and which one a run reads."""
    settings = _settings(home=home)
    with _open_ledger(home) as ledger:
        versions = _store(ledger).list()
    table = Table(title="Policy versions")
    for col in ("id", "status", "policy version", "created", "author", "reason", "digest"):
        table.add_column(col)
    for v in versions:
        table.add_row(str(v.version_id), v.status, v.policy_version, v.created_at.strftime("%Y-%m-%d %H:%M"),
                      v.author, escape(v.reason[:60]), v.digest[:12])
    console.print(table if versions else "No policy versions stored yet (the shipped default is in force).")
    _print_in_force(settings, home)


def _print_in_force(settings, home) -> None:
    if settings.risk_policy is not None:
        console.print(f"In force for runs: the file {settings.risk_policy} (--policy / SALES_SUPERVISOR_RISK_POLICY wins "
                      "over applied versions).", soft_wrap=True)
        return
    with _open_ledger(home) as ledger:
        cur = _store(ledger).current()
    if cur is None:
        console.print("In force for runs: the shipped default (agents/risk/default_policy.yaml).")
    else:
        console.print(f"In force for runs: version {cur.version_id} (policy {cur.policy_version}), applied by "
                      f"{cur.applied_by} at {cur.applied_at:%Y-%m-%d %H:%M} UTC.", soft_wrap=True)


@policy_app.command("show")
def policy_show(version: str, home: HomeOpt = None) -> None:
    """A version's YAML, reason and evidence."""
    import json

    from agents.risk.versions import PolicyVersionError

    ref = _version_ref(version)
    with _open_ledger(home) as ledger:
        if ref == "default":
            from agents.risk.policy import DEFAULT_POLICY_PATH

            console.print(DEFAULT_POLICY_PATH.read_text(), markup=False, soft_wrap=True)
            return
        try:
            v = _store(ledger).get(ref)
        except PolicyVersionError as exc:
            raise _fail(exc) from None
    console.print(f"Version {v.version_id} ({v.status}), policy {v.policy_version}, by {v.author}: {escape(v.reason)}",
                  soft_wrap=True)
    if v.evidence:
        console.print("Evidence:")
        console.print(json.dumps(v.evidence, indent=1), markup=False, soft_wrap=True)
    console.print(v.yaml_text, markup=False, soft_wrap=True)


@policy_app.command("diff")
def policy_diff(
    a: Annotated[str, typer.Argument(help="From: a version id, or 'default'.")],
    b: Annotated[Optional[str], typer.Argument(help="To: a version id, or 'default' (default: the applied version).")] = None,
    home: HomeOpt = None,
) -> None:
    """Unified diff of two versions' YAML, then the per-rule threshold changes."""
    from agents.risk.versions import PolicyVersionError

    with _open_ledger(home) as ledger:
        store = _store(ledger)
        try:
            if b is None:
                cur = store.current()
                b_ref: int | str = cur.version_id if cur else "default"
            else:
                b_ref = _version_ref(b)
            console.print(store.diff(_version_ref(a), b_ref), markup=False, soft_wrap=True, highlight=False)
        except PolicyVersionError as exc:
            raise _fail(exc) from None


@policy_app.command("propose")
def policy_propose(
    file: Annotated[Optional[Path], typer.Option("--file", help="Propose this YAML as a new version (validated). "
                                                 "Without it: candidates from the last 4 weeks' dismissals.")] = None,
    reason: Annotated[Optional[str], typer.Option(help="Why (required with --file; audited).")] = None,
    home: HomeOpt = None,
) -> None:
    """Store a candidate policy version; nothing is applied until `policy apply`."""
    from agents.risk.policy import PolicyError

    author = _operator(home)  # established from the identities file, not asserted
    if file is None:
        from sales_supervisor.commands.loop_learning import propose_from_dismissals

        propose_from_dismissals(home, author)
        return
    if not reason:
        err.print("[red]--reason is required with --file (it is audited).[/red]")
        raise typer.Exit(2)
    try:
        text = file.read_text()
    except OSError as exc:
        raise _fail(f"cannot read {file}: {exc.strerror or exc}") from None
    with _open_ledger(home) as ledger:
        store = _store(ledger)
        try:
            v = store.propose(text, author, reason)
        except PolicyError as exc:
            raise _fail(f"Refused: {exc}") from None
        cur = store.current()
        console.print(f"Proposed version {v.version_id} (policy {v.policy_version}); not applied.")
        console.print(store.diff(cur.version_id if cur else "default", v.version_id), markup=False, soft_wrap=True,
                      highlight=False)
    console.print(f"Apply it with: sales-supervisor policy apply {v.version_id}")


@policy_app.command("apply")
def policy_apply(version: str, home: HomeOpt = None) -> None:
    """Apply a proposed version: the next run reads it (unless --policy names a file). Audited; shows the diff."""
    from agents.risk.policy import PolicyError
    from agents.risk.versions import PolicyVersionError

    who = _operator(home)
    ref = _version_ref(version)
    with _open_ledger(home) as ledger:
        store = _store(ledger)
        try:
            before = store.current()
            v = store.apply(ref, who)
        except (PolicyVersionError, PolicyError) as exc:
            raise _fail(exc) from None
        console.print(store.diff(before.version_id if before else "default", v.version_id), markup=False,
                      soft_wrap=True, highlight=False)
    console.print(f"Applied version {v.version_id} (policy {v.policy_version}) as {who}; "
                  f"undo with: sales-supervisor policy rollback")
    _warn_if_overridden(home)


def _warn_if_overridden(home) -> None:
    settings = _settings(home=home)
    if settings.risk_policy is not None:
        err.print(f"[yellow]Note: SALES_SUPERVISOR_RISK_POLICY={settings.risk_policy} is set, and an explicit file "
                  "wins over applied versions.[/yellow]", soft_wrap=True)


@policy_app.command("rollback")
def policy_rollback(
    to: Annotated[Optional[str], typer.Argument(help="An earlier applied version id (default: one step back).")] = None,
    home: HomeOpt = None,
) -> None:
    """Return to the previously applied version (or the shipped default, or an earlier applied version by id)."""
    from agents.risk.policy import PolicyError
    from agents.risk.versions import PolicyVersionError

    who = _operator(home)
    ref = None if to is None else _version_ref(to)
    with _open_ledger(home) as ledger:
        store = _store(ledger)
        before = store.current()
        try:
            if ref == "default":
                if before is None:
                    raise PolicyVersionError("the shipped default is already in force")
                while store.current() is not None:
                    store.rollback(None, actor=who)
                now = None
            else:
                now = store.rollback(ref, actor=who)
        except (PolicyVersionError, PolicyError) as exc:
            raise _fail(exc) from None
        console.print(store.diff(before.version_id if before else "default", now.version_id if now else "default"),
                      markup=False, soft_wrap=True, highlight=False)
    console.print("Rolled back to " + (f"version {now.version_id} (policy {now.policy_version})" if now else
                                       "the shipped default") + f" as {who}.")
    _warn_if_overridden(home)


@policy_app.command("reject")
def policy_reject(
    version: str,
    reason: Annotated[str, typer.Option(help="Why (audited).")],
    home: HomeOpt = None,
) -> None:
    """Mark a proposal as rejected (it stays on record)."""
    from agents.risk.versions import PolicyVersionError

    who = _operator(home)
    with _open_ledger(home) as ledger:
        try:
            v = _store(ledger).reject(_version_ref(version), who, reason)
        except PolicyVersionError as exc:
            raise _fail(exc) from None
    console.print(f"Rejected version {v.version_id}.")


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")
