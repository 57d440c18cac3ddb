"""Planted rep-level cases for the accountability triggers and scorecards (issue 14).

Runs on the demo CRM's CSV files once the generator has written them (one call from
``_World.write``), as of the scorecard Monday (the Monday on or before the demo's as-of date):

1. calibrates every active rep's quotas so the healthy reps are healthy: last quarter's quota
   near what they won (attainment 0.9-1.2 at the Monday), next quarter's a 3.4-4.5x coverage of the
   open pipeline closing in it;
2. plants, per block of 24 reps (one of each):
   - ``low_coverage``: an smb rep whose next-quarter quota the open pipeline covers only 1.5x;
   - ``activity_below_floor``: an smb rep whose calls, emails and tasks of the last three weeks are
     gone (kept: meetings, each deal's latest activity and every activity with a decision maker, so
     no deal-level label changes);
   - ``win_rate_drop``: a mid-market rep whose recent wins but the largest turned into losses;
   - ``attainment_below_midpoint``: a mid-market rep at 35% of the quarter's quota;
   - ``scorecard_exceeds``: an enterprise star at 160% of quota (the scorecard verdict EXCEEDS);
3. appends their ground truth (entity_type ``rep``) to ground_truth.csv.

The other files and labels are left as the generator wrote them; the deal-level ground truth still
verifies (connectors/demo/verify.py).
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from collections import defaultdict
from pathlib import Path

REP_RISKS = ("low_coverage", "activity_below_floor", "win_rate_drop", "attainment_below_midpoint", "scorecard_exceeds")
# (segment, position among the manager's reps) -> planted risk; clear of the overloaded and the inactive reps.
PLANTS = {
    ("smb", 2): "low_coverage",
    ("smb", 4): "activity_below_floor",
    ("mid_market", 6): "win_rate_drop",
    ("mid_market", 4): "attainment_below_midpoint",
    ("enterprise", 1): "scorecard_exceeds",
}
SLUMP_DAYS = 21
WIN_RATE_DAYS = 90


def _read(folder: Path, name: str) -> tuple[list[str], list[dict[str, str]]]:
    with open(folder / f"{name}.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def _write(folder: Path, name: str, header: list[str], rows: list[dict[str, str]]) -> None:
    with open(folder / f"{name}.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, header, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def _ts(v: str) -> dt.datetime | None:
    return dt.datetime.fromisoformat(v) if v else None


def _quarter_start(d: dt.date) -> dt.date:
    return dt.date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)


def _next_quarter(q: dt.date) -> dt.date:
    return dt.date(q.year + (q.month == 10), (q.month + 2) % 12 + 1, 1)


def plant_scorecards(folder: Path, as_of: dt.date, seed: int, counts: dict[str, int]) -> dict[str, int]:
    """Calibrate quotas and plant the rep-level cases in ``folder``; returns planted counts per risk
    and keeps ``counts`` (rows per file) up to date."""
    folder = Path(folder)
    monday = as_of - dt.timedelta(days=as_of.weekday())
    cut = dt.datetime.combine(monday, dt.time(23, 59, 59))
    end = dt.datetime.combine(as_of, dt.time(23, 59, 59))
    q_start = _quarter_start(monday)
    q_next = _next_quarter(q_start)
    # Coverage looks at next quarter when at most 14 days of this one are left (the trigger's default).
    cov_start = q_next if (q_next - monday).days <= 14 else q_start
    cov_end = _next_quarter(cov_start)
    rng = random.Random(f"{seed}:plant_scorecards")

    _, reps = _read(folder, "reps")
    by_manager: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in reps:
        by_manager[r["manager_id"]].append(r)
    plants: dict[str, str] = {}
    for members in by_manager.values():
        for j, r in enumerate(members):
            risk = PLANTS.get((r["segment"], j))
            if risk and r["is_active"] == "true":
                plants[r["rep_id"]] = risk
    active = {r["rep_id"] for r in reps if r["is_active"] == "true"}

    opp_header, opps = _read(folder, "opportunities")
    sh_header, history = _read(folder, "stage_history")

    # Win-rate drop: the rep's recent wins, all but the largest, become losses.
    flipped: set[str] = set()
    for rep_id, risk in plants.items():
        if risk != "win_rate_drop":
            continue
        recent = [o for o in opps if o["owner_rep_id"] == rep_id and o["is_won"] == "true" and o["closed_at"]
                  and cut - dt.timedelta(days=WIN_RATE_DAYS) < _ts(o["closed_at"]) <= cut]
        recent.sort(key=lambda o: -float(o["amount"] or 0))
        for o in recent[1:]:
            o["is_won"], o["stage"] = "false", "Closed Lost"
            flipped.add(o["opportunity_id"])
    for h in history:
        if h["opportunity_id"] in flipped and h["stage"] == "Closed Won":
            h["stage"] = "Closed Lost"

    won_q: dict[str, float] = defaultdict(float)
    closing: dict[str, float] = defaultdict(float)
    closing_then: dict[str, float] = defaultdict(float)
    for o in opps:
        amount = float(o["amount"] or 0)
        closed_at, created = _ts(o["closed_at"]), _ts(o["created_at"])
        if o["is_won"] == "true" and closed_at and dt.datetime.combine(q_start, dt.time()) <= closed_at <= cut:
            won_q[o["owner_rep_id"]] += amount
        close_date = dt.date.fromisoformat(o["close_date"]) if o["close_date"] else None
        if close_date and cov_start <= close_date < cov_end:
            for when, into in ((cut, closing), (end, closing_then)):
                if created and created <= when and (o["is_closed"] == "false" or (closed_at and closed_at > when)):
                    into[o["owner_rep_id"]] += amount
    q_header, quotas = _read(folder, "quotas")
    details: dict[str, str] = {}
    for row in quotas:
        rep_id, qs = row["rep_id"], dt.date.fromisoformat(row["quarter_start"])
        if rep_id not in active:
            continue
        risk = plants.get(rep_id)
        if qs == q_start and won_q[rep_id] > 0:
            attainment = {"attainment_below_midpoint": 0.35, "scorecard_exceeds": 1.6}.get(risk, rng.uniform(0.9, 1.15))
            row["quota_amount"] = f"{round(won_q[rep_id] / attainment, -3):.2f}"
            if risk in ("attainment_below_midpoint", "scorecard_exceeds"):
                details[rep_id] = f"won {won_q[rep_id]:,.0f} of a {float(row['quota_amount']):,.0f} quota this quarter"
        if qs == cov_start:
            pipeline = min(closing[rep_id], closing_then[rep_id])
            if pipeline > 0:
                coverage = 1.5 if risk == "low_coverage" else rng.uniform(3.4, 4.5)
                row["quota_amount"] = f"{max(round(pipeline / coverage, -3), 1000):.2f}"
                if risk == "low_coverage":
                    details[rep_id] = f"open pipeline {pipeline:,.0f} closing {cov_start}..{cov_end}, quota {float(row['quota_amount']):,.0f}"
    for rep_id, risk in plants.items():
        if risk == "win_rate_drop":
            details[rep_id] = f"{len(flipped)} recent wins turned into losses"

    # Activity slump: calls, emails and tasks of the last weeks go, except what deal-level rules read.
    slumped = {r for r, risk in plants.items() if risk == "activity_below_floor"}
    removed = 0
    if slumped:
        a_header, activities = _read(folder, "activities")
        ac_header, links = _read(folder, "activity_contacts")
        _, contacts = _read(folder, "contacts")
        deciders = {c["contact_id"] for c in contacts if c["buying_role"] == "decision_maker"}
        with_dm = {ln["activity_id"] for ln in links if ln["contact_id"] in deciders}
        last: dict[str, tuple[str, str]] = {}
        for a in activities:
            if a["opportunity_id"] and a["occurred_at"] <= end.isoformat():
                key = (a["occurred_at"], a["activity_id"])
                if a["opportunity_id"] not in last or key > last[a["opportunity_id"]]:
                    last[a["opportunity_id"]] = key
        latest = {aid for _, aid in last.values()}
        start = (cut - dt.timedelta(days=SLUMP_DAYS)).isoformat()
        drop = {
            a["activity_id"] for a in activities
            if a["rep_id"] in slumped and a["activity_type"] != "meeting" and start <= a["occurred_at"] <= end.isoformat()
            and a["activity_id"] not in latest and a["activity_id"] not in with_dm
        }
        removed = len(drop)
        kept_links = [ln for ln in links if ln["activity_id"] not in drop]
        _write(folder, "activities", a_header, [a for a in activities if a["activity_id"] not in drop])
        _write(folder, "activity_contacts", ac_header, kept_links)
        counts["activities"] -= len(drop)
        counts["activity_contacts"] -= len(links) - len(kept_links)
        for rep_id in slumped:
            details[rep_id] = f"{removed} calls, emails and tasks of the last {SLUMP_DAYS} days removed"

    # The definitions met without planting (planted=false): a rep who won nothing this quarter, a
    # small-sample slump in win rate. Evaluated like the policy's defaults, so precision is honest.
    natural: list[list[str]] = []
    seg_of = {r["rep_id"]: r["segment"] for r in reps}
    quota_now = {row["rep_id"]: float(row["quota_amount"]) for row in quotas if row["quarter_start"] == q_start.isoformat()}
    for rep_id in sorted(active):
        if rep_id in plants or not quota_now.get(rep_id):
            continue
        att = won_q[rep_id] / quota_now[rep_id]
        if att < 0.5:
            natural.append(["rep", rep_id, "attainment_below_midpoint", "false", f"attainment {att:.0%} (not planted)"])
    windows = {"recent": (cut - dt.timedelta(days=WIN_RATE_DAYS), cut),
               "norm": (cut - dt.timedelta(days=WIN_RATE_DAYS + 365), cut - dt.timedelta(days=WIN_RATE_DAYS))}
    tally: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for o in opps:
        closed_at = _ts(o["closed_at"])
        if o["is_closed"] != "true" or closed_at is None:
            continue
        for name, (lo, hi) in windows.items():
            if lo < closed_at <= hi:
                for key in ((o["owner_rep_id"], name), ("segment:" + seg_of.get(o["owner_rep_id"], ""), name)):
                    tally[key][0] += o["is_won"] == "true"
                    tally[key][1] += 1
    for rep_id in sorted(active):
        if rep_id in plants:
            continue
        (w, n), (wn, nn) = tally[(rep_id, "recent")], tally[(rep_id, "norm")]
        sw, sn = tally[("segment:" + seg_of[rep_id], "recent")]
        if n >= 10 and nn >= 10 and sn and (wn / nn - w / n) * 100 > 10 and (sw / sn - w / n) * 100 > 10:
            natural.append(["rep", rep_id, "win_rate_drop", "false", f"{w}/{n} recent vs {wn}/{nn} before (not planted)"])

    _write(folder, "opportunities", opp_header, opps)
    _write(folder, "stage_history", sh_header, history)
    _write(folder, "quotas", q_header, quotas)
    gt = [["rep", rep_id, risk, "true", details.get(rep_id, "")] for rep_id, risk in sorted(plants.items())] + natural
    with open(folder / "ground_truth.csv", "a", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows(gt)
    counts["ground_truth"] = counts.get("ground_truth", 0) + len(gt)
    planted: dict[str, int] = defaultdict(int)
    for risk in plants.values():
        planted[risk] += 1
    return dict(planted)
