"""Re-derive the demo CRM's risk labels from its CSV files and compare them with ground_truth.csv.

Independent of the generator's in-memory state: stage-duration baselines are
recomputed from the closed deals' completed stints in the files, so a drift
between the generator's parameters and the data it wrote shows up here.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections import defaultdict
from pathlib import Path

from connectors.demo.plant_scorecards import REP_RISKS
from connectors.demo.params import OPEN_STAGES, OPPORTUNITY_RISKS, RISK_DEFINITIONS, quantile
from connectors.demo.rules import DAY, DealFacts, evaluate, health_violations

# Empirical percentiles further than this from the parametric ones are reported.
BASELINE_TOLERANCE = 0.25


def _rows(folder: Path, name: str):
    with open(folder / f"{name}.csv", newline="", encoding="utf-8") as f:
        yield from csv.DictReader(f)


class _Clock:
    def __init__(self) -> None:
        self._days: dict[str, int] = {}

    def day(self, s: str) -> int:
        d = self._days.get(s)
        if d is None:
            d = self._days[s] = dt.date.fromisoformat(s).toordinal()
        return d

    def key(self, ts: str) -> int:
        return self.day(ts[:10]) * DAY + int(ts[11:13]) * 60 + int(ts[14:16])


def empirical_baselines(folder: Path) -> dict[str, dict[str, dict[str, float]]]:
    """p50/p75 (days) of closed deals' completed stints per segment x open stage, from the CSVs."""
    clock = _Clock()
    seg_of_rep = {r["rep_id"]: r["segment"] for r in _rows(folder, "reps")}
    closed = {o["opportunity_id"]: seg_of_rep[o["owner_rep_id"]] for o in _rows(folder, "opportunities") if o["is_closed"] == "true"}
    entries: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for r in _rows(folder, "stage_history"):
        if r["opportunity_id"] in closed:
            entries[r["opportunity_id"]].append((clock.key(r["entered_at"]), r["stage"]))
    stints: dict[tuple[str, str], list[float]] = defaultdict(list)
    for opp, es in entries.items():
        es.sort()
        for (k0, stage), (k1, _) in zip(es, es[1:]):
            stints[(closed[opp], stage)].append((k1 - k0) / DAY)
    out: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for (seg, stage), values in stints.items():
        if stage in OPEN_STAGES:
            values.sort()
            out[seg][stage] = {"p50": quantile(values, 0.5), "p75": quantile(values, 0.75), "n": len(values)}
    return dict(out)


def verify_ground_truth(out_dir: Path) -> list[str]:
    """Mismatches between the risk definitions evaluated on the CSV files and ground_truth.csv (empty = ok).

    Checks: every open deal meeting a definition carries that label and every
    label is met; every unlabelled open deal is clearly healthy on every
    dimension; each labelled deal has exactly one planted risk; rep overload
    matches the open-deal counts; empirical stage baselines match the manifest's.
    """
    folder = Path(out_dir)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    as_of_day = dt.date.fromisoformat(manifest["as_of"]).toordinal()
    problems: list[str] = []
    clock = _Clock()

    baselines = empirical_baselines(folder)
    declared = manifest["risk_parameters"]["stalled_in_stage"]["baselines"]
    for seg, stages in declared.items():
        for stage, b in stages.items():
            e = baselines.get(seg, {}).get(stage)
            if e is None:
                problems.append(f"baseline {seg}/{stage}: no completed stints in the data")
                continue
            for q in ("p50", "p75"):
                if abs(e[q] - b[q]) > BASELINE_TOLERANCE * b[q]:
                    problems.append(f"baseline {seg}/{stage} {q}: data {e[q]:.1f} vs manifest {b[q]:.1f}")

    seg_of_rep = {r["rep_id"]: r["segment"] for r in _rows(folder, "reps")}
    dm_contacts = {r["contact_id"] for r in _rows(folder, "contacts") if r["buying_role"] == "decision_maker"}
    facts: dict[str, DealFacts] = {}
    open_per_rep: dict[str, int] = defaultdict(int)
    for o in _rows(folder, "opportunities"):
        if o["is_closed"] == "true":
            continue
        open_per_rep[o["owner_rep_id"]] += 1
        facts[o["opportunity_id"]] = DealFacts(
            opportunity_id=o["opportunity_id"],
            segment=seg_of_rep[o["owner_rep_id"]],
            stage=o["stage"],
            created=clock.key(o["created_at"]),
            stage_entered=-1,
            close_date=clock.day(o["close_date"]) if o["close_date"] else None,
        )
    for r in _rows(folder, "stage_history"):
        f = facts.get(r["opportunity_id"])
        if f is not None and r["stage"] == f.stage:
            f.stage_entered = max(f.stage_entered, clock.key(r["entered_at"]))
    for r in _rows(folder, "field_history"):
        f = facts.get(r["opportunity_id"])
        if f is None:
            continue
        key = clock.key(r["changed_at"])
        if r["field_name"] == "close_date":
            f.close_date_changes.append((clock.day(r["old_value"]), clock.day(r["new_value"]), key))
        elif r["field_name"] == "amount":
            f.amount_changes.append((float(r["old_value"]), float(r["new_value"]), key))
    with_dm: set[str] = {r["activity_id"] for r in _rows(folder, "activity_contacts") if r["contact_id"] in dm_contacts}
    for r in _rows(folder, "activities"):
        f = facts.get(r["opportunity_id"])
        if f is not None:
            f.activities.append((clock.key(r["occurred_at"]), r["activity_type"], r["activity_id"] in with_dm))

    labels: dict[str, dict[str, bool]] = defaultdict(dict)
    rep_labels: dict[str, bool] = {}
    for g in _rows(folder, "ground_truth"):
        if g["entity_type"] == "opportunity":
            if g["entity_id"] not in facts:
                problems.append(f"{g['entity_id']}: labelled {g['risk']} but not an open opportunity")
                continue
            labels[g["entity_id"]][g["risk"]] = g["planted"] == "true"
        elif g["entity_type"] == "rep" and g["risk"] == "rep_overload":
            rep_labels[g["entity_id"]] = g["planted"] == "true"
        elif g["entity_type"] == "rep" and g["risk"] in REP_RISKS:
            continue  # rep-level accountability cases: measured by `sales-supervisor risk quality` (issue 14)
        else:
            problems.append(f"ground truth row of unknown kind: {g}")

    for opp_id, f in facts.items():
        if f.stage_entered < 0:
            problems.append(f"{opp_id}: no stage_history row for its current stage {f.stage}")
            continue
        met = evaluate(f, as_of_day, baselines)
        got = labels.get(opp_id, {})
        for risk in OPPORTUNITY_RISKS:
            if (risk in met) != (risk in got):
                state = f"meets it ({met[risk]})" if risk in met else "does not meet it"
                problems.append(f"{opp_id}: {risk} {'labelled' if risk in got else 'unlabelled'} but {state}")
        if got:
            n_planted = sum(got.values())
            if n_planted != 1:
                problems.append(f"{opp_id}: {n_planted} planted risks (want exactly 1)")
            nra = met.get("no_recent_activity")
            if nra and f.activities:
                gap = (as_of_day * DAY - max(a[0] for a in f.activities)) / DAY
                if gap > RISK_DEFINITIONS["no_recent_activity"]["max_days"]:
                    problems.append(f"{opp_id}: last activity {gap:.1f} days ago, beyond the planted range")
        else:
            for p in health_violations(f, as_of_day, baselines):
                problems.append(f"{opp_id}: unlabelled but not clearly healthy: {p}")

    overload = RISK_DEFINITIONS["rep_overload"]
    for rep_id in seg_of_rep:
        n = open_per_rep.get(rep_id, 0)
        if (n >= overload["min_open_deals"]) != (rep_id in rep_labels):
            problems.append(f"{rep_id}: {n} open deals, rep_overload label {rep_id in rep_labels}")
        if rep_id not in rep_labels and n > overload["others_max_open_deals"]:
            problems.append(f"{rep_id}: {n} open deals > {overload['others_max_open_deals']} without overload label")
    return problems
