"""Manager review in Dagster: digests to managers, the KPIs, and sensor-driven publishing of approved items."""

import json

import dagster as dg
from dagster import AssetExecutionContext

from orchestration.assets.risk import coaching_drafts
from orchestration.resources import SupervisorSettings

REVIEW_GROUP = "review"


def _anchor(ledger, settings, slack_client, reason: str) -> dict:
    """Write the audit chain head outside the ledger (issue 11 item 5); failures are reported, not raised."""
    from agents.ledger.anchors import anchor_targets, write_anchor

    targets = anchor_targets(
        settings.home_dir, anchor_file=settings.anchor_file, external_path=settings.anchor_external_path,
        slack_channel=settings.anchor_slack_channel, slack_client=slack_client,
    )
    result = write_anchor(ledger, targets, reason=reason)
    anchor = result.anchor
    return {"seq": anchor.seq if anchor else None, "hash": anchor.hash if anchor else None,
            "written": list(result.written), "failed": [f"{n}: {e}" for n, e in result.failed]}


@dg.asset(
    key=["review", "manager_digests"],
    deps=[coaching_drafts, dg.AssetKey(["marts", "dim_reps"]), dg.AssetKey(["marts", "dim_managers"])],
    group_name=REVIEW_GROUP,
    owners=["team:revenue-operations"],
    kinds={"slack", "python"},
    description=(
        "One digest per manager per as-of date: every active rep reviewed, a decide-first list, at most M items per rep "
        "ranked by severity x amount, each with the flag, the proposed action, what worked (remedy curve) and links to "
        "the CRM rows and to a page per semantic query; held-back flags counted with why and listed; a manager's earlier "
        "decisions stick (agents/review/recurrence.py); rules below the backtest lift floor shown as informational. "
        "Posted as Block Kit to the manager's Slack DM when SLACK_BOT_TOKEN is set, else written to the outbox "
        "(Markdown and styled HTML). Then each reviewed item's action outcome is checked (agents/learning/outcomes.py)."
    ),
    pool="warehouse",
)
def manager_digests(context: AssetExecutionContext, supervisor: SupervisorSettings) -> dg.MaterializeResult:
    from agents.ledger import open_ledger
    from agents.review.digests import route_items
    from agents.review.posting import post_digest
    from agents.review.run import load_digest_inputs, prepare_digests, review_kpis, slack_web_client
    from agents.risk.store import evidence_report

    settings = supervisor.settings()
    as_of = settings.effective_as_of()
    from orchestration.assets.dbt import dbt_project

    manifest = dbt_project.project_dir / dbt_project.target_path / "semantic_manifest.json"
    inputs = load_digest_inputs(settings.warehouse_handle(), as_of, manifest)
    client = slack_web_client()
    outbox = settings.home_dir / "outbox"
    with open_ledger(settings.ledger_url, home=settings.home_dir, delegates=settings.delegates()) as ledger:
        from agents.autonomy.config import load_autonomy
        from agents.autonomy.levels import evaluate_levels
        from agents.review.demotion import load_backtest_lifts
        from agents.review.modes import ModeSettings

        # The L5 bar at each run's start too, so a rule that fell below it is in today's digest as a notice.
        policy = settings.risk_policy_in_force()  # read once per run (a YAML file or the ledger's applied version)
        evaluate_levels(ledger, load_autonomy(policy), ledger.uow.now().date(),
                        drafter=ModeSettings.from_env().live_drafter)
        digests = prepare_digests(
            ledger, inputs, policy, as_of, settings.max_items_per_rep,
            backtest_lifts=load_backtest_lifts(settings.home_dir),
        )
        from sales_supervisor.console.settings import ConsoleSettings  # the console's base URL: digests link there

        for d in digests:
            d.console_url = ConsoleSettings().base_url()
        results = [post_digest(ledger, d, client, outbox) for d in digests]
        if inputs["risk_run_id"]:
            with settings.warehouse_handle().connect(read_only=True) as con:
                evidence = evidence_report(con.raw, inputs["risk_run_id"])  # agents/risk takes the driver connection
        else:
            evidence = {"evidence_rate": None}
        kpis = review_kpis(ledger, digests, inputs["reps"], evidence["evidence_rate"])
        outcomes = _check_outcomes(context, ledger, settings, as_of, policy)
        anchored = _anchor(ledger, settings, client, f"run {context.run.run_id[:8]} (digests as of {as_of})")
    _, unrouted = route_items(inputs["pairs"], inputs["reps"], inputs["managers"])
    if unrouted:
        context.log.warning(
            f"{len(unrouted)} flagged deal(s) have no known manager (no reps/managers in the source, or the rep "
            "has none), so no digest carries them: map the CRM's users into reps and managers"
        )
    failures = [f"{r.manager_id}: {r.error}" for r in results if not r.ok]
    for failure in failures:
        context.log.error(f"digest not posted: {failure}")
    return dg.MaterializeResult(
        metadata={
            "digests": dg.MetadataValue.int(len(digests)),
            "posted_to_slack": dg.MetadataValue.int(sum(r.channel == "slack" and r.ok for r in results)),
            "written_to_outbox": dg.MetadataValue.int(sum(r.channel == "outbox" for r in results)),
            "failed": dg.MetadataValue.int(len(failures)),
            "outbox": str(outbox / "digests" / as_of.isoformat()),
            "kpis": dg.MetadataValue.json(kpis),
            "reps_reviewed_share": dg.MetadataValue.float(kpis["reps_reviewed_share"] or 0.0),
            "items": dg.MetadataValue.int(kpis["items"]),
            "unrouted_items": dg.MetadataValue.int(len(unrouted)),
            "unrouted_deals": dg.MetadataValue.json(sorted(f.opportunity_id or f"rep {f.rep_id}" for f, _ in unrouted)[:50]),
            "audit_anchor": dg.MetadataValue.json(anchored),
            "action_outcomes": dg.MetadataValue.json(outcomes),
        }
    )


def _check_outcomes(context: AssetExecutionContext, ledger, settings, as_of, policy=None) -> dict:
    """Each reviewed item checked N business days after its flag: did the change its action aimed for
    happen (agents/learning/outcomes.py; `sales-supervisor outcomes report` reads the results). The
    digests are out already, so a failure here is logged, not raised."""
    from agents.learning.outcomes import check_outcomes

    try:
        result = check_outcomes(ledger.uow, settings.warehouse_handle(), policy or settings.risk_policy_in_force(),
                                as_of=as_of, actor="pipeline")
    except Exception as exc:  # noqa: BLE001 - reported in the run's log and metadata
        context.log.error(f"action outcomes not checked: {exc}")
        return {"error": str(exc)}
    return {"as_of": result.as_of.isoformat(), "items": result.items, "due": result.due, "achieved": result.achieved}


@dg.asset_check(
    asset=manager_digests,
    name="every_flag_reaches_a_manager",
    description="Every drafted item has a manager to decide it (a flag without one would never be reviewed).",
    blocking=False,
)
def every_flag_reaches_a_manager(supervisor: SupervisorSettings) -> dg.AssetCheckResult:
    from agents.review.digests import route_items
    from agents.review.run import load_digest_inputs

    settings = supervisor.settings()
    inputs = load_digest_inputs(settings.warehouse_handle(), settings.effective_as_of())
    _, unrouted = route_items(inputs["pairs"], inputs["reps"], inputs["managers"])
    return dg.AssetCheckResult(
        passed=not unrouted,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{len(unrouted)} of {len(inputs['pairs'])} drafted items have no manager (rep or manager missing from "
            "the source's users): they are in risk.coaching_drafts but in no digest"
            if unrouted
            else f"all {len(inputs['pairs'])} drafted items are in a manager's digest"
        ),
        metadata={"unrouted_items": dg.MetadataValue.int(len(unrouted))},
    )


@dg.asset(
    key=["review", "published_coaching"],
    deps=[manager_digests],
    group_name=REVIEW_GROUP,
    owners=["team:revenue-operations"],
    kinds={"slack", "email"},
    description=(
        "Publishes only items a manager approved (or edited and approved): a DM or email to the rep and a note on the "
        "CRM opportunity, each under an idempotency key so a retry never sends twice. In shadow mode (the default) "
        "nothing is sent; AGENT_SEND_ENABLED=false stops every send. Run by the approval sensor."
    ),
)
def published_coaching(context: AssetExecutionContext, supervisor: SupervisorSettings) -> dg.MaterializeResult:
    from agents.ledger import open_ledger
    from agents.review.modes import ModeSettings, apply_startup_mode
    from agents.review.publisher import publish_approved
    from agents.review.run import make_channels, slack_web_client
    from connectors.registry import crm_note_writer

    settings = supervisor.settings()
    with open_ledger(settings.ledger_url, home=settings.home_dir, delegates=settings.delegates()) as ledger:
        mode = apply_startup_mode(ledger, ModeSettings.from_env(), home=settings.home_dir)
        channels = make_channels(ledger, settings.home_dir, crm_note_channel=crm_note_writer(settings.crm_source, ledger))
        # Autonomy levels per rule, quiet hours and preferences (the policy's autonomy section; default L3 for every rule).
        from agents.autonomy.config import load_autonomy
        from agents.autonomy.governor import AutonomyGovernor

        governor = AutonomyGovernor(load_autonomy(settings.risk_policy_in_force()), drafter=ModeSettings.from_env().live_drafter)
        report = publish_approved(ledger, channels, mode, outbox_dir=settings.home_dir / "outbox", autonomy=governor)
        anchored = _anchor(ledger, settings, slack_web_client(), f"publish {context.run.run_id[:8]} ({mode})")
    counts = {**report.counts, "audit_anchor": anchored}
    context.log.info(f"publish ({mode}): {json.dumps(counts, default=str)}")
    if report.needs_attention:
        context.log.warning(
            f"{len(report.needs_attention)} delivery(ies) have an unknown outcome and are not resent: "
            "`sales-supervisor publish attention` lists them, `publish resolve` records what a person found"
        )
    return dg.MaterializeResult(
        metadata={k: dg.MetadataValue.json(v) if isinstance(v, dict) else v for k, v in counts.items() if v is not None}
    )


publish_job = dg.define_asset_job(
    "publish_job", selection=[published_coaching], description="Publish approved coaching (run by the approval sensor)."
)


@dg.sensor(
    job=publish_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Notices new manager decisions in the review ledger (cursor: the last decision id) and requests a publish run.",
)
def approval_sensor(context: dg.SensorEvaluationContext, supervisor: SupervisorSettings):
    from agents.ledger import open_ledger

    settings = supervisor.settings()
    from agents.ledger.autonomy import waiting_sends

    with open_ledger(settings.ledger_url, home=settings.home_dir) as ledger:
        decisions, cursor = ledger.decisions_since(context.cursor)
        # Sends deferred by quiet hours whose time has come: one publish run per due time (the run key).
        due = [w.not_before for w in waiting_sends(ledger.uow) if w.not_before <= ledger.uow.now()]
    if due and not decisions:
        return dg.RunRequest(run_key=f"deferred-{max(due).isoformat()}", tags={"deferred_sends": str(len(due))})
    if not decisions:
        return dg.SkipReason("no new decisions")
    context.update_cursor(cursor)
    approved = [d for d in decisions if d.action in ("approve", "edit")]
    if not approved:
        return dg.SkipReason(f"{len(decisions)} new decision(s), none approved")
    return dg.RunRequest(run_key=f"decisions-{cursor}", tags={"decisions": str(len(approved))})
