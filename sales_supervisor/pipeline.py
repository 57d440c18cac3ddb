"""Run the daily job in-process (what `make demo` and `sales-supervisor run` do) and summarise it."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.warehouse import Warehouse
from sales_supervisor.settings import Settings


@dataclass
class RunSummary:
    success: bool
    run_id: str
    as_of: dt.date
    warehouse: Path | Warehouse  # the DuckDB file, or the server warehouse's handle
    materialized: list[str] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    log_path: Path | None = None
    asset_metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    executor: str = "in_process"  # or "multiprocess" (a server warehouse: orchestration/jobs.py)
    step_pids: dict[str, int] = field(default_factory=dict)  # the process each step ran in

    @property
    def failed_checks(self) -> list[dict[str, Any]]:
        return [c for c in self.checks if not c["passed"]]

    @property
    def failed_error_checks(self) -> list[dict[str, Any]]:
        """Failed checks of ERROR severity: the run exits non-zero when there is any."""
        return [c for c in self.failed_checks if c["severity"] != "WARN"]


_DAGSTER_YAML_HEADER = "# Local Dagster instance of sales-supervisor (runs of `make demo`, shown by `make dev`)."
_DAGSTER_YAML_PG_HEADER = (
    "# Dagster instance of sales-supervisor, written by it for the server warehouse (SALES_SUPERVISOR_WAREHOUSE=postgres):\n"
    "# runs, events and schedules are stored in the warehouse's PostgreSQL database (dagster-postgres). The\n"
    "# connection comes from the environment the CLI sets (SALES_SUPERVISOR_PG_*), never a password in this file."
)


def dagster_yaml(settings: Settings, home: Path | None = None) -> str:
    """The instance configuration for the configured warehouse: local files for DuckDB; for PostgreSQL,
    dagster-postgres storage in the same database (every field read from the environment). With the instance's
    folder (``home``), the local event log is Dagster's SQLite one without an fsync per event
    (orchestration/event_log.py), in the same place as Dagster's default (``<home>/history/runs``)."""
    if settings.warehouse == "duckdb":
        text = _DAGSTER_YAML_HEADER + "\ntelemetry:\n  enabled: false\n"
        if home is not None:
            text += (
                "event_log_storage:\n  module: orchestration.event_log\n  class: SupervisorSqliteEventLogStorage\n"
                f"  config:\n    base_dir: {json.dumps(str(Path(home).resolve() / 'history' / 'runs'))}\n"
            )
        return text
    from agents.warehouse import PG_ENV

    fields = {"username": "user", "password": "password", "hostname": "host", "db_name": "dbname", "port": "port"}
    db = "".join(f"      {key}:\n        env: {PG_ENV[part]}\n" for key, part in fields.items())
    # psycopg2: with SQLAlchemy 2.1 a bare postgresql:// means psycopg 3, whose server-side binding breaks
    # dagster-postgres' NOTIFY statements
    db += "      scheme: postgresql+psycopg2\n"
    return _DAGSTER_YAML_PG_HEADER + "\ntelemetry:\n  enabled: false\nstorage:\n  postgres:\n    postgres_db:\n" + db


def use_local_dagster_home(settings: Settings) -> Path:
    """Runs land in var/dagster so `dagster dev` (started by `make dev`) shows their history. With the server
    warehouse the instance stores its runs there (dagster-postgres); a dagster.yaml not written by this
    function is never changed."""
    home = Path(os.environ.get("DAGSTER_HOME") or settings.home_dir / "dagster")
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    ours = not config.exists() or config.read_text().startswith((_DAGSTER_YAML_HEADER, _DAGSTER_YAML_PG_HEADER))
    if ours and (not config.exists() or config.read_text() != dagster_yaml(settings, home)):
        config.write_text(dagster_yaml(settings, home))
    if settings.warehouse != "duckdb":
        os.environ.update(settings.warehouse_handle().dbt_env())  # what dagster.yaml and profiles.yml read
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def run_daily_job(
    settings: Settings, *, log_level: str = "WARNING", selection: list[str] | None = None, quiet_steps: bool = True
) -> RunSummary:
    import dagster as dg

    use_local_dagster_home(settings)
    # Settings chosen on the command line reach the run through the resource's config.
    from orchestration.definitions import defs

    job = defs.resolve_job_def("daily_supervisor_job")
    supervisor_config = {
        "home": str(settings.home_dir),
        "crm_source": settings.crm_source,
        "csv_folder": str(settings.csv_folder) if settings.csv_folder else None,
        "csv_mapping": str(settings.csv_mapping) if settings.csv_mapping else None,
        "demo_seed": settings.demo_seed,
        "demo_scale": settings.demo_scale,
        "as_of": settings.effective_as_of().isoformat(),
        "warehouse": settings.warehouse,
    }
    if settings.warehouse_url:
        # The URL may carry a password: it reaches the in-process run through the environment, never the run
        # config (which the Dagster instance stores).
        os.environ["SALES_SUPERVISOR_WAREHOUSE_URL"] = settings.warehouse_url
    run_config = {
        "resources": {"supervisor": {"config": {k: v for k, v in supervisor_config.items() if v is not None}}},
        "loggers": {"console": {"config": {"log_level": log_level}}},
    }
    kwargs: dict[str, Any] = {}
    if selection:
        kwargs["asset_selection"] = [dg.AssetKey.from_user_string(s) for s in selection]
    log_dir = settings.home_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"run-{dt.datetime.now():%Y%m%d-%H%M%S}.log"
    from orchestration.jobs import executor_mode

    from agents.warehouse import close_run_connections

    mode = executor_mode(None, settings.warehouse)  # in-process on DuckDB, multiprocess on PostgreSQL
    with dg.DagsterInstance.get() as instance, contextlib.ExitStack() as stack:
        stack.callback(close_run_connections)  # the run's one DuckDB connection (orchestration/resources.py)
        if settings.warehouse == "duckdb" and "DAGSTER_EVENT_BATCH_SIZE" not in os.environ:
            # The run's ~240 "planned" events go to the local event log as one batch (orchestration/event_log.py).
            from orchestration.event_log import EVENT_BATCH_SIZE

            os.environ["DAGSTER_EVENT_BATCH_SIZE"] = str(EVENT_BATCH_SIZE)
            stack.callback(os.environ.pop, "DAGSTER_EVENT_BATCH_SIZE", None)
        if quiet_steps:
            # dbt's per-node output goes to the log file; problems still reach the console.
            stack.enter_context(contextlib.redirect_stdout(stack.enter_context(log_path.open("w"))))
        if mode == "multiprocess":
            # Each step in its own process: the job is rebuilt there from this module (dg.reconstructable).
            run_config["execution"] = {"config": {"mode": "multiprocess"}}
            result = stack.enter_context(dg.execute_job(
                dg.reconstructable(daily_job), instance=instance, run_config=run_config, raise_on_error=False,
                asset_selection=kwargs.get("asset_selection"),
            ))
        else:
            result = job.execute_in_process(run_config=run_config, instance=instance, raise_on_error=False, **kwargs)
        summary = _summarise(result, settings, log_path if quiet_steps else None)
        summary.executor = mode
    return summary


def daily_job():
    """The daily job, as a step process of a multiprocess run rebuilds it (``dg.reconstructable``)."""
    from orchestration.definitions import defs

    return defs.resolve_job_def("daily_supervisor_job")


def _summarise(result, settings: Settings, log_path: Path | None) -> RunSummary:
    summary = RunSummary(
        success=result.success,
        run_id=result.run_id,
        as_of=settings.effective_as_of(),
        warehouse=settings.warehouse_path if settings.warehouse == "duckdb" else settings.warehouse_handle(),
        log_path=log_path,
    )
    for event in result.all_events:
        if event.event_type_value == "STEP_START" and event.step_key and event.pid is not None:
            summary.step_pids[event.step_key] = event.pid
        if event.event_type_value == "ASSET_MATERIALIZATION":
            key = event.asset_key.to_user_string()
            summary.materialized.append(key)
            metadata = event.event_specific_data.materialization.metadata
            summary.asset_metadata[key] = {k: getattr(v, "value", v) for k, v in metadata.items()}
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            summary.checks.append(
                {
                    "asset": data.asset_key.to_user_string(),
                    "check": data.check_name,
                    "passed": data.passed,
                    "severity": data.severity.value if data.severity else "ERROR",
                    "description": data.description or "",
                }
            )
        elif event.event_type_value == "STEP_FAILURE":
            summary.failures.append(f"{event.step_key}: {_failure_message(event)}")
    return summary


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _failure_message(event) -> str:
    """The user's own error of a failed step (Dagster wraps it; the cause says what went wrong)."""
    err = event.event_specific_data.error
    while err is not None and err.cause is not None and "Error occurred while executing" in err.message:
        err = err.cause
    return _ANSI.sub("", err.message.strip()) if err else "failed"


def warehouse_counts(warehouse: Path | Warehouse) -> dict[str, int]:
    """Row counts of the landed tables and the marts."""
    counts: dict[str, int] = {}
    wh = Warehouse.coerce(warehouse)
    if not wh.exists():
        return counts
    with wh.connect(read_only=True) as con:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema in ('raw', 'marts', 'semantic', 'risk') and table_name not like '\\_dlt%' escape '\\' "
            "order by table_schema, table_name"
        ).fetchall()
        for schema, name in tables:
            counts[f"{schema}.{name}"] = int(con.execute(f"select count(*) from {con.table(schema, name)}").scalar())
    return counts


def run_highlights(warehouse: Path | Warehouse, run_id: str, limit: int = 5) -> dict[str, Any]:
    """What a person wants to see after a run: flags by rule and a few drafted actions."""
    out: dict[str, Any] = {"flags_by_rule": [], "drafts": []}
    wh = Warehouse.coerce(warehouse)
    if not wh.exists():
        return out
    with wh.connect(read_only=True) as con:
        if con.has_table("risk", "risk_flags"):
            out["flags_by_rule"] = con.execute(
                "select rule_id, count(*) from risk.risk_flags where run_id = :run_id group by 1 order by 2 desc, 1",
                {"run_id": run_id},
            ).fetchall()
        if con.has_table("risk", "risk_flags") and con.has_table("risk", "coaching_drafts"):
            out["drafts"] = con.execute(
                """select coalesce(d.opportunity_id, 'rep ' || d.rep_id), d.rule_id, f.severity, d.action, d.drafter
                   from risk.coaching_drafts d join risk.risk_flags f on f.flag_id = d.flag_id and f.run_id = d.run_id
                   where d.run_id = :run_id order by f.priority desc, d.flag_id limit :limit""",
                {"run_id": run_id, "limit": limit},
            ).fetchall()
    return out


@dataclass
class PublishSummary:
    success: bool
    failures: list[str]
    metadata: dict[str, Any]


def run_publish_job(settings: Settings) -> PublishSummary:
    """Run publish_job in-process (the approval sensor's job), recorded in the local Dagster instance."""
    import dagster as dg

    use_local_dagster_home(settings)
    from orchestration.definitions import defs

    job = defs.resolve_job_def("publish_job")
    run_config = {
        "resources": {"supervisor": {"config": {"home": str(settings.home_dir)}}},
        # failures are reported by the caller, once and without Dagster's stack traces
        "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
    }
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(run_config=run_config, instance=instance, raise_on_error=False)
    failures, metadata = [], {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            metadata = {k: getattr(v, "value", v) for k, v in event.event_specific_data.materialization.metadata.items()}
        elif event.event_type_value == "STEP_FAILURE":
            failures.append(_failure_message(event))
    return PublishSummary(result.success, failures, metadata)


# What a source's missing object costs the run (the summary says it, instead of generic advice).
MISSING_OBJECT_EFFECTS = {
    "reps": "no users/reps file in the export: flags reach no manager (no digests), rep rules not applicable",
    "managers": "no managers in the export: flags reach no manager (no digests)",
    "activities": "no activity log in the export: activity rules (no_recent_activity, meeting_cadence_drop, "
    "large_deal_gone_quiet) not applicable",
    "stage_history": "no stage history in the export: stalled_in_stage not applicable, no stage-duration baselines",
    "field_history": "no field history in the export: amount_swing not applicable, close_date_slipped sees only "
    "close dates already past",
    "contacts": "no contacts in the export: no_decision_maker not applicable, drafts name no person to call",
    "activity_contacts": "no activity-contact links in the export: no_decision_maker not applicable",
    "quotas": "no quotas in the export: quota figures left out",
    "accounts": "no accounts in the export: deals have no account name or account segment",
}
ABSENT_FIELD_EFFECTS = {
    ("reps", "is_active"): "no active flag for reps: every rep counted active",
    ("opportunities", "created_at"): "no creation date for deals: cycle-length rules not applicable",
    ("opportunities", "source_url"): None,  # built from crm_base_url when the mapping gives one
}


@dataclass
class LandingSummary:
    lines: list[str] = field(default_factory=list)  # per object: input = landed + quarantined + skipped
    missing: list[str] = field(default_factory=list)  # missing objects and what they disable
    absent_fields: list[str] = field(default_factory=list)
    not_applicable: list[str] = field(default_factory=list)  # rule: reason (count)


def landing_summary(warehouse: Path | Warehouse, run_id: str) -> LandingSummary:
    """The landing part of the run summary, from raw.landing_reports of this run and risk.not_applicable."""
    out = LandingSummary()
    wh = Warehouse.coerce(warehouse)
    if not wh.exists():
        return out
    with wh.connect(read_only=True) as con:
        reports = con.execute(
            "select * from raw.landing_reports where landing_id = :run_id order by object", {"run_id": run_id}
        ).mappings() if con.has_table("raw", "landing_reports") else []
        absent = {r["object"] for r in reports if not r["present"]}
        for r in reports:
            if r["object"] == "managers" and not r["present"] and "reps" in absent:
                continue  # one users file holds both: said once, under reps
            if not r["present"]:
                effect = MISSING_OBJECT_EFFECTS.get(r["object"])
                if r.get("notes"):  # the connector's own account: why, and what it disables
                    effect = r["notes"]
                if effect and r["object"] not in ("stages",):
                    out.missing.append(effect)
                continue
            input_rows = r.get("input_rows")
            input_rows = r["rows"] + r["rejected"] + r["skipped"] if input_rows is None else input_rows
            line = (
                f"{r['object']}: {input_rows:,} input = {r['rows']:,} landed + {r['rejected']:,} quarantined + "
                f"{r['skipped']:,} skipped ({r['source_file']})"
            )
            if r.get("notes"):
                line += f"; {r['notes']}"
            out.lines.append(line)
            for f in (r.get("absent_fields") or "").split(", "):
                effect = ABSENT_FIELD_EFFECTS.get((r["object"], f))
                if f and effect:
                    out.absent_fields.append(effect)
        if con.has_table("risk", "not_applicable"):
            out.not_applicable = [
                f"{rule}: {reason} ({n})"
                for rule, reason, n in con.execute(
                    "select rule_id, reason, sum(subjects) from risk.not_applicable where run_id = :run_id "
                    "group by 1, 2 order by 1",
                    {"run_id": run_id},
                ).fetchall()
            ]
    return out
