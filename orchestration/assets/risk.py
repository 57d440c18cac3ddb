"""Risk flags and coaching drafts: thin Dagster wrappers over agents/risk and agents/drafting."""

import json

import dagster as dg
from dagster import AssetExecutionContext

from orchestration.assets.semantic import semantic_layer
from orchestration.resources import DrafterSettings, SupervisorSettings

RISK_GROUP = "risk"
MART_INPUTS = [
    "fct_opportunities", "fct_stage_history", "fct_field_history", "fct_activities",
    "bridge_activity_contacts", "dim_contacts", "dim_accounts", "dim_reps",
]


@dg.asset(
    key=["risk", "risk_flags"],
    deps=[*[dg.AssetKey(["marts", m]) for m in MART_INPUTS], *[s.key for s in semantic_layer.specs],
          dg.AssetKey(["accountability", "rep_scorecards"])],
    group_name=RISK_GROUP,
    owners=["team:revenue-operations"],
    kinds={"python", "duckdb"},
    description=(
        "The versioned risk policy applied to every open deal as of the run date. Each flag carries the rule, "
        "observed value, threshold, governed baseline, severity, confidence, the CRM rows that justify it "
        "(risk.flag_evidence) and the semantic-layer queries it used (risk.flag_queries, semantic.semantic_queries)."
    ),
    pool="warehouse",
)
def risk_flags(context: AssetExecutionContext, supervisor: SupervisorSettings) -> dg.MaterializeResult:
    from agents.ledger import open_ledger
    from agents.risk.engine import Snooze, assess
    from agents.risk.store import store_risk_run

    settings = supervisor.settings()
    as_of = settings.effective_as_of()
    warehouse = supervisor.run_warehouse()  # on DuckDB the run's one connection, reused by the steps after this
    policy = settings.risk_policy_in_force()
    with open_ledger(settings.ledger_url, home=settings.home_dir) as ledger:
        snoozes = [
            Snooze(opportunity_id=s.opportunity_id, rule_id=s.rule_id, until=s.until, reason=s.reason or "", by=s.by or "")
            for s in ledger.active_snoozes(as_of)
        ]
    from agents.baselines import StoredAnswers

    from agents.risk.engine import gc_paused

    with gc_paused():  # many short-lived objects in a large heap: collections would walk it over and over
        # The run's one MetricFlow engine; requests the semantic_layer step already asked are answered from its store.
        layer = StoredAnswers(supervisor.semantic_layer(), warehouse, context.run.run_id)
        run, baselines = assess(warehouse, layer, policy, as_of, snoozes)
        # Rep-level triggers, and this week's scorecards as review items (agents/accountability).
        from agents.accountability.run import assess_reps, load_scorecards

        scorecards = load_scorecards(warehouse, as_of)
        run, rep_queries = assess_reps(run, warehouse, layer, policy, as_of, snoozes, scorecards=scorecards)
        queries = [q for q in [*baselines.results, *rep_queries] if q.query_id not in layer.served]  # served: stored
        store_risk_run(warehouse, run, queries, context.run.run_id)
    by_rule: dict[str, int] = {}
    for f in run.flags:
        by_rule[f.rule_id] = by_rule.get(f.rule_id, 0) + 1
    return dg.MaterializeResult(
        metadata={
            "as_of": as_of.isoformat(),
            "policy_version": run.policy_version,
            "deals_evaluated": dg.MetadataValue.int(run.deals_evaluated),
            "flags": dg.MetadataValue.int(len(run.flags)),
            "flags_by_rule": dg.MetadataValue.json(by_rule),
            "scorecards": dg.MetadataValue.json({sc.rep_id: sc.verdict for sc in scorecards}),
            "suppressed": dg.MetadataValue.int(len(run.suppressed)),
            "not_applicable": dg.MetadataValue.json({n.rule_id: f"{n.reason} ({n.count})" for n in run.not_applicable}),
            "semantic_query_ids": dg.MetadataValue.json(run.semantic_query_ids),
            "semantic_engine": layer.engine_id,
        }
    )


@dg.asset_check(
    asset=risk_flags,
    name="evidence_rate",
    description="100% of this run's flags resolve to CRM rows in the marts and to a stored semantic-layer query.",
    blocking=True,
)
def risk_flags_evidence_rate(context, supervisor: SupervisorSettings) -> dg.AssetCheckResult:
    from agents.risk.store import evidence_report

    with supervisor.run_warehouse().connect(read_only=True) as con:
        report = evidence_report(con, context.run.run_id)
    return dg.AssetCheckResult(
        passed=report["evidence_rate"] == 1.0,
        description=(
            f"{report['with_full_evidence']} of {report['flags']} flags cite resolvable CRM rows and semantic queries"
            + (f"; unresolved: {report['unresolved_crm_records'] + report['unresolved_query_ids']}" if report["evidence_rate"] < 1 else "")
        ),
        metadata={"evidence_rate": dg.MetadataValue.float(report["evidence_rate"]), "flags": dg.MetadataValue.int(report["flags"])},
    )


@dg.asset(
    key=["risk", "coaching_drafts"],
    deps=[risk_flags, dg.AssetKey(["marts", "fct_deal_remedies"]), dg.AssetKey(["marts", "fct_stage_exits"])],
    group_name=RISK_GROUP,
    owners=["team:revenue-operations"],
    kinds={"python", "anthropic"},
    description=(
        "One specific, evidence-backed coaching action per primary flag (Claude when an API key is configured, "
        "else the offline template drafter): the deal, the people on it, the rule's remedy curve from the team's "
        "history (agents/remedies.py, semantic queries cited by id) and comparable won deals. Every draft passed the "
        "grounding validator; it has no power to act."
    ),
    pool="warehouse",
)
def coaching_drafts(context: AssetExecutionContext, supervisor: SupervisorSettings, drafter: DrafterSettings) -> dg.MaterializeResult:
    from agents.drafting import make_drafter
    from agents.evidence import load_packets
    from agents.risk.models import RiskFlag
    from agents.risk.store import RISK_SCHEMA

    settings = supervisor.settings()
    as_of = settings.effective_as_of()
    warehouse = supervisor.run_warehouse()
    with warehouse.connect(read_only=True) as con:
        latest_run = con.execute(
            f"select run_id from {RISK_SCHEMA}.risk_flags where as_of = :as_of order by created_at desc limit 1",
            {"as_of": as_of},
        ).fetchone()
        rows = (
            con.execute(f"select flag_json from {RISK_SCHEMA}.risk_flags where run_id = :run_id", {"run_id": latest_run[0]}).fetchall()
            if latest_run
            else []
        )
    flags = [RiskFlag.model_validate_json(r[0]) for r in rows]
    from agents.remedies import fetch_remedy_curves, remedies_for, store_remedy_queries

    # Proof of what worked: each rule's remedy curve from the team's history (governed queries, cited by id).
    curves = None
    if flags:
        try:
            curves = fetch_remedy_curves(supervisor.semantic_layer(), as_of)  # the run's one MetricFlow engine
            store_remedy_queries(warehouse, curves, context.run.run_id)
        except Exception as exc:  # drafts without proof of what worked beat no drafts; the log says why
            context.log.warning(f"remedy curves unavailable, drafting without them: {exc!r}"[:500])
            curves = None
    packets = load_packets(warehouse, flags, as_of, remedies_for([f for f in flags if f.is_primary], curves))
    config = drafter.config()
    # Spend caps per day and per rep (the policy's autonomy.spend) beside the per-run budget; costs recorded per rep.
    from agents.autonomy.config import load_autonomy
    from agents.autonomy.spend import governed_draft_all
    from agents.autonomy.preferences import with_tone
    from agents.ledger import open_ledger

    autonomy = load_autonomy(settings.risk_policy_in_force())
    packets = with_tone(packets, autonomy.preferences)  # each rep's preferred tone, passed to the drafters
    with open_ledger(settings.ledger_url, home=settings.home_dir) as ledger:
        run, spend = governed_draft_all(
            packets, make_drafter(config), ledger, autonomy.spend, run_id=context.run.run_id, run_cap=config.budget_usd,
        )
    packets_by_id = {p.packet_id: p for p in packets}
    import datetime as dt

    import pyarrow as pa

    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with warehouse.connect() as con:
        con.execute(f"create schema if not exists {RISK_SCHEMA}")
        con.execute(
            f"""create table if not exists {RISK_SCHEMA}.coaching_drafts (
                run_id VARCHAR, as_of DATE, flag_id VARCHAR, packet_id VARCHAR, opportunity_id VARCHAR, rep_id VARCHAR,
                manager_id VARCHAR, rule_id VARCHAR, action VARCHAR, actor VARCHAR, due_date DATE, drafter VARCHAR,
                fallback_reason VARCHAR, cost_usd FLOAT8, draft_json VARCHAR, packet_json VARCHAR, created_at TIMESTAMP)"""
        )
        # a warehouse from before created_at (the latest drafting run of a day is the newest)
        con.execute(f"alter table {RISK_SCHEMA}.coaching_drafts add column if not exists created_at TIMESTAMP")
        drafts = [
            {"run_id": context.run.run_id, "as_of": as_of, "flag_id": d.flag_id, "packet_id": d.packet_id,
             "opportunity_id": d.opportunity_id, "rep_id": d.rep_id, "manager_id": d.manager_id, "rule_id": d.rule_id,
             "action": d.draft.action, "actor": d.draft.actor, "due_date": d.draft.due_date, "drafter": d.draft.drafter,
             "fallback_reason": d.draft.fallback_reason, "cost_usd": d.cost_usd, "draft_json": d.model_dump_json(),
             "packet_json": packets_by_id[d.packet_id].model_dump_json(), "created_at": now}
            for d in run.drafts
        ]
        if drafts:
            types = {"as_of": pa.date32(), "due_date": pa.date32(), "cost_usd": pa.float64(), "created_at": pa.timestamp("us")}
            schema = pa.schema([pa.field(k, types.get(k, pa.string())) for k in drafts[0]])
            con.insert_arrow(RISK_SCHEMA, "coaching_drafts", pa.Table.from_pylist(drafts, schema=schema))
    for rejected in run.rejected:
        context.log.warning(f"draft rejected for {rejected}")
    return dg.MaterializeResult(
        metadata={k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in {**run.stats.to_metadata(), **spend}.items() if v is not None}
    )
