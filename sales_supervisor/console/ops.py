"""What the ops pages show: status cards, the activity feed, the exception queue, KPIs and charts, snapshots.

Read from the review ledger, the local Dagster instance (run history, check results, schedule state)
and, read-only, the warehouse (quarantined rows). Anything unreachable shows as unknown (yellow),
never as an error page.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import os
from pathlib import Path
from typing import Any

from sales_supervisor.console import views

DAILY_JOB = "daily_supervisor_job"


@dataclasses.dataclass
class Card:
    title: str
    value: str
    detail: str = ""
    colour: str = "green"  # green | yellow | red


# -- the local Dagster instance (make demo / make dev write it under <home>/dagster)


def dagster_home(home: Path) -> Path:
    return Path(os.environ.get("DAGSTER_HOME") or home / "dagster")


def last_run_facts(home: Path) -> dict[str, Any]:
    """The newest daily run in the local Dagster instance: status, times, failed checks, digest metadata."""
    path = dagster_home(home)
    if not (path / "dagster.yaml").exists():
        return {"error": f"no Dagster instance at {path} yet (run `make demo`)"}
    try:
        import dagster as dg
        from dagster._core.events import DagsterEventType

        with dg.DagsterInstance.from_config(str(path)) as instance:
            runs = instance.get_runs(filters=dg.RunsFilter(job_name=DAILY_JOB), limit=1)
            states = {s.instigator_name: s.status.value for s in instance.all_instigator_state()}
            if not runs:
                return {"run": None, "states": states}
            run = runs[0]
            stats = instance.get_run_stats(run.run_id)
            failed, metadata = [], {}
            for rec in instance.all_logs(run.run_id, of_type={DagsterEventType.ASSET_CHECK_EVALUATION, DagsterEventType.ASSET_MATERIALIZATION}):
                event = rec.dagster_event
                data = event.event_specific_data
                if event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
                    if not data.passed:
                        failed.append({
                            "asset": data.asset_key.to_user_string(), "check": data.check_name,
                            "severity": data.severity.value if data.severity else "ERROR",
                            "description": data.description or "",
                        })
                else:
                    m = data.materialization
                    metadata[m.asset_key.to_user_string()] = {k: getattr(v, "value", v) for k, v in m.metadata.items()}
            return {
                "run": {"run_id": run.run_id, "status": run.status.value,
                        "started": dt.datetime.fromtimestamp(stats.start_time, dt.timezone.utc) if stats.start_time else None,
                        "ended": dt.datetime.fromtimestamp(stats.end_time, dt.timezone.utc) if stats.end_time else None},
                "failed_checks": failed, "metadata": metadata, "states": states,
            }
    except Exception as exc:  # an instance from another Dagster version, a locked SQLite file
        return {"error": f"cannot read the Dagster instance at {path}: {type(exc).__name__}: {exc}"}


def next_scheduled_run(now: dt.datetime | None = None) -> dt.datetime | None:
    """The schedule's next tick (SALES_SUPERVISOR_SCHEDULE_CRON / _TIMEZONE, as the code location reads them)."""
    from zoneinfo import ZoneInfo

    from croniter import croniter

    cron = os.environ.get("SALES_SUPERVISOR_SCHEDULE_CRON", "30 6 * * 1-5")
    tz = ZoneInfo(os.environ.get("SALES_SUPERVISOR_SCHEDULE_TIMEZONE", "Europe/London"))
    now = (now or dt.datetime.now(dt.timezone.utc)).astimezone(tz)
    try:
        return croniter(cron, now).get_next(dt.datetime)
    except (ValueError, KeyError):
        return None


def instigator_status(st: Any, facts: dict[str, Any], name: str) -> tuple[str, str]:
    """(RUNNING|STOPPED|UNKNOWN, where from): the running webserver's answer, else the instance's stored state."""
    from sales_supervisor.console.dagster_control import DagsterUnavailable

    try:
        status, _ = st.dagster.schedule_status() if name == "weekday_morning" else st.dagster.sensor_status()
        return status, "Dagster webserver"
    except DagsterUnavailable:
        pass
    stored = (facts.get("states") or {}).get(name)
    if stored is None:
        return "STOPPED", "default (stopped until switched on); Dagster webserver not reachable"
    return ("RUNNING" if stored == "RUNNING" else "STOPPED"), "stored state; Dagster webserver not reachable"


def status_cards(st: Any, facts: dict[str, Any]) -> list[Card]:
    ledger = st.ledger
    cards = []
    run = facts.get("run")
    if facts.get("error"):
        cards.append(Card("Last run", "unknown", facts["error"], "yellow"))
    elif run is None:
        cards.append(Card("Last run", "none yet", "no daily run in the Dagster instance", "yellow"))
    else:
        colour = {"SUCCESS": "green", "FAILURE": "red", "CANCELED": "red"}.get(run["status"], "yellow")
        when = f"{run['started']:%a %d %b %H:%M} UTC" if run.get("started") else ""
        cards.append(Card("Last run", run["status"].lower(), f"{when} · run {run['run_id'][:8]}", colour))
    schedule, source = instigator_status(st, facts, "weekday_morning")
    nxt = next_scheduled_run()
    if schedule == "RUNNING":
        cards.append(Card("Next scheduled run", f"{nxt:%a %d %b %H:%M %Z}" if nxt else "?", f"schedule on ({source})", "green"))
    else:
        cards.append(Card("Next scheduled run", "schedule paused", f"would be {nxt:%a %d %b %H:%M %Z} ({source})" if nxt else source, "yellow"))
    failed = facts.get("failed_checks") or []
    errors = [c for c in failed if c["severity"] == "ERROR"]
    cards.append(Card(
        "Failed checks", str(len(failed)) if run else "-",
        (f"{len(errors)} ERROR, {len(failed) - len(errors)} WARN" if failed else "every check passed") if run else "no run yet",
        "red" if errors else "yellow" if failed or not run else "green",
    ))
    mode = ledger.mode()
    cards.append(Card("Mode", mode, "nothing reaches reps or the CRM" if mode == "shadow" else "approved items are sent",
                      "green" if mode == "shadow" else "yellow"))
    allowed, why = ledger.sends_allowed()
    engaged = ledger.kill_switch_engaged()
    released = "kill switch released" + ("; shadow mode: approved items go to the outbox only" if mode == "shadow" else "")
    cards.append(Card("Sending", "paused" if engaged else "on", why if engaged else released, "red" if engaged else "green"))
    sensor, source = instigator_status(st, facts, "approval_sensor")
    cards.append(Card("Approval sensor", sensor.lower(), source, "green" if sensor == "RUNNING" else "yellow"))
    return cards


SEVERE = ("refused", "engaged", "failed", "unknown", "paused")


def severity_of(action: str) -> str:
    if action.endswith(("kill_switch.engaged",)) or "tamper" in action:
        return "critical"
    if any(word in action for word in SEVERE):
        return "warning"
    return "info"


def activity_feed(ledger: Any, limit: int = 40, scan: int = 2000) -> list[dict[str, Any]]:
    """The newest audit rows, newest first; a run of rows with the same actor and action (a digest's items) is one
    line with a count, so a run's bulk does not push decisions and refusals off the page."""
    head = ledger.audit_head()
    if head is None:
        return []
    rows = ledger.audit_rows(since_seq=max(0, head[0] - scan))
    out: list[dict[str, Any]] = []
    for r in reversed(rows):
        if out and out[-1]["actor"] == r.actor and out[-1]["action"] == r.action and r.action.endswith((".added", ".created", ".posted")):
            out[-1]["count"] += 1
            out[-1]["first_seq"] = r.seq
            continue
        if len(out) >= limit:
            break
        try:
            payload = json.loads(r.payload) if isinstance(r.payload, str) else (r.payload or {})
        except ValueError:
            payload = {}
        summary = payload.get("why") or payload.get("reason") or payload.get("refusal") or payload.get("action") or ""
        out.append({"seq": r.seq, "at": f"{r.at:%Y-%m-%d %H:%M:%S}", "actor": r.actor, "action": r.action,
                    "subject": f"{r.subject_type} {r.subject_id[:12]}", "summary": str(summary)[:160],
                    "severity": severity_of(r.action), "count": 1, "first_seq": r.seq})
    return out


def quarantined_rows(settings: Any) -> tuple[list[dict[str, Any]], str | None]:
    """Quarantined rows by object and reason, read-only (DuckDB or PostgreSQL, through agents/warehouse.py)."""
    from agents.warehouse import Warehouse

    try:
        wh = Warehouse.from_settings(settings)
        if not wh.exists():
            return [], "no warehouse yet"
        with wh.connect(read_only=True) as con:
            if not con.has_table("raw", "rejected_rows"):
                return [], None
            rows = con.execute(
                f"select object, reason, count(*) as n from {wh.table('raw', 'rejected_rows')} "
                "group by object, reason order by n desc limit 20"
            ).fetchall()
        return [{"object": o, "reason": r, "rows": n} for o, r, n in rows], None
    except Exception as exc:  # a run holds the DuckDB file (one writer): say so
        return [], f"warehouse busy or unreadable: {type(exc).__name__}"


def exceptions(st: Any, facts: dict[str, Any]) -> dict[str, Any]:
    quarantined, q_error = quarantined_rows(st.settings)
    digests_meta = (facts.get("metadata") or {}).get("review/manager_digests") or {}
    deliveries = []
    for d in st.ledger.deliveries_needing_attention():
        deliveries.append({"delivery_id": d.delivery_id, "channel": d.channel, "item": views.short_item_id(d.item_id),
                           "since": f"{d.claimed_at:%Y-%m-%d %H:%M}" if d.claimed_at else "", "error": d.error or "outcome unknown"})
    return {
        "undecided": views.pending_older_than(st.ledger, st.console.undecided_business_days),
        "undecided_days": st.console.undecided_business_days,
        "deliveries": deliveries,
        "quarantined": quarantined,
        "quarantined_error": q_error,
        "failed_checks": facts.get("failed_checks") or [],
        "unrouted": int(digests_meta.get("unrouted_items") or 0),
        "unrouted_deals": digests_meta.get("unrouted_deals") or [],
    }


def kpis(st: Any, facts: dict[str, Any]) -> dict[str, Any]:
    ledger = st.ledger
    run_kpis = ((facts.get("metadata") or {}).get("review/manager_digests") or {}).get("kpis") or {}
    today = dt.datetime.now(dt.timezone.utc).date()
    rt = ledger.review_time_kpi()
    return {
        "reps_reviewed_share": run_kpis.get("reps_reviewed_share"),
        "active_reps": run_kpis.get("active_reps"),
        "evidence_rate": run_kpis.get("evidence_rate"),
        "median_days_to_approval": ledger.median_business_days_to_approval(),
        "dismissal_rate_by_rule": {k: v.dismissal_rate for k, v in ledger.dismissal_rate_by_rule().items()},
        "shadow_agreement_by_rule": {k: v.agreement_rate for k, v in ledger.shadow_agreement(today, by="rule").items()},
        "review_time": rt,
    }


def chart_svg(kind: str, st: Any) -> bytes:
    """A small bar chart as SVG (matplotlib, Agg): dismissal rate or shadow agreement per rule, decisions per day."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ledger = st.ledger
    today = dt.datetime.now(dt.timezone.utc).date()
    fig, ax = plt.subplots(figsize=(5.2, 2.2), dpi=100)
    try:
        if kind == "dismissals":
            data = {k: v.dismissal_rate for k, v in ledger.dismissal_rate_by_rule().items() if v.dismissal_rate is not None}
            title, fmt = "Dismissal rate per rule", "{:.0%}"
        elif kind == "agreement":
            data = {k: v.agreement_rate for k, v in ledger.shadow_agreement(today, by="rule").items() if v.agreement_rate is not None}
            title, fmt = "Shadow agreement per rule (approved as drafted)", "{:.0%}"
        elif kind == "decisions":
            data = {f"{d:%d %b}": n for d, n in views.decision_counts_by_day(ledger)}
            title, fmt = "Decisions per day", "{:d}"
        else:
            raise KeyError(kind)
        if data and kind != "decisions":
            fig.set_size_inches(5.2, 0.9 + 0.32 * len(data))
        if data:
            labels = [k.replace("_", " ") for k in data]
            values = list(data.values())
            bars = (ax.barh(labels, values, color="#2563eb", height=0.6) if kind != "decisions"
                    else ax.bar(labels, values, color="#2563eb", width=0.6))
            for bar, v in zip(bars, values):
                if kind == "decisions":
                    ax.annotate(fmt.format(v), (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8)
                else:
                    ax.annotate(fmt.format(v), (bar.get_width(), bar.get_y() + bar.get_height() / 2), va="center", fontsize=8,
                                xytext=(3, 0), textcoords="offset points")
            if kind != "decisions":
                ax.set_xlim(0, 1.15)
            ax.tick_params(labelsize=8)
        else:
            ax.text(0.5, 0.5, "no decisions yet", ha="center", va="center", color="#6b7280")
            ax.set_axis_off()
        ax.set_title(title, fontsize=10, loc="left")
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="svg")
        return buf.getvalue()
    finally:
        plt.close(fig)


# -- snapshots: the state at a moment, for later comparison


def snapshot_dir(home: Path) -> Path:
    return home / "snapshots"


def current_policy_version(settings: Any, ledger: Any | None = None) -> str:
    """The policy in force: an explicit file, else the ledger's applied version (policy version store), else the default."""
    try:
        from agents.risk.policy import load_policy

        if settings.risk_policy:
            return str(load_policy(settings.risk_policy).version)
        try:
            from agents.risk.versions import PolicyVersionStore
        except ImportError:
            PolicyVersionStore = None
        if PolicyVersionStore is not None and ledger is not None:
            cur = PolicyVersionStore(ledger).current()
            if cur is not None:
                return f"{cur.policy_version} (ledger version {cur.version_id})"
        return str(load_policy(None).version)
    except Exception as exc:
        return f"unknown ({type(exc).__name__})"


def take_snapshot(st: Any, actor: str, note: str | None = None) -> dict[str, Any]:
    ledger = st.ledger
    facts = last_run_facts(st.settings.home_dir)
    k = kpis(st, facts)
    head = ledger.audit_head()
    now = dt.datetime.now(dt.timezone.utc)
    snap = {
        "taken_at": now.isoformat(timespec="seconds"), "taken_by": actor, "note": note or "",
        "policy_version": current_policy_version(st.settings, ledger),
        "ledger_anchor": f"{head[0]}:{head[1]}" if head else None,
        "mode": ledger.mode(), "kill_switch": ledger.kill_switch_engaged(),
        "last_run": (facts.get("run") or {}).get("run_id"),
        "kpis": {
            "reps_reviewed_share": k["reps_reviewed_share"], "evidence_rate": k["evidence_rate"],
            "median_days_to_approval": k["median_days_to_approval"],
            "review_time_median_minutes": k["review_time"].median_minutes,
            "dismissal_rate_by_rule": k["dismissal_rate_by_rule"], "shadow_agreement_by_rule": k["shadow_agreement_by_rule"],
        },
    }
    folder = snapshot_dir(st.settings.home_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{now:%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(snap, indent=1, default=str) + "\n", encoding="utf-8")
    ledger.record_event(actor, "console.snapshot", "snapshot", path.name, {k2: v for k2, v in snap.items() if k2 != "kpis"})
    return {**snap, "file": path.name}


def list_snapshots(home: Path, limit: int = 20) -> list[dict[str, Any]]:
    folder = snapshot_dir(home)
    if not folder.exists():
        return []
    out = []
    for path in sorted(folder.glob("*.json"), reverse=True)[:limit]:
        try:
            out.append({**json.loads(path.read_text(encoding="utf-8")), "file": path.name})
        except ValueError:
            continue
    return out
