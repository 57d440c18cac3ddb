"""Each rep's numbers as of a date, read from the semantic layer (semantic_models/accountability.yml).

Every number a rep-level trigger or a scorecard shows comes from one of these MetricFlow queries,
filtered to what was known at the as-of date; the results keep their query ids (cited by flags and
scorecards) and are stored as provenance in semantic.semantic_queries like the risk baselines.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agents.semantic_layer import SemanticQueryResult

if TYPE_CHECKING:
    from agents.semantic_layer import SemanticLayer

REP = "rep"
WEEK = "metric_time__week"
ACTIVITY_TYPE = "activity__activity_type"


def quarter_start(d: dt.date) -> dt.date:
    return dt.date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)


def add_months(d: dt.date, months: int) -> dt.date:
    m = d.month - 1 + months
    return dt.date(d.year + m // 12, m % 12 + 1, 1)


def week_start(d: dt.date) -> dt.date:
    """The Monday of ``d``'s week (MetricFlow's week grain starts on Monday)."""
    return d - dt.timedelta(days=d.weekday())


def _t(op: str, day: dt.date, dim: str = "metric_time") -> str:
    return "{{ TimeDimension('" + dim + "', 'day') }} " + op + " '" + day.isoformat() + "'"


def open_at(as_of: dt.date) -> list[str]:
    """Filters keeping the deals open at the end of ``as_of``: created by then, not closed by then."""
    return [
        _t("<=", as_of, "opportunity__created_at"),
        "({{ Dimension('opportunity__is_closed') }} = false or "
        + _t(">", as_of, "opportunity__closed_at") + ")",
    ]


def _num(v: Any) -> float | None:
    if v is None:
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def _day(v: Any) -> dt.date | None:
    if v is None:
        return None
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    return dt.date.fromisoformat(str(v)[:10])


@dataclass(frozen=True)
class Periods:
    as_of: dt.date
    quarter_start: dt.date
    quarter_end: dt.date  # exclusive
    coverage_start: dt.date
    coverage_end: dt.date  # exclusive
    weeks: tuple[dt.date, ...]  # Mondays of the complete weeks before as_of's week, oldest first

    @property
    def quarter_elapsed(self) -> float:
        total = (self.quarter_end - self.quarter_start).days
        return min(1.0, max(0.0, ((self.as_of - self.quarter_start).days + 1) / total))

    @property
    def midpoint(self) -> dt.date:
        return self.quarter_start + (self.quarter_end - self.quarter_start) / 2


def periods(as_of: dt.date, *, weeks: int = 8, coverage_min_days_left: int = 14) -> Periods:
    qs = quarter_start(as_of)
    qe = add_months(qs, 3)
    cs, ce = (qe, add_months(qe, 3)) if (qe - as_of).days <= coverage_min_days_left else (qs, qe)
    this_week = week_start(as_of)
    return Periods(as_of, qs, qe, cs, ce, tuple(this_week - dt.timedelta(weeks=k) for k in range(weeks, 0, -1)))


@dataclass
class RepMetrics:
    """One rep's governed numbers as of a date (None: the source cannot say)."""

    rep_id: str
    quota: float | None = None
    won_amount: float = 0.0
    attainment: float | None = None
    coverage_quota: float | None = None
    coverage_won: float = 0.0
    pipeline_closing: float = 0.0
    open_pipeline: float = 0.0
    win_rate_recent: float | None = None
    closed_recent: int = 0
    win_rate_norm: float | None = None
    closed_norm: int = 0
    activities_by_week: dict[dt.date, dict[str, int]] = field(default_factory=dict)
    created_by_week: dict[dt.date, tuple[int, float]] = field(default_factory=dict)

    @property
    def coverage(self) -> float | None:
        if self.coverage_quota is None:
            return None
        remaining = self.coverage_quota - self.coverage_won
        if remaining <= 0:
            return None
        return self.pipeline_closing / remaining

    @property
    def remaining_quota(self) -> float | None:
        return None if self.coverage_quota is None else max(0.0, self.coverage_quota - self.coverage_won)


@dataclass
class RepMetricSet:
    as_of: dt.date
    periods: Periods
    reps: dict[str, RepMetrics]
    segment_win_rate: dict[str, tuple[float | None, int]]
    results: dict[str, SemanticQueryResult]
    has_quotas: bool
    has_activities: bool

    def query_id(self, name: str) -> str:
        return self.results[name].query_id

    @property
    def query_ids(self) -> list[str]:
        return [r.query_id for r in self.results.values()]

    def rep(self, rep_id: str) -> RepMetrics:
        return self.reps.setdefault(rep_id, RepMetrics(rep_id))


def fetch_rep_metrics(
    layer: SemanticLayer, as_of: dt.date, *, weeks: int = 8, coverage_min_days_left: int = 14,
    win_recent_days: int = 90, win_norm_days: int = 365,
) -> RepMetricSet:
    """Run the accountability queries for ``as_of`` and collect each rep's numbers."""
    p = periods(as_of, weeks=weeks, coverage_min_days_left=coverage_min_days_left)
    recent_from = as_of - dt.timedelta(days=win_recent_days)
    norm_from = recent_from - dt.timedelta(days=win_norm_days)
    w0, w1 = p.weeks[0], week_start(as_of)
    results = {
        "attainment": layer.query(
            ["quota_amount", "won_amount", "quota_attainment"], [REP],
            where=[_t(">=", p.quarter_start), _t("<=", as_of)]),
        "coverage_quota": layer.query(
            ["quota_amount"], [REP], where=[_t(">=", p.coverage_start), _t("<", p.coverage_end)]),
        "coverage_won": layer.query(
            ["won_amount"], [REP], where=[_t(">=", p.coverage_start), _t("<=", as_of)]),
        "pipeline_closing": layer.query(
            ["pipeline_closing_amount"], [REP],
            where=[_t(">=", p.coverage_start), _t("<", p.coverage_end), *open_at(as_of)]),
        "open_pipeline": layer.query(["pipeline_closing_amount"], [REP], where=open_at(as_of)),
        "win_rate_recent": layer.query(
            ["win_rate", "closed_deals"], [REP], where=[_t(">", recent_from), _t("<=", as_of)]),
        "win_rate_norm": layer.query(
            ["win_rate", "closed_deals"], [REP], where=[_t(">", norm_from), _t("<=", recent_from)]),
        "win_rate_segment": layer.query(
            ["win_rate", "closed_deals"], ["rep__segment"], where=[_t(">", recent_from), _t("<=", as_of)]),
        "activities_by_week": layer.query(
            ["activity_count"], [REP, WEEK, ACTIVITY_TYPE], where=[_t(">=", w0), _t("<", w1)]),
        "created_by_week": layer.query(
            ["deals_created", "pipeline_created_amount"], [REP, WEEK], where=[_t(">=", w0), _t("<", w1)]),
    }
    out = RepMetricSet(as_of, p, {}, {}, results, has_quotas=False, has_activities=False)
    for row in results["attainment"]:
        if row.get(REP) is None:
            continue
        m = out.rep(row[REP])
        m.quota, m.won_amount = _num(row.get("quota_amount")), _num(row.get("won_amount")) or 0.0
        m.attainment = _num(row.get("quota_attainment"))
        if m.quota:
            out.has_quotas = True
            if m.attainment is None:
                m.attainment = m.won_amount / m.quota
    for row in results["coverage_quota"]:
        if row.get(REP) is not None:
            out.rep(row[REP]).coverage_quota = _num(row.get("quota_amount"))
    for row in results["coverage_won"]:
        if row.get(REP) is not None:
            out.rep(row[REP]).coverage_won = _num(row.get("won_amount")) or 0.0
    for row in results["pipeline_closing"]:
        if row.get(REP) is not None:
            out.rep(row[REP]).pipeline_closing = _num(row.get("pipeline_closing_amount")) or 0.0
    for row in results["open_pipeline"]:
        if row.get(REP) is not None:
            out.rep(row[REP]).open_pipeline = _num(row.get("pipeline_closing_amount")) or 0.0
    for key, rate_attr, n_attr in (("win_rate_recent", "win_rate_recent", "closed_recent"),
                                   ("win_rate_norm", "win_rate_norm", "closed_norm")):
        for row in results[key]:
            if row.get(REP) is not None:
                m = out.rep(row[REP])
                setattr(m, rate_attr, _num(row.get("win_rate")))
                setattr(m, n_attr, int(_num(row.get("closed_deals")) or 0))
    for row in results["win_rate_segment"]:
        seg = row.get("rep__segment")
        if seg is not None:
            out.segment_win_rate[str(seg)] = (_num(row.get("win_rate")), int(_num(row.get("closed_deals")) or 0))
    weekly: dict[str, dict[dt.date, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for row in results["activities_by_week"]:
        if row.get(REP) is None or row.get(WEEK) is None:
            continue
        out.has_activities = True
        weekly[row[REP]][_day(row[WEEK])][str(row.get(ACTIVITY_TYPE))] = int(_num(row.get("activity_count")) or 0)
    for rep_id, by_week in weekly.items():
        out.rep(rep_id).activities_by_week = {w: dict(t) for w, t in by_week.items()}
    for row in results["created_by_week"]:
        if row.get(REP) is None or row.get(WEEK) is None:
            continue
        out.rep(row[REP]).created_by_week[_day(row[WEEK])] = (
            int(_num(row.get("deals_created")) or 0), _num(row.get("pipeline_created_amount")) or 0.0)
    return out
