"""`make bench`: the daily job on the demo CRM at scales 1, 10 and 100, step by step.

    python benchmarks/bench.py                  # scales 1, 10, 100
    python benchmarks/bench.py --scales 1 10    # only these
    python benchmarks/bench.py --scales 100 --timeout 3000   # stop a scale, report what finished
    python benchmarks/bench.py --from var/bench/latest.json  # reprint a report and its README table

For each scale, a child process generates the demo CRM (once: it is cached under
``<home>/bench/demo_crm``), then runs the daily job in-process on a fresh warehouse,
ledger and Dagster instance. This process samples the child's whole process tree
(dbt runs as a subprocess) every ``--interval`` seconds with psutil: resident memory
and CPU time. Each step's window comes from the Dagster event log (step start and
success events), so a step's CPU time is the tree's CPU time spent inside that window
and its peak memory the largest tree RSS sampled in it.

Prints, per scale: per step (generate, land, dbt, checks, semantic layer, risk flags,
drafts, digests) wall time, CPU time and peak memory; the end-to-end time; rows per
table; flags per rule; and the risk step beside a hand-written floor query for the
same rules. Results also go to ``<home>/bench/bench-<UTC time>.json`` (and
``latest.json``). ``<home>`` is SALES_SUPERVISOR_HOME (default ./var).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# Dagster step key -> bench step. Asset checks run as their own steps; every one counts as "checks".
STEP_OF = {
    "crm_landing": "land",
    "dbt_models": "dbt",
    "semantic_layer": "semantic layer",
    "risk_risk_flags": "risk flags",
    "risk__risk_flags": "risk flags",
    "risk_flags": "risk flags",
    "coaching_drafts": "drafts",
    "risk_coaching_drafts": "drafts",
    "risk__coaching_drafts": "drafts",
    "manager_digests": "digests",
    "review_manager_digests": "digests",
    "review__manager_digests": "digests",
}
STEPS = ["generate", "land", "dbt", "checks", "semantic layer", "risk flags", "drafts", "digests"]


def bench_step(step_key: str) -> str:
    """The bench step a Dagster step key belongs to (anything unknown, e.g. an asset check, is 'checks')."""
    if step_key in STEP_OF:
        return STEP_OF[step_key]
    for key, step in STEP_OF.items():
        if step_key.endswith(key):
            return step
    return "checks"


# ---------------------------------------------------------------------------- the child: one scale


def _fresh_run_home(bench_home: Path, scale: int) -> Path:
    """A clean home for one run (warehouse, ledger, Dagster instance); the generated CRM is shared."""
    home = bench_home / f"scale{scale}"
    if home.exists():
        shutil.rmtree(home)
    (home / "demo_crm").parent.mkdir(parents=True, exist_ok=True)
    cache = bench_home / "demo_crm"
    cache.mkdir(parents=True, exist_ok=True)
    (home / "demo_crm").symlink_to(cache, target_is_directory=True)
    return home


def run_child(scale: int, seed: int, bench_home: Path) -> dict:
    from sales_supervisor.pycache import keep_bytecode_cache
    from sales_supervisor.settings import Settings

    keep_bytecode_cache(bench_home.parent)

    home = _fresh_run_home(bench_home, scale)
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    settings = Settings(home=home, crm_source="demo", demo_scale=scale, demo_seed=seed)

    from connectors.registry import ensure_demo_crm

    cached = (settings.demo_dir / "manifest.json").exists()
    t0 = time.time()
    ensure_demo_crm(settings)
    generate = {"step": "generate", "start": t0, "end": time.time(), "cached": cached}
    (home / ".generate.json").write_text(json.dumps(generate))  # for a partial report after --timeout

    from sales_supervisor.pipeline import run_daily_job, warehouse_counts

    started = time.time()
    summary = run_daily_job(settings)
    ended = time.time()

    windows = [generate, *step_windows(home / "dagster", summary.run_id)]
    counts = warehouse_counts(settings.warehouse_path)
    flags_by_rule, floor = {}, {}
    import duckdb

    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        try:
            flags_by_rule = dict(con.execute(
                "select rule_id, count(*) from risk.risk_flags where run_id = ? group by 1 order by 2 desc, 1",
                [summary.run_id],
            ).fetchall())
        except duckdb.Error:
            pass
        try:
            floor = floor_query(con, settings.effective_as_of())
        except duckdb.Error as exc:
            floor = {"error": str(exc)}
    return {
        "scale": scale, "seed": seed, "success": summary.success, "run_id": summary.run_id,
        "failures": summary.failures, "run_start": started, "run_end": ended, "windows": windows,
        "rows": counts, "flags_by_rule": flags_by_rule, "floor": floor,
    }


def step_windows(dagster_home: Path, run_id: str | None = None, now: float | None = None) -> list[dict]:
    """Each step's [start, end] from the Dagster event log (the latest run when run_id is None). A step
    still running (the run was stopped) ends at ``now`` and is marked unfinished."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(dagster_home)
    windows, starts = [], {}
    with dg.DagsterInstance.get() as instance:
        if run_id is None:
            runs = instance.get_runs(limit=1)
            if not runs:
                return []
            run_id = runs[0].run_id
        for entry in instance.all_logs(run_id):
            ev = entry.dagster_event
            if ev is None or entry.step_key is None:
                continue
            if ev.event_type == dg.DagsterEventType.STEP_START:
                starts[entry.step_key] = entry.timestamp
            elif ev.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
                start = starts.pop(entry.step_key, entry.timestamp)
                windows.append({
                    "step": bench_step(entry.step_key), "step_key": entry.step_key, "start": start,
                    "end": entry.timestamp, "ok": ev.event_type == dg.DagsterEventType.STEP_SUCCESS,
                })
    for key, start in starts.items():
        windows.append({"step": bench_step(key), "step_key": key, "start": start, "end": now or time.time(),
                        "ok": False, "unfinished": True})
    return windows


# The floor: hand-written DuckDB queries over the marts for the same rules as the default policy, with
# their base parameters. FLOOR_SQL: the deal rules (stalled_in_stage, stale_cycle, no_recent_activity,
# meeting_cadence_drop, no_decision_maker, close_date_slipped, amount_swing, missing_required_fields and the
# custom large_deal_gone_quiet), point in time
# (stage, close date and amount as of the date; baselines from stints and deals closed by then), and each
# fired rule's evidence row ids aggregated per deal (list()). It leaves out what the risk step does beyond
# that: per-segment/stage overrides, playbooks, exclusions, snoozes, baseline fallbacks, explanation text,
# severity, fatigue and storage. REP_FLOOR_SQL: the rep-level rules (rep_overload and the five accountability
# triggers: low_coverage, win_rate_drop, attainment_below_midpoint, single_threaded_deals,
# activity_below_floor) straight from the marts, each fired rep's evidence ids in lists. Together they say what
# the warehouse needs for the rules the risk step evaluates.
FLOOR_SQL = """
with open_deals as (
    select o.opportunity_id, o.segment, o.created_at, o.close_date, o.amount, o.next_step
    from marts.fct_opportunities o
    where o.created_at < $cutoff and not (coalesce(o.is_closed, false) and coalesce(o.closed_at, $cutoff) < $cutoff)
),
stint as (
    select opportunity_id, stage_history_id, stage, stage_order, entered_at,
           row_number() over (partition by opportunity_id order by entered_at desc, stage_history_id desc) as rn
    from marts.fct_stage_history where entered_at < $cutoff
),
later as (  -- the first change after the date tells the value at the date
    select opportunity_id, field_name, arg_min(old_value, changed_at) as value_then
    from marts.fct_field_history where changed_at >= $cutoff and field_name in ('close_date', 'amount') group by all
),
stints as (
    select segment, stage, quantile_cont(duration_days, 0.75) as p75,
           sum(meetings_count) / nullif(sum(duration_days / 7.0), 0) as mpw
    from marts.fct_stage_history where exited_at is not null and exited_at < $cutoff group by all
),
cycles as (
    select segment, quantile_cont(date_diff('day', created_at, closed_at), 0.75) as p75
    from marts.fct_opportunities where is_won and closed_at < $cutoff group by all
),
dm as (select distinct activity_id from marts.bridge_activity_contacts where buying_role = 'decision_maker'),
acts as (
    select a.opportunity_id, a.activity_id, a.occurred_at, lower(a.activity_type) = 'meeting' as is_meeting,
           dm.activity_id is not null as with_dm
    from marts.fct_activities a left join dm using (activity_id)
    where a.occurred_at < $cutoff and a.opportunity_id in (select opportunity_id from open_deals)
),
act as (
    select opportunity_id, max(occurred_at) as last_at, arg_max(activity_id, occurred_at) as last_id, bool_or(with_dm) as has_dm,
           list(activity_id order by occurred_at) filter (where is_meeting and occurred_at >= $cutoff - interval 28 day) as recent,
           list(activity_id order by occurred_at desc) filter (
               where is_meeting and occurred_at < $cutoff - interval 28 day and occurred_at >= $cutoff - interval 84 day) as prior,
           count(*) filter (where occurred_at >= $cutoff - interval 14 day) as active
    from acts group by 1
),
chg as (
    select opportunity_id,
           list(field_history_id order by changed_at) filter (
               where field_name = 'close_date' and try_cast(new_value as date) > try_cast(old_value as date)) as pushes,
           list(field_history_id order by changed_at) filter (
               where field_name = 'amount' and changed_at >= $cutoff - interval 30 day
                 and try_cast(old_value as double) > 0
                 and abs(try_cast(new_value as double) - try_cast(old_value as double)) / try_cast(old_value as double) > 0.2) as swings
    from marts.fct_field_history where changed_at < $cutoff and field_name in ('close_date', 'amount') group by 1
),
d as (
    select o.opportunity_id, s.stage_history_id, s.stage, s.stage_order, date_diff('day', s.entered_at::date, $as_of) as days_in_stage,
           date_diff('day', o.created_at::date, $as_of) as cycle_days,
           coalesce(try_cast(lc.value_then as date), o.close_date::date) as close_date,
           coalesce(try_cast(la.value_then as double), o.amount) as amount, o.next_step,
           st.p75 as stage_p75, st.mpw, cy.p75 as cycle_p75, a.*, c.pushes, c.swings
    from open_deals o
    left join stint s on s.opportunity_id = o.opportunity_id and s.rn = 1
    left join later lc on lc.opportunity_id = o.opportunity_id and lc.field_name = 'close_date'
    left join later la on la.opportunity_id = o.opportunity_id and la.field_name = 'amount'
    left join stints st on st.segment = o.segment and st.stage = s.stage
    left join cycles cy on cy.segment = o.segment
    left join act a on a.opportunity_id = o.opportunity_id
    left join chg c on c.opportunity_id = o.opportunity_id
),
fired as (
    select opportunity_id, 'stalled_in_stage' as rule_id, [stage_history_id] as evidence from d
        where days_in_stage > 2.0 * stage_p75
    union all select opportunity_id, 'stale_cycle', [] from d where cycle_days > cycle_p75 and not coalesce(has_dm, false)
    union all select opportunity_id, 'no_recent_activity', [last_id] from d
        where date_diff('day', last_at::date, $as_of) > 14 or (last_at is null and cycle_days > 14)
    union all select opportunity_id, 'meeting_cadence_drop', list_concat(prior[1:3], recent, [last_id]) from d
        where cycle_days >= 28 and active > 0 and ((len(coalesce(prior, [])) >= 4 and len(coalesce(recent, [])) / 4.0 < 0.25 * mpw)
           or (len(coalesce(prior, [])) >= 6 and len(coalesce(recent, [])) / 4.0
               < 0.3 * len(prior) / (least(56, greatest(cycle_days - 28, 0)) / 7.0)))
    union all select opportunity_id, 'no_decision_maker', [stage_history_id] from d
        where stage_order >= (select min(stage_order) from marts.fct_stage_history where stage = 'Proposal') and not coalesce(has_dm, false)
    union all select opportunity_id, 'close_date_slipped', pushes from d where len(coalesce(pushes, [])) >= 2 or close_date < $as_of
    union all select opportunity_id, 'amount_swing', swings from d where len(coalesce(swings, [])) > 0
    union all select opportunity_id, 'missing_required_fields', [] from d
        where (stage_order >= 2 and amount is null)
           or (stage_order >= 4 and (close_date is null or coalesce(trim(next_step), '') = ''))
    union all select opportunity_id, 'large_deal_gone_quiet', [last_id] from d
        where amount > 500000 and coalesce(date_diff('day', last_at::date, $as_of), cycle_days) > 7
)
select rule_id, count(*) as deals, sum(len(list_filter(evidence, x -> x is not null))) as evidence_rows
from fired group by rule_id order by rule_id
"""


REP_FLOOR_SQL = """
with opp as (
    select o.opportunity_id, o.owner_rep_id as rep_id, o.segment, o.amount, o.stage_order, o.close_date, o.closed_at,
           coalesce(o.is_closed, false) as is_closed, coalesce(o.is_won, false) as is_won,
           o.created_at < $cutoff and not (coalesce(o.is_closed, false) and coalesce(o.closed_at, $cutoff) < $cutoff) as open_then
    from marts.fct_opportunities o where o.owner_rep_id is not null
),
per_rep as (
    select rep_id, any_value(segment) as segment,
           count(*) filter (where open_then) as open_deals,
           list(opportunity_id) filter (where open_then) as open_ids,
           coalesce(sum(amount) filter (where open_then and close_date >= $cov_start and close_date < $cov_end), 0) as closing,
           list(opportunity_id) filter (where open_then and close_date >= $cov_start and close_date < $cov_end) as closing_ids,
           coalesce(sum(amount) filter (where is_won and closed_at >= $cov_start and closed_at < $cutoff), 0) as cov_won,
           coalesce(sum(amount) filter (where is_won and closed_at >= $q_start and closed_at < $cutoff), 0) as q_won,
           list(opportunity_id) filter (where is_won and closed_at >= $q_start and closed_at < $cutoff) as won_ids,
           count(*) filter (where is_closed and closed_at >= $recent_from and closed_at < $cutoff) as closed_recent,
           count(*) filter (where is_won and closed_at >= $recent_from and closed_at < $cutoff) as won_recent,
           count(*) filter (where is_closed and closed_at >= $norm_from and closed_at < $recent_from) as closed_norm,
           count(*) filter (where is_won and closed_at >= $norm_from and closed_at < $recent_from) as won_norm,
           list(opportunity_id) filter (where is_closed and not is_won and closed_at >= $recent_from and closed_at < $cutoff) as lost_ids
    from opp group by rep_id
),
seg as (
    select segment, avg(is_won::int) as win_rate from opp
    where is_closed and closed_at >= $recent_from and closed_at < $cutoff group by segment
),
quota as (select rep_id, sum(quota_amount) filter (where quarter_start = $q_start) as q_quota,
                 sum(quota_amount) filter (where quarter_start = $cov_start) as cov_quota
          from marts.fct_quotas group by rep_id),
late as (
    select opportunity_id, rep_id from opp
    where open_then and stage_order >= (select min(stage_order) from marts.fct_stage_history where stage = 'Proposal')
),
engaged as (
    select a.opportunity_id, count(distinct b.contact_id) as contacts
    from marts.fct_activities a join marts.bridge_activity_contacts b on b.activity_id = a.activity_id
    where a.occurred_at < $cutoff and a.opportunity_id in (select opportunity_id from late) group by a.opportunity_id
),
thin as (
    select l.rep_id, list(l.opportunity_id) as ids from late l left join engaged e on e.opportunity_id = l.opportunity_id
    where coalesce(e.contacts, 0) <= 1 group by l.rep_id having count(*) >= 2
),
weekly as (
    select r.rep_id, count(a.activity_id) / 2.0 as per_week
    from marts.dim_reps r left join marts.fct_activities a on a.rep_id = r.rep_id and a.occurred_at >= $w_from
         and a.occurred_at < $w_to and lower(a.activity_type) in ('meeting', 'call', 'email')
    where r.hired_on is null or r.hired_on <= $w_from
    group by r.rep_id having count(a.activity_id) / 2.0 < 20
),
latest as (
    select a.rep_id, max_by(a.activity_id, a.occurred_at, 3) as ids from marts.fct_activities a
    where a.occurred_at < $cutoff and a.rep_id in (select rep_id from weekly) group by a.rep_id
),
fired as (
    select rep_id, 'rep_overload' as rule_id, open_ids as evidence from per_rep where open_deals > 50
    union all select p.rep_id, 'low_coverage', closing_ids from per_rep p join quota q on q.rep_id = p.rep_id
        where q.cov_quota - p.cov_won > 0 and p.closing / (q.cov_quota - p.cov_won) < 3.0
    union all select p.rep_id, 'attainment_below_midpoint', won_ids from per_rep p join quota q on q.rep_id = p.rep_id
        where $as_of >= $midpoint and q.q_quota > 0 and p.q_won / q.q_quota < 0.5
    union all select p.rep_id, 'win_rate_drop', lost_ids from per_rep p left join seg s on s.segment = p.segment
        where closed_recent >= 10 and closed_norm >= 10
          and (won_norm / closed_norm - won_recent / closed_recent) * 100 > 10
          and (s.win_rate - won_recent / closed_recent) * 100 > 10
    union all select rep_id, 'single_threaded_deals', ids from thin
    union all select w.rep_id, 'activity_below_floor', coalesce(l.ids, []) from weekly w left join latest l on l.rep_id = w.rep_id
)
select rule_id, count(*) as reps, sum(len(list_filter(evidence, x -> x is not null))) as evidence_rows
from fired group by rule_id order by rule_id
"""


def _rep_floor_params(as_of: dt.date, cutoff: dt.datetime) -> dict:
    """The default policy's base parameters for the rep-level rules, dated as the triggers date them
    (agents/accountability/metrics.periods: the quarter, the coverage period, the last two complete weeks;
    90 recent days against the 365 before)."""
    from agents.accountability.metrics import periods

    p = periods(as_of, weeks=2)
    recent_from = cutoff - dt.timedelta(days=90)
    return {"cutoff": cutoff, "as_of": as_of, "q_start": p.quarter_start, "cov_start": p.coverage_start,
            "cov_end": p.coverage_end, "midpoint": p.midpoint, "recent_from": recent_from,
            "norm_from": recent_from - dt.timedelta(days=365), "w_from": p.weeks[0],
            "w_to": p.weeks[-1] + dt.timedelta(weeks=1)}


def floor_query(con, as_of: dt.date) -> dict:
    """Both floor queries timed together (the rules the risk step evaluates); per rule, the deals or reps found
    and their evidence rows."""
    cutoff = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())
    t0, c0 = time.perf_counter(), time.process_time()
    rows = con.execute(FLOOR_SQL, {"cutoff": cutoff, "as_of": as_of}).fetchall()
    deal_wall, deal_cpu = time.perf_counter() - t0, time.process_time() - c0
    rep_rows = con.execute(REP_FLOOR_SQL, _rep_floor_params(as_of, cutoff)).fetchall()
    out = {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
           "deal_rules": {"wall_s": deal_wall, "cpu_s": deal_cpu}}
    out["rules"] = {rule: {"deals": n, "evidence_rows": int(e or 0)} for rule, n, e in rows}
    out["rules"].update({rule: {"reps": n, "evidence_rows": int(e or 0)} for rule, n, e in rep_rows})
    return out


# ---------------------------------------------------------------------------- the parent: sampling


def _tree_sample(root) -> tuple[float, int]:
    """(CPU seconds, RSS bytes) of a process and its live descendants. A live process's
    children_* times hold its reaped children, so nothing is counted twice."""
    import psutil

    cpu, rss = 0.0, 0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0, 0
    for p in procs:
        try:
            t = p.cpu_times()
            cpu += t.user + t.system + t.children_user + t.children_system
            rss += p.memory_info().rss
        except psutil.Error:
            continue
    return cpu, rss


def run_scale(scale: int, seed: int, bench_home: Path, interval: float, timeout: float | None = None) -> dict:
    import psutil

    out_file = bench_home / f".child-scale{scale}.json"
    env = dict(os.environ)
    cmd = [sys.executable, __file__, "--child", "--scale", str(scale), "--seed", str(seed),
           "--home", str(bench_home), "--out", str(out_file)]
    samples: list[tuple[float, float, int]] = []
    proc = subprocess.Popen(cmd, env=env, cwd=REPO_ROOT)
    root = psutil.Process(proc.pid)
    cpu_max, began, timed_out = 0.0, time.time(), False
    while proc.poll() is None:
        cpu, rss = _tree_sample(root)
        cpu_max = max(cpu_max, cpu)  # a child that exited but is not yet reaped drops out for a moment
        samples.append((time.time(), cpu_max, rss))
        if timeout is not None and time.time() - began > timeout:
            timed_out = True
            for p in [*root.children(recursive=True), root]:
                with contextlib.suppress(psutil.Error):
                    p.kill()
            proc.wait()
            break
        time.sleep(interval)
    if timed_out:
        # What finished before the timeout, from the event log; the running step counts up to the kill.
        home = bench_home / f"scale{scale}"
        gen = home / ".generate.json"
        ended = time.time()
        windows = ([json.loads(gen.read_text())] if gen.exists() else []) + (
            step_windows(home / "dagster", now=ended) if gen.exists() else [])
        result = {"scale": scale, "seed": seed, "success": False, "partial": True,
                  "failures": [f"stopped after --timeout {timeout:.0f} s"], "run_start": began, "run_end": ended,
                  "windows": windows or [{"step": "generate", "start": began, "end": ended, "unfinished": True}],
                  "rows": {}, "flags_by_rule": {}, "floor": {}}
    elif proc.returncode != 0 or not out_file.exists():
        return {"scale": scale, "success": False, "error": f"child exited with {proc.returncode}"}
    else:
        result = json.loads(out_file.read_text())
        out_file.unlink()

    return summarise(result, samples)


def summarise(result: dict, samples: list[tuple[float, float, int]]) -> dict:
    """Per bench step: wall time (sum of its Dagster steps' windows), CPU time of the process tree spent
    inside those windows, and the largest tree RSS sampled in them; plus the end-to-end figures.
    ``samples``: (time, cumulative tree CPU seconds, tree RSS bytes)."""

    def cpu_at(t: float) -> float:
        """The tree's cumulative CPU at ``t``, interpolated between the samples around it (taking the samples
        themselves would count up to one sampling interval of the neighbouring steps on each side)."""
        before = [s for s in samples if s[0] <= t]
        after = [s for s in samples if s[0] >= t]
        if not before:
            return after[0][1] if after else 0.0
        if not after:
            return before[-1][1]
        (t0, c0, _), (t1, c1, _) = before[-1], after[0]
        return c0 if t1 <= t0 else c0 + (c1 - c0) * (t - t0) / (t1 - t0)

    def window(start: float, end: float) -> tuple[float, int]:
        inside = [s for s in samples if start <= s[0] <= end]
        before = [s for s in samples if s[0] <= start]
        after = [s for s in samples if s[0] >= end]
        peak = max((s[2] for s in inside + before[-1:] + after[:1]), default=0)
        return max(cpu_at(end) - cpu_at(start), 0.0), peak

    steps: dict[str, dict] = {}
    for w in result["windows"]:
        cpu, peak = window(w["start"], w["end"])
        agg = steps.setdefault(w["step"], {"wall_s": 0.0, "cpu_s": 0.0, "peak_mb": 0.0, "n": 0})
        agg["wall_s"] += w["end"] - w["start"]
        agg["cpu_s"] += cpu
        agg["peak_mb"] = max(agg["peak_mb"], peak / 2**20)
        agg["n"] += 1
        if w["step"] == "generate":
            agg["cached"] = w.get("cached", False)
        if w.get("unfinished"):
            agg["unfinished"] = True
    start = result["windows"][0]["start"]
    total_cpu, _ = window(start, result["run_end"])
    result["steps"] = steps
    result["end_to_end"] = {
        "wall_s": result["run_end"] - start,
        "run_wall_s": result["run_end"] - result["run_start"],
        "cpu_s": total_cpu,
        "peak_mb": max((s[2] for s in samples), default=0) / 2**20,
    }
    del result["windows"]
    return result


def print_result(r: dict) -> None:
    state = "" if r.get("success") else ("  (PARTIAL: stopped by --timeout)" if r.get("partial") else "  (RUN FAILED)")
    print(f"\n== scale {r['scale']} ==" + state)
    if "steps" not in r:
        print(f"  {r.get('error')}")
        return
    print(f"  {'step':<16}{'wall s':>10}{'CPU s':>10}{'peak MB':>10}")
    for name in STEPS:
        s = r["steps"].get(name)
        if s is None:
            continue
        note = " (cached)" if s.get("cached") else (f" ({s['n']} steps)" if s["n"] > 1 else "")
        note += " (unfinished: stopped by --timeout)" if s.get("unfinished") else ""
        print(f"  {name:<16}{s['wall_s']:>10.1f}{s['cpu_s']:>10.1f}{s['peak_mb']:>10.0f}{note}")
    e = r["end_to_end"]
    print(f"  {'end to end':<16}{e['wall_s']:>10.1f}{e['cpu_s']:>10.1f}{e['peak_mb']:>10.0f}"
          f"  (the job alone: {e['run_wall_s']:.1f} s wall)")
    for f in r.get("failures") or []:
        print(f"  FAILED {f}")
    risk, floor = r["steps"].get("risk flags"), r.get("floor") or {}
    if risk and "wall_s" in floor:
        found = ", ".join(f"{rule} {v.get('deals', v.get('reps'))}" for rule, v in sorted((floor.get("rules") or {}).items()))
        print(f"  risk flags step {risk['wall_s']:.2f} s wall, {risk['cpu_s']:.2f} CPU-s vs floor query "
              f"{floor['wall_s']:.2f} s wall, {floor['cpu_s']:.2f} CPU-s ({risk['cpu_s'] / max(floor['cpu_s'], 1e-3):.1f}x "
              f"CPU, {risk['wall_s'] / max(floor['wall_s'], 1e-3):.1f}x wall; the floor (9 deal rules and 6 rep rules, base "
              f"parameters, evidence ids in SQL) finds {found} before overrides, exclusions and fatigue)")
    print("  rows per table:")
    for table, n in r["rows"].items():
        print(f"    {table:<40}{n:>12,}")
    print("  flags per rule: " + (", ".join(f"{k} {v}" for k, v in r["flags_by_rule"].items()) or "none"))


def _cell(s: dict | None) -> str:
    if not s:
        return "-"
    if s.get("cached"):
        return "cached"
    text = f"{s['wall_s']:,.1f} / {s['cpu_s']:,.1f} / {s['peak_mb']:,.0f}"
    return text + (" (unfinished)" if s.get("unfinished") else "")


def markdown_table(report: dict) -> str:
    """The README's figures table for a bench report (``bench-<time>.json``): one column per scale
    (wall s / CPU s / peak MB per step), and, for each pair of consecutive scales, how many times
    each step's CPU time grew (the issue's target: at most 12x from scale 10 to 100)."""
    results = [r for r in report.get("results", []) if "steps" in r]
    machine = report.get("machine", {})
    lines = [
        f"`make bench` started {report.get('started', '?')} ({machine.get('platform', '?')}, "
        f"{machine.get('cpus', '?')} CPUs, Python {machine.get('python', '?')}); wall s / CPU s / peak MB:",
        "",
    ]
    heads = []
    for r in results:
        state = "" if r.get("success") else (" (partial)" if r.get("partial") else " (failed)")
        heads.append(f"scale {r['scale']}{state}")
    pairs = [(a, b) for a, b in zip(results, results[1:])]
    heads += [f"CPU growth {a['scale']} -> {b['scale']}" for a, b in pairs]
    lines.append("| step | " + " | ".join(heads) + " |")
    lines.append("|---" * (len(heads) + 1) + "|")

    def growth(a: dict | None, b: dict | None) -> str:
        if not a or not b or a.get("cached") or b.get("cached") or b.get("unfinished") or a["cpu_s"] <= 0:
            return "-"
        return f"{b['cpu_s'] / a['cpu_s']:.1f}x"

    for name in STEPS:
        cells = [r["steps"].get(name) for r in results]
        if not any(cells):
            continue
        n = max((c or {}).get("n", 1) for c in cells)
        label = f"{name} ({n} steps)" if n > 1 else name
        row = [_cell(c) for c in cells] + [growth(a["steps"].get(name), b["steps"].get(name)) for a, b in pairs]
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    row = [_cell(r["end_to_end"]) for r in results] + [
        growth(a["end_to_end"], b["end_to_end"]) if a.get("success") and b.get("success") else "-" for a, b in pairs
    ]
    lines.append("| end to end | " + " | ".join(row) + " |")
    floors = [r.get("floor") or {} for r in results]
    if any("wall_s" in f for f in floors):
        row = [f"{f['wall_s']:.2f} / {f['cpu_s']:.2f}" if "wall_s" in f else "-" for f in floors] + ["-"] * len(pairs)
        lines.append("| floor query | " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scales", type=int, nargs="+", default=[1, 10, 100], help="demo CRM scales (default 1 10 100)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--interval", type=float, default=0.25, help="sampling interval in seconds")
    ap.add_argument("--home", type=Path, help="bench folder (default <SALES_SUPERVISOR_HOME or var>/bench)")
    ap.add_argument("--timeout", type=float, help="stop a scale after this many seconds and report what finished")
    ap.add_argument("--markdown", action="store_true", help="also print the results as the README's markdown table")
    ap.add_argument("--from", dest="from_file", type=Path, metavar="JSON",
                    help="print a saved report (var/bench/latest.json, bench-<time>.json) instead of running")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--scale", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.from_file:
        if not args.from_file.exists():
            print(f"{args.from_file}: no such bench report (run make bench first)", file=sys.stderr)
            return 2
        saved = json.loads(args.from_file.read_text())
        for r in saved.get("results", []):
            print_result(r)
        print("\n" + markdown_table(saved))
        return 0
    bench_home = (args.home or Path(os.environ.get("SALES_SUPERVISOR_HOME") or "var") / "bench").expanduser().resolve()
    bench_home.mkdir(parents=True, exist_ok=True)

    if args.child:
        args.out.write_text(json.dumps(run_child(args.scale, args.seed, bench_home), default=str))
        return 0

    report = {
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "results": [],
    }
    ok = True
    for scale in args.scales:
        print(f"scale {scale}: running ...", file=sys.stderr, flush=True)
        r = run_scale(scale, args.seed, bench_home, args.interval, args.timeout)
        report["results"].append(r)
        print_result(r)
        ok &= bool(r.get("success"))
        out = bench_home / f"bench-{report['started'].replace(':', '')}.json"
        out.write_text(json.dumps(report, indent=2, default=str))
        (bench_home / "latest.json").write_text(out.read_text())
    if args.markdown:
        print("\n" + markdown_table(report))
    print(f"\nresults: {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
