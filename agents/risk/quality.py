"""How good are the flags? Precision/recall on planted cases, and a point-in-time backtest.

``planted_precision_recall``: the demo CRM plants risks and writes their ground
truth (``ground_truth.csv``: entity_type, entity_id, risk, planted, detail);
this scores each rule against it. A deal counts as flagged by a rule whether
the rule made the primary flag or a supporting signal; given a whole
:class:`RiskRun`, flags held back only by the fatigue limit count too (fatigue
decides what a manager sees today, not what the rule detected). Flags
suppressed by an exclusion or a snooze do not count.

``backtest``: replay the engine every ``step_days`` over a past window, each
time using only what was known at that date (point-in-time features and
semantic-layer baselines), then look at what happened next: per rule, the
share of flagged deals later lost or slipped by more than 30 days against the
share among the deals it did not flag (lift), and the median lead time from
the first flag to the loss.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.risk.engine import RiskRun, evaluate
from agents.risk.features import load_deal_features, load_rep_features
from agents.risk.models import RiskFlag
from agents.risk.policy import RiskPolicy

if TYPE_CHECKING:
    from agents.risk.baselines import BaselineSet
    from agents.semantic_layer import SemanticLayer

__all__ = [
    "GROUND_TRUTH_TO_RULE",
    "BacktestReport",
    "RuleBacktest",
    "RuleQuality",
    "backtest",
    "detected_subjects",
    "planted_precision_recall",
]

# Ground-truth risk name -> the rule that should catch it.
GROUND_TRUTH_TO_RULE: dict[str, str] = {
    "stalled_in_stage": "stalled_in_stage",
    "no_recent_activity": "no_recent_activity",
    "no_decision_maker": "no_decision_maker",
    "meeting_cadence_drop": "meeting_cadence_drop",
    "close_date_slipped": "close_date_slipped",
    "past_due": "close_date_slipped",
    "amount_swing": "amount_swing",
    "rep_overload": "rep_overload",
}


def detected_subjects(flags: RiskRun | Iterable[RiskFlag]) -> dict[str, set[str]]:
    """rule id -> subject ids (opportunity or rep) the rule fired on, primary or supporting.

    For a :class:`RiskRun`, flags suppressed only by the fatigue limit are included.
    """
    if isinstance(flags, RiskRun):
        items = list(flags.flags) + [s.flag for s in flags.suppressed if s.kind == "fatigue"]
    else:
        items = list(flags)
    out: dict[str, set[str]] = defaultdict(set)
    for f in items:
        subject = f.opportunity_id if f.subject == "opportunity" else f.rep_id
        out[f.rule_id].add(subject)
        for s in f.supporting:
            out[s.rule_id].add(subject)
    return dict(out)


@dataclass(frozen=True)
class RuleQuality:
    rule_id: str
    truth: int  # subjects the ground truth says have the risk
    planted: int  # of which planted on purpose
    flagged: int
    true_positives: int
    planted_found: int

    @property
    def precision(self) -> float | None:
        return self.true_positives / self.flagged if self.flagged else None

    @property
    def recall(self) -> float | None:
        return self.true_positives / self.truth if self.truth else None

    @property
    def planted_recall(self) -> float | None:
        return self.planted_found / self.planted if self.planted else None

    def as_row(self) -> dict[str, Any]:
        return {
            "rule": self.rule_id, "truth": self.truth, "planted": self.planted, "flagged": self.flagged,
            "tp": self.true_positives,
            "precision": None if self.precision is None else round(self.precision, 3),
            "recall": None if self.recall is None else round(self.recall, 3),
            "planted_recall": None if self.planted_recall is None else round(self.planted_recall, 3),
        }


def planted_precision_recall(
    flags: RiskRun | Iterable[RiskFlag],
    ground_truth_csv: str | Path,
    *,
    mapping: Mapping[str, str] = GROUND_TRUTH_TO_RULE,
) -> list[RuleQuality]:
    """Per rule with ground truth: flagged subjects vs the subjects that have the risk."""
    truth: dict[str, set[str]] = defaultdict(set)
    planted: dict[str, set[str]] = defaultdict(set)
    with open(ground_truth_csv, newline="") as fh:
        for row in csv.DictReader(fh):
            rule = mapping.get(row["risk"])
            if rule is None:
                continue
            truth[rule].add(row["entity_id"])
            if str(row.get("planted", "")).strip().lower() in ("true", "1", "yes"):
                planted[rule].add(row["entity_id"])
    detected = detected_subjects(flags)
    out = []
    for rule in sorted(truth):
        got = detected.get(rule, set())
        out.append(
            RuleQuality(
                rule_id=rule,
                truth=len(truth[rule]),
                planted=len(planted[rule]),
                flagged=len(got),
                true_positives=len(got & truth[rule]),
                planted_found=len(got & planted[rule]),
            )
        )
    return out


# ---------------------------------------------------------------------------- backtest


@dataclass(frozen=True)
class RuleBacktest:
    rule_id: str
    flagged_deals: int
    flagged_bad: int  # later lost or slipped > slip_days
    unflagged_deals: int
    unflagged_bad: int
    flagged_lost: int
    median_lead_days: float | None  # first flag -> loss, over flagged deals later lost

    @property
    def flagged_bad_rate(self) -> float | None:
        return self.flagged_bad / self.flagged_deals if self.flagged_deals else None

    @property
    def unflagged_bad_rate(self) -> float | None:
        return self.unflagged_bad / self.unflagged_deals if self.unflagged_deals else None

    @property
    def lift(self) -> float | None:
        f, u = self.flagged_bad_rate, self.unflagged_bad_rate
        if f is None or not u:
            return None
        return f / u

    @property
    def estimate(self):
        """Lift with a bootstrap 95% interval and a verdict (lift / no lift / not enough data)."""
        from agents.learning.stats import lift_with_ci

        return lift_with_ci(self.flagged_deals, self.flagged_bad, self.unflagged_deals, self.unflagged_bad)

    def as_row(self) -> dict[str, Any]:
        def r(x: float | None, n: int = 3) -> float | None:
            return None if x is None else round(x, n)

        est = self.estimate

        return {
            "rule": self.rule_id, "flagged": self.flagged_deals, "flagged_bad_rate": r(self.flagged_bad_rate),
            "unflagged": self.unflagged_deals, "unflagged_bad_rate": r(self.unflagged_bad_rate),
            "lift": r(self.lift, 2), "lift_ci_low": r(est.low, 2), "lift_ci_high": r(est.high, 2), "verdict": est.verdict,
            "flagged_lost": self.flagged_lost, "median_lead_days": self.median_lead_days,
        }


@dataclass
class BacktestReport:
    start: dt.date
    end: dt.date
    step_days: int
    dates: list[dt.date]
    outcomes_as_of: dt.date
    slip_days: int
    deals_evaluated: int
    rules: list[RuleBacktest]
    flags_per_date: dict[str, int] = field(default_factory=dict)
    semantic_query_ids: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def rule(self, rule_id: str) -> RuleBacktest | None:
        return next((r for r in self.rules if r.rule_id == rule_id), None)

    def table(self) -> str:
        head = (f"{'rule':26s} {'flagged':>7s} {'bad%':>6s} {'unflag':>7s} {'bad%':>6s} {'lift':>5s} {'95% CI':>11s} "
                f"{'lost':>5s} {'lead(d)':>7s}  verdict")
        lines = [head]
        for r in self.rules:
            fb = "-" if r.flagged_bad_rate is None else f"{r.flagged_bad_rate:.0%}"
            ub = "-" if r.unflagged_bad_rate is None else f"{r.unflagged_bad_rate:.0%}"
            lift = "-" if r.lift is None else f"{r.lift:.2f}"
            lead = "-" if r.median_lead_days is None else f"{r.median_lead_days:.0f}"
            est = r.estimate
            lines.append(
                f"{r.rule_id:26s} {r.flagged_deals:7d} {fb:>6s} {r.unflagged_deals:7d} {ub:>6s} {lift:>5s} "
                f"{est.ci_text():>11s} {r.flagged_lost:5d} {lead:>7s}  {est.verdict}"
            )
        return "\n".join(lines)


_OUTCOMES_SQL = """
select opportunity_id, is_closed, is_won, closed_at, close_date
from marts.fct_opportunities
"""


def _latest_data_date(con: Any) -> dt.date:
    row = con.execute(
        "select max(d) from (select max(created_at) as d from marts.fct_opportunities "
        "union all select max(closed_at) from marts.fct_opportunities "
        "union all select max(changed_at) from marts.fct_field_history "
        "union all select max(entered_at) from marts.fct_stage_history) as latest"
    ).fetchone()
    value = row[0]
    return value.date() if isinstance(value, dt.datetime) else value


def backtest(
    warehouse: str | Path,
    layer: SemanticLayer,
    policy: RiskPolicy,
    start: dt.date | None = None,
    end: dt.date | None = None,
    step_days: int = 7,
    *,
    slip_days: int = 30,
    months: int = 6,
) -> BacktestReport:
    """Replay the policy every ``step_days`` from ``start`` to ``end`` using only data known at each date.

    Defaults: ``end`` is the latest date in the warehouse, ``start`` six months
    (``months``) before. Outcomes are read from the warehouse as it is now: a
    deal is *bad* if it was later lost, or had not closed won within
    ``slip_days`` of the close date it showed when first judged (a still-open
    deal counts once that date plus ``slip_days`` has passed).

    Takes the warehouse path (see :func:`agents.risk.engine.assess` for why):
    all baselines are fetched first, then the features are read on one
    read-only connection.
    """
    from agents.risk.engine import warehouse_connection

    t0 = time.monotonic()
    with warehouse_connection(warehouse, read_only=True) as con:
        data_end = _latest_data_date(con)
    end = end or data_end
    start = start or (end - dt.timedelta(days=round(months * 30.44)))
    dates = []
    d = start
    while d <= end:
        dates.append(d)
        d += dt.timedelta(days=step_days)

    from agents.risk.baselines import fetch_baselines

    baselines: dict[dt.date, BaselineSet] = {
        day: fetch_baselines(
            layer, day,
            min_closed_deals=policy.min_closed_deals,
            fallback_confidence=policy.baseline_settings.fallback_confidence,
        )
        for day in dates
    }

    first_seen: dict[str, tuple[dt.date, dt.date | None]] = {}  # deal -> (first date judged, close date then)
    first_flag: dict[str, dict[str, tuple[dt.date, dt.date | None]]] = defaultdict(dict)
    flags_per_date: dict[str, int] = {}
    query_ids: list[str] = []
    with contextlib.ExitStack() as stack:
        # The features' SQL is DuckDB's: on PostgreSQL it reads an in-memory copy of the marts (agents/risk/mirror.py).
        server = stack.enter_context(warehouse_connection(warehouse, read_only=True))
        if server.dialect == "postgres":
            from agents.risk.mirror import feature_mirror

            con = stack.enter_context(feature_mirror(server))
        else:
            con = server.raw
        for day in dates:
            deals = load_deal_features(con, day)
            reps = load_rep_features(con, day, deals=deals)
            run = evaluate(deals, reps, baselines[day], policy, day)
            flags_per_date[day.isoformat()] = len(run.flags)
            query_ids.extend(q for q in run.semantic_query_ids if q not in query_ids)
            close_then = {x.opportunity_id: x.close_date for x in deals}
            for x in deals:
                first_seen.setdefault(x.opportunity_id, (day, x.close_date))
            for rule, subjects in detected_subjects(run).items():
                for s in subjects:
                    if s in close_then:  # deal-level rules only
                        first_flag[rule].setdefault(s, (day, close_then[s]))
        outcomes = {
            r[0]: {"is_closed": r[1], "is_won": r[2], "closed_at": r[3], "close_date": r[4]}
            for r in con.execute(_OUTCOMES_SQL).fetchall()
        }

    def bad(opp: str, close_then: dt.date | None) -> tuple[bool, dt.date | None]:
        o = outcomes.get(opp)
        if o is None:
            return False, None
        closed_at = o["closed_at"].date() if isinstance(o["closed_at"], dt.datetime) else o["closed_at"]
        if o["is_closed"] and not o["is_won"]:
            return True, closed_at
        if close_then is None:
            return False, None
        due = close_then + dt.timedelta(days=slip_days)
        if o["is_won"]:
            return (closed_at is not None and closed_at > due), None
        return data_end > due, None  # still open well past the close date it showed

    rules = []
    for rule in [r for r in policy.rule_ids if r != "rep_overload"]:
        flagged = first_flag.get(rule, {})
        f_bad = f_lost = 0
        leads: list[float] = []
        for opp, (day, close_then) in flagged.items():
            is_bad, lost_on = bad(opp, close_then)
            f_bad += is_bad
            if lost_on is not None:
                f_lost += 1
                leads.append((lost_on - day).days)
        u_total = u_bad = 0
        for opp, (day, close_then) in first_seen.items():
            if opp in flagged:
                continue
            u_total += 1
            u_bad += bad(opp, close_then)[0]
        rules.append(
            RuleBacktest(
                rule_id=rule,
                flagged_deals=len(flagged),
                flagged_bad=f_bad,
                unflagged_deals=u_total,
                unflagged_bad=u_bad,
                flagged_lost=f_lost,
                median_lead_days=float(statistics.median(leads)) if leads else None,
            )
        )
    return BacktestReport(
        start=start, end=end, step_days=step_days, dates=dates, outcomes_as_of=data_end, slip_days=slip_days,
        deals_evaluated=len(first_seen), rules=rules, flags_per_date=flags_per_date,
        semantic_query_ids=query_ids, seconds=round(time.monotonic() - t0, 1),
    )
