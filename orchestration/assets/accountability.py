"""Weekly rep scorecards: a thin Dagster asset over agents/accountability, and its Monday schedule."""

import dagster as dg
from dagster import AssetExecutionContext

from orchestration.assets.semantic import semantic_layer
from orchestration.resources import SupervisorSettings

ACCOUNTABILITY_GROUP = "accountability"
MART_INPUTS = ["fct_quotas", "fct_opportunities", "fct_activities", "bridge_activity_contacts", "dim_reps"]


@dg.asset(
    key=["accountability", "rep_scorecards"],
    deps=[*[dg.AssetKey(["marts", m]) for m in MART_INPUTS], *[s.key for s in semantic_layer.specs]],
    group_name=ACCOUNTABILITY_GROUP,
    owners=["team:revenue-operations"],
    kinds={"python", "duckdb"},
    description=(
        "One scorecard per active rep on the policy's scorecard weekday (Monday by default), as of the run date: the "
        "last 8 complete weeks from the semantic layer (activities, meetings, pipeline created) with coverage, "
        "attainment to date and win rate, against the team's floors, and a verdict EXCEEDS | MEETS | BELOW_FLOOR | "
        "BELOW_FLOOR_PIP | CRITICAL decided by the policy's rules. Kept in accountability.scorecards and in each rep's "
        "verdict history (review ledger, audited); risk_flags turns them into review items. Other days: nothing."
    ),
    pool="warehouse",
)
def rep_scorecards(context: AssetExecutionContext, supervisor: SupervisorSettings) -> dg.MaterializeResult:
    from agents.accountability.policy import accountability_settings
    from agents.accountability.run import build_week, record_scorecards
    from agents.ledger import open_ledger

    settings = supervisor.settings()
    as_of = settings.effective_as_of()
    policy = settings.risk_policy_in_force()
    acc = accountability_settings(policy)
    if not acc.is_scorecard_day(as_of):
        return dg.MaterializeResult(metadata={
            "as_of": as_of.isoformat(), "scorecards": 0,
            "skipped": f"{as_of:%A} is not the scorecard day ({acc.scorecard_weekday}; policy accountability.scorecard_weekday)",
        })
    with open_ledger(settings.ledger_url, home=settings.home_dir) as ledger:
        previous = {v.rep_id: v.verdict for v in ledger.verdict_history(before=as_of)}
    layer = supervisor.semantic_layer()  # the run's one MetricFlow engine
    cards, queries = build_week(settings.warehouse_handle(), layer, policy, as_of, previous)
    with open_ledger(settings.ledger_url, home=settings.home_dir) as ledger:
        record_scorecards(ledger, settings.warehouse_handle(), cards, policy.version, context.run.run_id, queries)
    by_verdict: dict[str, int] = {}
    for c in cards:
        by_verdict[c.verdict] = by_verdict.get(c.verdict, 0) + 1
    return dg.MaterializeResult(metadata={
        "as_of": as_of.isoformat(),
        "scorecards": dg.MetadataValue.int(len(cards)),
        "verdicts": dg.MetadataValue.json(by_verdict),
        "semantic_query_ids": dg.MetadataValue.json([q.query_id for q in queries]),
    })


weekly_scorecards_job = dg.define_asset_job(
    "weekly_scorecards_job",
    selection=dg.AssetSelection.assets(rep_scorecards),
    description="Build the week's rep scorecards (the daily job's digest picks them up as review items).",
)


def weekly_scorecards_schedule() -> dg.ScheduleDefinition:
    """Monday early morning by default, before the weekday digest; the time is read when the code location loads."""
    return dg.ScheduleDefinition(
        name="weekly_scorecards",
        job=weekly_scorecards_job,
        cron_schedule=dg.EnvVar("SALES_SUPERVISOR_SCORECARD_CRON").get_value("0 6 * * 1"),
        execution_timezone=dg.EnvVar("SALES_SUPERVISOR_SCHEDULE_TIMEZONE").get_value("Europe/London"),
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Every Monday 06:00: the week's rep scorecards (set the day in the policy and the cron together).",
    )
