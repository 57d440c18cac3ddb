"""How well the rep-level triggers and the scorecard verdicts find the demo CRM's planted rep cases
(connectors/demo/plant_scorecards.py), reported by ``sales-supervisor risk quality`` beside the deal
rules; and a backtest of the rep-level triggers against the quarter's outcome."""

from __future__ import annotations

import csv
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from agents.risk.models import RiskFlag
from agents.risk.quality import RuleQuality, detected_subjects

if TYPE_CHECKING:
    from agents.risk.policy import RiskPolicy
    from agents.semantic_layer import SemanticLayer

REP_TRUTH_TO_RULE = {
    "low_coverage": "low_coverage",
    "win_rate_drop": "win_rate_drop",
    "attainment_below_midpoint": "attainment_below_midpoint",
    "activity_below_floor": "activity_below_floor",
    "scorecard_exceeds": "scorecard EXCEEDS",
}


def scorecard_monday(as_of: dt.date) -> dt.date:
    """The scorecard day the demo's rep cases are planted for: the Monday on or before ``as_of``."""
    return as_of - dt.timedelta(days=as_of.weekday())


def rep_quality(flags: Iterable[RiskFlag], ground_truth_csv: str | Path) -> list[RuleQuality]:
    """Per rep-level trigger (and the EXCEEDS verdict): flagged reps vs the reps planted with the case."""
    flags = list(flags)
    truth: dict[str, set[str]] = defaultdict(set)
    with open(ground_truth_csv, newline="") as fh:
        for row in csv.DictReader(fh):
            rule = REP_TRUTH_TO_RULE.get(row["risk"])
            if rule is not None and row["entity_type"] == "rep":
                truth[rule].add(row["entity_id"])
    detected = {r: s for r, s in detected_subjects(flags).items() if r in REP_TRUTH_TO_RULE.values()}
    detected["scorecard EXCEEDS"] = {f.rep_id for f in flags if f.rule_id == "weekly_scorecard" and f.observed == "EXCEEDS"}
    out = []
    for rule in REP_TRUTH_TO_RULE.values():
        got = detected.get(rule, set())
        out.append(RuleQuality(rule_id=rule, truth=len(truth[rule]), planted=len(truth[rule]), flagged=len(got),
                               true_positives=len(got & truth[rule]), planted_found=len(got & truth[rule])))
    return out


def measure_reps(warehouse: str | Path, layer: SemanticLayer, policy: RiskPolicy, as_of: dt.date,
                 ground_truth_csv: str | Path) -> tuple[dt.date, list[RuleQuality]]:
    """Rep triggers and scorecards as of the scorecard Monday of ``as_of``, against the planted cases."""
    from agents.accountability.run import assess_reps, build_week
    from agents.risk.engine import RiskRun

    monday = scorecard_monday(as_of)
    empty = RiskRun(as_of=monday, policy_version=policy.version, deals_evaluated=0, reps_evaluated=0, flags=[])
    cards, _ = build_week(warehouse, layer, policy, monday)
    run, _ = assess_reps(empty, warehouse, layer, policy, monday, scorecards=cards)
    return monday, rep_quality(run.flags, ground_truth_csv)


def rep_backtest(warehouse: str | Path, layer: SemanticLayer, policy: RiskPolicy, dates: list[dt.date]) -> list[dict]:
    """Replay the rep-level triggers as of past dates and compare with how the quarter ended: does a
    coverage gap (or any trigger) precede a missed quarter? Per trigger: rep-dates flagged and not,
    the share that then missed the quarter the trigger looked at (attainment < 100% at its end),
    and the lift (flagged missed% / unflagged missed%). Quarters not over by the data's end are left out."""
    from agents.accountability.metrics import add_months, quarter_start
    from agents.accountability.run import assess_reps
    from agents.accountability.triggers import TRIGGERS
    from agents.risk.engine import RiskRun

    final = layer.query(["quota_amount", "won_amount"], ["rep", "metric_time__quarter"])
    ended: dict[tuple[str, dt.date], bool] = {}
    for row in final:
        quota = row.get("quota_amount")
        if row.get("rep") and quota:
            q = dt.date.fromisoformat(str(row["metric_time__quarter"])[:10])
            ended[(row["rep"], q)] = (row.get("won_amount") or 0.0) < quota
    data_end = max(dates) if dates else None
    counts = {t: {"flagged": 0, "flagged_missed": 0, "unflagged": 0, "unflagged_missed": 0} for t in TRIGGERS}
    for day in dates:
        empty = RiskRun(as_of=day, policy_version=policy.version, deals_evaluated=0, reps_evaluated=0, flags=[])
        run, _ = assess_reps(empty, warehouse, layer, policy, day)
        fired = detected_subjects(run.flags)
        reps = {k[0] for k in ended}
        for trigger in TRIGGERS:
            q = quarter_start(day)
            if trigger == "low_coverage" and (add_months(q, 3) - day).days <= 14:
                q = add_months(q, 3)
            for rep in reps:
                missed = ended.get((rep, q))
                if missed is None:
                    continue
                key = "flagged" if rep in fired.get(trigger, set()) else "unflagged"
                counts[trigger][key] += 1
                counts[trigger][key + "_missed"] += int(missed)
    out = []
    for trigger, c in counts.items():
        fr = c["flagged_missed"] / c["flagged"] if c["flagged"] else None
        ur = c["unflagged_missed"] / c["unflagged"] if c["unflagged"] else None
        out.append({"trigger": trigger, **c, "flagged_missed_rate": fr, "unflagged_missed_rate": ur,
                    "lift": (fr / ur) if fr is not None and ur else None, "dates": len(dates),
                    "last_date": data_end.isoformat() if data_end else None})
    return out
