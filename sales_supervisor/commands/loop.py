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


def policy_from_default_version() -> str:
    from agents.risk.policy import load_policy

    return load_policy(None).version


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
    threshold: Annotated[float, typer.Option(min=0, max=1, help="Dismissal rate above which a rule gets a candidate.")] = 0.3,
    weeks: Annotated[int, typer.Option(min=1, help="Window of decisions, in weeks up to the as-of date.")] = 4,
    min_decisions: Annotated[int, typer.Option(min=1, help="Fewest decisions on a rule for its rate to count.")] = 5,
    backtest_months: Annotated[int, typer.Option(min=0, help="Backtest window for the before/after figures (0: skip).")] = 3,
    step_days: Annotated[int, typer.Option(min=1, help="Days between backtest replays.")] = 14,
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="Window end (default: the run's as-of date).")] = None,
    claude: Annotated[bool, typer.Option("--claude", help="Group the reasons with Claude (ANTHROPIC_API_KEY), checked "
                                         "by a validator; the keyword taxonomy answers whatever fails.")] = False,
    home: HomeOpt = None,
) -> None:
    """Store a candidate policy version; nothing is applied until `policy apply`. Without --file: for each rule
    dismissed in more than --threshold of its decisions over the last --weeks, a candidate (threshold change,
    exclusion or demotion to informational) with its evidence: the dismissals, and the backtest lift and flag
    volume before and after."""
    from agents.risk.policy import PolicyError

    author = _operator(home)  # established from the identities file, not asserted
    if file is None:
        _propose_from_dismissals(home, author, threshold=threshold, weeks=weeks, min_decisions=min_decisions,
                                 backtest_months=backtest_months, step_days=step_days, as_of=as_of, claude=claude)
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
        base_version = cur.policy_version if cur else policy_from_default_version()
        if v.policy_version == base_version:
            err.print(f"[yellow]Note: its `version:` is still {v.policy_version!r}, like the policy in force; every "
                      "flag records it, so bump it to tell their flags apart.[/yellow]", soft_wrap=True)
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


def rule_lab(
    csv: Annotated[Optional[Path], typer.Option("--csv", help="Labelled outcome table: one row per closed deal, "
                                                "feature columns, an outcome column.")] = None,
    table: Annotated[Optional[str], typer.Option("--table", help="Or a warehouse table (schema.table), read-only.")] = None,
    expression: Annotated[Optional[str], typer.Option("--expression", "-e", help="The rule, in the custom-rule "
                                                      "expression language over the table's columns, e.g. 'days_in_stage > 40'.")] = None,
    rule: Annotated[Optional[str], typer.Option("--rule", help="Or a custom rule of the policy in force (its expression).")] = None,
    outcome: Annotated[str, typer.Option(help="The outcome column: won/lost values, or 0/1 (a column named *won* "
                                         "reads 1 as won, any other 1 as lost).")] = "outcome",
    sweep: Annotated[Optional[str], typer.Option(help="Feature to sweep as 'feature > t' (default: the rule's own "
                                                 "feature when it is one comparison).")] = None,
    min_flagged: Annotated[int, typer.Option(min=1, help="Fewest flagged deals for a lift to count.")] = 10,
    out: Annotated[Optional[Path], typer.Option(help="Folder for the table (JSON) and charts (PNG/HTML); "
                                                "default <home>/rule_lab.")] = None,
    policy: Annotated[Optional[Path], typer.Option("--policy", help="Policy file for --rule (default: the policy in force).")] = None,
    home: HomeOpt = None,
) -> None:
    """Judge a rule or a threshold on labelled history (no dates needed): share flagged, loss rate flagged vs
    unflagged, lift with a bootstrap 95% interval, and a sweep over the p50..p95 of won deals."""
    import json

    from agents.learning.rule_lab import LabError, load_labelled_table, run_rule_lab

    settings = _settings(home=home, risk_policy=policy)
    if (expression is None) == (rule is None):
        err.print("[red]Give the rule as --expression TEXT or --rule ID (a custom rule of the policy).[/red]")
        raise typer.Exit(2)
    if rule is not None:
        pol = settings.risk_policy_in_force()
        if not pol.is_custom(rule):
            custom = ", ".join(pol.spec.custom_rules) or "none"
            err.print(f"[red]{rule!r} is not a custom rule of policy {pol.version} (custom rules: {custom}); built-in "
                      "rules need the marts: use `sales-supervisor backtest`, or --expression.[/red]", soft_wrap=True)
            raise typer.Exit(2)
        expression = pol.resolve(rule).params.expression
    try:
        df = load_labelled_table(csv, table=table, warehouse=_warehouse(settings))
        report = run_rule_lab(df, expression, outcome=outcome, sweep=sweep, min_flagged=min_flagged)
    except LabError as exc:
        raise _fail(exc) from None
    console.print(report.table(), markup=False, soft_wrap=True, highlight=False)
    folder = out or settings.home_dir / "rule_lab"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rule_lab.json").write_text(json.dumps(report.as_dict(), indent=1, default=str) + "\n")
    written = [folder / "rule_lab.json"]
    try:
        from agents.learning.charts import rule_lab_charts

        written += rule_lab_charts(report, folder)
    except ImportError:
        pass
    console.print("Written: " + ", ".join(str(p) for p in written), soft_wrap=True)


def _current_policy_text(settings, store) -> tuple[str, str]:
    from agents.risk.policy import DEFAULT_POLICY_PATH

    if settings.risk_policy is not None:
        return settings.risk_policy.read_text(), f"the file {settings.risk_policy}"
    cur = store.current()
    if cur is not None:
        return cur.yaml_text, f"version {cur.version_id}"
    return DEFAULT_POLICY_PATH.read_text(), "the shipped default"


def _backtest_figures(report, rule_id: str) -> dict:
    r = report.rule(rule_id)
    if r is None:
        return {"flagged_deals": 0, "flags_total": sum(report.flags_per_date.values())}
    est = r.estimate
    return {
        "flagged_deals": r.flagged_deals, "flagged_bad_rate": r.flagged_bad_rate, "unflagged_bad_rate": r.unflagged_bad_rate,
        "lift": est.lift, "lift_ci": [est.low, est.high], "verdict": est.verdict,
        "flags_total": sum(report.flags_per_date.values()), "replay_dates": len(report.dates),
        "window": [report.start.isoformat(), report.end.isoformat()],
    }


def _fmt_bt(f: dict) -> str:
    if "lift" not in f:
        return f"0 deals flagged; {f['flags_total']} flags in all"
    lift = "-" if f["lift"] is None else f"{f['lift']:.2f}"
    ci = "-" if f["lift_ci"][0] is None else f"{f['lift_ci'][0]:.2f}-{f['lift_ci'][1]:.2f}"
    return (f"{f['flagged_deals']} deals flagged, lift {lift} (95% CI {ci}, {f['verdict']}); "
            f"{f['flags_total']} flags in all over {f['replay_dates']} replay dates")


def _claude_client():
    import os

    import anthropic

    if not os.getenv("ANTHROPIC_API_KEY"):
        raise _fail("--claude needs ANTHROPIC_API_KEY (without it the keyword taxonomy groups the reasons)")
    return anthropic.Anthropic(api_key=os.environ["ANTHROPIC_API_KEY"], base_url=os.getenv("ANTHROPIC_BASE_URL"),
                               max_retries=2)


def _propose_from_dismissals(home, author, *, threshold, weeks, min_decisions, backtest_months, step_days, as_of,
                             claude=False) -> None:
    import datetime as dt

    from agents.learning.dismissals import (
        account_tags_for,
        approved_opportunities,
        dismissals_by_rule,
        propose_candidate,
        rules_over_threshold,
    )
    from agents.risk.versions import policy_from_text, threshold_changes

    settings = _settings(home=home, as_of=as_of)
    day = settings.effective_as_of()
    with _open_ledger(home) as ledger:
        store = _store(ledger)
        stats = dismissals_by_rule(ledger.uow, day, weeks=weeks)
        if claude:
            from agents.drafting.config import DrafterConfig
            from agents.learning.dismissals import group_reasons_with_claude, regroup

            client, model = _claude_client(), DrafterConfig().model
            for rule_id, st in list(stats.items()):
                if st.dismissals:
                    cats, problems = group_reasons_with_claude([d.reason for d in st.dismissals], client, model=model)
                    stats[rule_id] = regroup(st, cats)
                    for p in problems:
                        err.print(f"[yellow]{rule_id}: {escape(p)}[/yellow]", soft_wrap=True)
        table = Table(title=f"Dismissal rate per rule, {weeks} weeks to {day}")
        for col in ("rule", "decided", "dismissed", "rate", "reasons (keyword taxonomy)"):
            table.add_column(col, justify="left" if col in ("rule", "reasons (keyword taxonomy)") else "right")
        for s in stats.values():
            table.add_row(s.rule_id, str(s.decided), str(s.dismissed), f"{s.rate:.0%}",
                          ", ".join(f"{k} {v}" for k, v in s.categories.items()) or "-")
        console.print(table if stats else f"No decisions in the {weeks} weeks to {day}.")
        over = rules_over_threshold(stats, threshold=threshold, min_decisions=min_decisions)
        if not over:
            console.print(f"No rule is dismissed in more than {threshold:.0%} of at least {min_decisions} decisions: "
                          "nothing to propose.")
            return
        text, source = _current_policy_text(settings, store)
        current = policy_from_text(text, source=source)
        console.print(f"Candidates are changes to {source} (policy {current.version}).")
        before = None
        layer_cm = None
        if backtest_months:
            from agents.risk.quality import backtest as run_backtest
            from sales_supervisor.cli import _semantic_layer

            end = day - dt.timedelta(days=1)
            start = end - dt.timedelta(days=round(backtest_months * 30.44))
            layer_cm = _semantic_layer(settings)
            layer = layer_cm.__enter__()
            console.print(f"Backtesting {start} to {end} every {step_days} days, before and after each candidate...")
            before = run_backtest(settings.warehouse_path, layer, current, start, end, step_days)
        names = _people_names(settings)
        deal_names = _deal_names(settings, [d.opportunity_id for s in over for d in s.dismissals if d.opportunity_id])
        try:
            for s in over:
                deals = [d.opportunity_id for d in s.dismissals if d.opportunity_id]
                approved = approved_opportunities(ledger.uow, s.rule_id)
                tags = account_tags_for(_warehouse(settings), deals + approved) if _warehouse(settings).exists() else {}
                cand = propose_candidate(text, current, s, account_tags=tags, approved_opportunities=approved)
                new_policy = policy_from_text(cand.yaml_text)
                console.print(f"\n[bold]{s.rule_id}[/bold]: dismissed in {s.dismissed} of {s.decided} decisions "
                              f"({s.rate:.0%}); candidate: {escape(cand.summary)}", soft_wrap=True)
                for d in s.dismissals[:10]:
                    console.print(f"  {d.decided_at:%Y-%m-%d} {names.get(d.manager_id, d.manager_id)} on "
                                  f"{deal_names.get(d.opportunity_id, d.opportunity_id)} ({d.opportunity_id}): "
                                  f"{escape(d.reason or '(no reason)')} " + escape(f"[{d.category}]"), soft_wrap=True)
                if len(s.dismissals) > 10:
                    console.print(f"  ... and {len(s.dismissals) - 10} more (all in the version's evidence)")
                if before is not None:
                    after = run_backtest(settings.warehouse_path, layer, new_policy, before.start, before.end, step_days)
                    fb, fa = _backtest_figures(before, s.rule_id), _backtest_figures(after, s.rule_id)
                    cand.evidence["backtest"] = {"before": fb, "after": fa}
                    console.print(f"  Backtest before: {_fmt_bt(fb)}", soft_wrap=True, highlight=False)
                    console.print(f"  Backtest after:  {_fmt_bt(fa)}", soft_wrap=True, highlight=False)
                cand.evidence["changes"] = [str(c) for c in threshold_changes(current, new_policy)]
                reason = (f"{s.rule_id} dismissed in {s.rate:.0%} of {s.decided} decisions over {weeks} weeks "
                          f"to {day}: {cand.summary}")
                v = store.propose(cand.yaml_text, author, reason, evidence=cand.evidence)
                for c in cand.evidence["changes"]:
                    console.print(f"  change: {escape(c)}", soft_wrap=True)
                console.print(f"  Proposed version {v.version_id} (not applied). Review: sales-supervisor policy diff "
                              f"default {v.version_id}; apply: sales-supervisor policy apply {v.version_id}",
                              soft_wrap=True)
        finally:
            if layer_cm is not None:
                layer_cm.__exit__(None, None, None)


outcomes_app = typer.Typer(
    help="Action outcomes: did the change each approved action aimed for happen? Effectiveness per rule, manager, rep.",
    no_args_is_help=True,
)


@outcomes_app.command("demo-history")
def outcomes_demo_history(home: HomeOpt = None) -> None:
    """Load the demo CRM's planted review history (past items, approvals, dismissals) into the ledger (once)."""
    from connectors.demo.plant_loop import HISTORY_FILE, seed_review_history

    settings = _settings(home=home)
    if not (settings.demo_dir / HISTORY_FILE).exists():
        raise _fail(f"no planted history at {settings.demo_dir / HISTORY_FILE}: run `make demo` first (demo CRM, scale 1)")
    with _open_ledger(home) as ledger:
        n = seed_review_history(ledger, settings.demo_dir)
    console.print(f"Planted review history: {n} items written" + (" (already loaded)" if n == 0 else "") + ".")


@outcomes_app.command("check")
def outcomes_check(
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="Check as of this date (default: the latest data).")] = None,
    home: HomeOpt = None,
) -> None:
    """Check every reviewed item against the marts (N business days after its flag) and store the results."""
    import datetime as dt

    from agents.learning.outcomes import check_outcomes

    settings = _settings(home=home)
    wh = _warehouse(settings)
    if not wh.exists():
        raise _fail(f"no warehouse ({wh.label}); run `make demo` (or `sales-supervisor run`) first")
    day = dt.date.fromisoformat(as_of) if as_of else None
    with _open_ledger(home) as ledger:
        result = check_outcomes(ledger.uow, wh, settings.risk_policy_in_force(), as_of=day,
                                actor=_operator_label())
    console.print(f"Checked {result.items} reviewed items as of {result.as_of}: {result.due} due, "
                  f"{result.achieved} reached the change they aimed for. See: sales-supervisor outcomes report")


def _operator_label() -> str:
    from sales_supervisor.cli import _operator_label as label

    return label()


def _review_time_text(rt) -> str:
    if not rt:
        return "manager review time: no digest reviewed in the console yet."
    return (f"manager review time: median {rt['median_minutes']:.1f} min over {rt['digests']} digest(s), "
            f"{rt['within_target']} within {rt['target_minutes']:g} min.")


def _pct(x) -> str:
    return "-" if x is None else f"{x:.0%}"


@outcomes_app.command("report")
def outcomes_report(
    by: Annotated[str, typer.Option(help="Group by rule, manager, rep or week.")] = "rule",
    out: Annotated[Optional[Path], typer.Option(help="Folder for the table (JSON) and charts; default <home>/outcomes.")] = None,
    home: HomeOpt = None,
) -> None:
    """Action effectiveness: the share of approved items whose aim happened (95% interval) beside the same share
    for flagged deals that were dismissed or not decided; plus the seed KPIs."""
    import dataclasses
    import json

    from agents.learning.outcomes import AIM_WORDS, effectiveness, loop_kpis, stored_outcomes

    if by not in ("rule", "manager", "rep", "week"):
        raise _fail(f"--by must be rule, manager, rep or week, got {by!r}")
    settings = _settings(home=home)
    with _open_ledger(home) as ledger:
        outcomes = stored_outcomes(ledger.uow)
        if not outcomes:
            raise _fail("no outcomes stored yet: run `sales-supervisor outcomes check` first")
        kpis = loop_kpis(ledger.uow, outcomes)
    rows = effectiveness(outcomes, by=by)
    names = _people_names(settings) if by in ("manager", "rep") else {}
    aims = {}
    for o in outcomes:
        aims.setdefault(o.rule_id, AIM_WORDS.get(o.aimed_change, o.aimed_change))
    table = Table(title=f"Action effectiveness by {by} (checks due by {max(o.detail['checked_as_of'] for o in outcomes)})")
    cols = [by] + (["aim"] if by == "rule" else []) + ["approved", "worked", "rate", "95% CI", "dismissed/undecided",
                                                        "their rate", "difference", "won/lost"]
    for c in cols:
        table.add_column(c, justify="left" if c in (by, "aim") else "right")
    for e in rows:
        ci = "-" if e.low is None else f"{e.low:.0%}-{e.high:.0%}"
        diff = "-" if e.difference_points is None else f"{e.difference_points:+.0f} pts"
        label = f"{names[e.key]} ({e.key})" if e.key in names else e.key
        table.add_row(*([label] + ([aims.get(e.key, "")] if by == "rule" else []) + [
            str(e.approved), str(e.worked), _pct(e.rate), ci, str(e.compared), _pct(e.compared_rate), diff,
            f"{e.won}/{e.lost}"]))
    console.print(table)
    console.print("rate = approved items whose aim happened within the check window / approved items checked; "
                  "their rate = the same for flagged deals of the same group that were dismissed or not decided. "
                  "An association, not an experiment: managers choose what to approve.", soft_wrap=True)
    median = kpis["flag_to_first_touch_median_business_days"]
    per_week = kpis["reps_reviewed_per_week"]
    console.print(
        f"KPIs: flag -> first touch median {('-' if median is None else f'{median:g}')} business days "
        f"(target <= {kpis['flag_to_first_touch_target']}: "
        f"{'-' if median is None else ('met' if kpis['flag_to_first_touch_meets_target'] else 'NOT met')}); "
        f"reps reviewed per week {kpis['reps_reviewed_per_week_mean'] if per_week else '-'} on average "
        f"({', '.join(f'{w}: {n}' for w, n in list(per_week.items())[-6:]) or 'no decisions'}); "
        + _review_time_text(kpis.get("manager_review_time")), soft_wrap=True, highlight=False)
    folder = out or settings.home_dir / "outcomes"
    folder.mkdir(parents=True, exist_ok=True)
    data = {"by": by, "rows": [dataclasses.asdict(e) | {"difference_points": e.difference_points} for e in rows],
            "kpis": kpis}
    (folder / f"effectiveness_by_{by}.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    written = [folder / f"effectiveness_by_{by}.json"]
    try:
        from agents.learning.charts import effectiveness_charts

        written += effectiveness_charts(outcomes, folder)
    except ImportError:
        pass
    console.print("Written: " + ", ".join(str(p) for p in written), soft_wrap=True)


def _warehouse(settings):
    from agents.warehouse import Warehouse

    return Warehouse.from_settings(settings)


def _people_names(settings) -> dict[str, str]:
    """Manager and rep names from the marts (read-only), so the report reads names, not ids."""
    wh = _warehouse(settings)
    if not wh.exists():
        return {}
    try:
        with wh.connect(read_only=True) as con:
            rows = con.execute("select manager_id, manager_name from marts.dim_managers "
                               "union all select rep_id, rep_name from marts.dim_reps").fetchall()
    except Exception:  # names are a courtesy: the ids still show
        return {}
    return {str(k): str(v) for k, v in rows if v}


def _deal_names(settings, ids) -> dict[str, str]:
    wh = _warehouse(settings)
    if not wh.exists() or not ids:
        return {}
    try:
        with wh.connect(read_only=True) as con:
            rows = con.execute("select opportunity_id, opportunity_name from marts.fct_opportunities "
                               "where opportunity_id = any(:ids)", {"ids": sorted(set(ids))}).fetchall()
    except Exception:  # names are a courtesy: the ids still show
        return {}
    return {str(k): str(v) for k, v in rows if v}


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")
    app.add_typer(outcomes_app, name="outcomes")
    app.command("rule-lab")(rule_lab)
