"""Governed baselines for the risk rules, read from the semantic layer, point in time.

Every number a rule compares with comes from a MetricFlow query over the
semantic models (owned by analytics engineers), filtered to what was known at
the as-of date: ``metric_time <= as_of`` (stage metrics are timed by the stint's
exit, deal outcomes by the close). A lookup returns a
:class:`agents.risk.models.Baseline` carrying the query id that produced it,
the slice it describes and the sample size behind it.

Data sufficiency: a slice whose sample is below ``min_closed_deals`` falls back
to a broader slice (segment x stage -> stage across segments -> all stints for
rates; segment -> all deals for outcomes), says so in ``Baseline.fallback``,
and lowers the confidence the engine gives the flag by ``fallback_confidence``
per level. A slice with no data at all gives a baseline whose value is None
(the rule then reports "not applicable" for that deal).

Plain Python; the query results (:class:`SemanticQueryResult`) are kept in
:attr:`BaselineSet.results` so the caller can store their provenance.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agents.risk.models import Baseline
from agents.semantic_layer import SemanticQueryResult

if TYPE_CHECKING:
    from agents.semantic_layer import SemanticLayer

__all__ = ["BaselineSet", "fetch_baselines", "time_filter", "SEGMENT_DIM", "STAGE_DIM"]

SEGMENT_DIM = "opportunity__segment"
STAGE_DIM = "stage_stint__stage"
STAGE_METRICS = (
    "stage_duration_p50",
    "stage_duration_p75",
    "completed_stints",
    "meetings_per_week",
    "activities_per_week",
)
OUTCOME_METRICS = ("win_rate", "closed_deals", "won_deals", "cycle_length_p50", "cycle_length_p75")
# Which count is the sample size behind each metric.
SAMPLE_OF = {
    "stage_duration_p50": "completed_stints",
    "stage_duration_p75": "completed_stints",
    "meetings_per_week": "completed_stints",
    "activities_per_week": "completed_stints",
    "win_rate": "closed_deals",
    "cycle_length_p50": "won_deals",
    "cycle_length_p75": "won_deals",
}
STAGE_LEVEL = {"stage_duration_p50", "stage_duration_p75", "meetings_per_week", "activities_per_week"}
# Durations mean nothing pooled over stages; rates and outcomes do.
NO_ALL_LEVEL = {"stage_duration_p50", "stage_duration_p75"}


def time_filter(as_of: dt.date) -> str:
    """The MetricFlow filter that keeps a baseline to what was known at the end of ``as_of``."""
    return "{{ TimeDimension('metric_time', 'day') }} <= '" + as_of.isoformat() + "'"


def _num(v: Any) -> float | None:
    if v is None:
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


@dataclass
class BaselineSet:
    """The answers of the baseline queries for one as-of date, with fallback lookups."""

    stage_by_segment: SemanticQueryResult
    stage_all_segments: SemanticQueryResult
    stints_all: SemanticQueryResult
    outcomes_by_segment: SemanticQueryResult
    outcomes_all: SemanticQueryResult
    as_of: dt.date | None = None
    min_sample: int = 20
    fallback_confidence: float = 0.7
    _confidence: dict[tuple, float] = field(default_factory=dict, repr=False)
    _cache: dict[tuple, Baseline] = field(default_factory=dict, repr=False)

    @property
    def results(self) -> list[SemanticQueryResult]:
        return [self.stage_by_segment, self.stage_all_segments, self.stints_all, self.outcomes_by_segment, self.outcomes_all]

    @property
    def query_ids(self) -> list[str]:
        return [r.query_id for r in self.results]

    # -- lookups ----------------------------------------------------------------------

    def stage_duration(self, segment: str | None, stage: str | None, percentile: str = "p75") -> Baseline:
        return self.lookup(f"stage_duration_{percentile}", segment=segment, stage=stage)

    def meetings_per_week(self, segment: str | None, stage: str | None) -> Baseline:
        return self.lookup("meetings_per_week", segment=segment, stage=stage)

    def activities_per_week(self, segment: str | None, stage: str | None) -> Baseline:
        return self.lookup("activities_per_week", segment=segment, stage=stage)

    def cycle_length(self, segment: str | None, percentile: str = "p75") -> Baseline:
        return self.lookup(f"cycle_length_{percentile}", segment=segment)

    def win_rate(self, segment: str | None) -> Baseline:
        return self.lookup("win_rate", segment=segment)

    def confidence(self, baseline: Baseline) -> float:
        """The confidence factor (1.0, lowered per fallback level) of a baseline this set returned."""
        return self._confidence.get(self._key(baseline), 1.0)

    @staticmethod
    def _key(b: Baseline) -> tuple:
        # The fallback text is part of the key: the same slice reached directly or as a fallback
        # (e.g. all deals for a deal without a segment, and for a segment with too few closed deals)
        # has different confidences, and a flag's must not depend on which deal was looked up last.
        return (b.metric, b.semantic_query_id, tuple(sorted(b.slice.items())), b.fallback)

    def _candidates(self, metric: str, segment: str | None, stage: str | None) -> list[tuple[SemanticQueryResult, dict[str, Any], dict[str, str]]]:
        """(result, match, slice) from the narrowest slice to the broadest."""
        out = []
        if metric in STAGE_LEVEL:
            if segment is not None and stage is not None:
                out.append((self.stage_by_segment, {SEGMENT_DIM: segment, STAGE_DIM: stage}, {"segment": segment, "stage": stage}))
            if stage is not None:
                out.append((self.stage_all_segments, {STAGE_DIM: stage}, {"stage": stage}))
            if metric not in NO_ALL_LEVEL:
                out.append((self.stints_all, {}, {}))
        else:
            if segment is not None:
                out.append((self.outcomes_by_segment, {SEGMENT_DIM: segment}, {"segment": segment}))
            out.append((self.outcomes_all, {}, {}))
        return out

    def lookup(self, metric: str, *, segment: str | None = None, stage: str | None = None) -> Baseline:
        """The baseline of ``metric`` for a segment (x stage), with fallback to broader slices."""
        key = (metric, segment, stage)
        if key in self._cache:
            return self._cache[key]
        sample_metric = SAMPLE_OF[metric]
        candidates = self._candidates(metric, segment, stage)
        if not candidates:
            raise ValueError(f"no slice to look {metric} up in (segment={segment!r}, stage={stage!r})")
        tried: list[str] = []
        chosen = None
        usable = None  # the broadest slice with a value, if none is large enough
        for level, (result, match, slc) in enumerate(candidates):
            row = result.find(**match) if match else (result.rows[0] if result.rows else None)
            value = _num(row.get(metric)) if row else None
            n = int(_num(row.get(sample_metric)) or 0) if row else 0
            label = _slice_label(slc)
            if value is not None and n >= self.min_sample:
                chosen = (level, result, slc, value, n, False)
                break
            tried.append(f"{label} has {n} {_sample_noun(sample_metric)} (< {self.min_sample})")
            if value is not None:
                usable = (level, result, slc, value, n, True)
        if chosen is None and usable is not None:
            chosen = usable
        if chosen is None:
            result, _, slc = candidates[0]
            baseline = Baseline(
                metric=metric, value=None, slice=slc, sample_size=0,
                semantic_query_id=result.query_id, fallback="no data in any slice: " + "; ".join(tried),
            )
            self._confidence[self._key(baseline)] = 0.0
            self._cache[key] = baseline
            return baseline
        level, result, slc, value, n, insufficient = chosen
        fallback = None
        penalty_levels = level + (1 if insufficient else 0)
        if level > 0 or insufficient:
            fallback = "; ".join(tried)
            fallback += f"; used {_slice_label(slc)}" + (" (still a small sample)" if insufficient else "")
        baseline = Baseline(
            metric=metric, value=value, slice=slc, sample_size=n,
            semantic_query_id=result.query_id, fallback=fallback,
        )
        self._confidence[self._key(baseline)] = self.fallback_confidence ** penalty_levels
        self._cache[key] = baseline
        return baseline


def _slice_label(slc: dict[str, str]) -> str:
    if not slc:
        return "all deals"
    return " x ".join(f"{k} {v}" for k, v in slc.items())


def _sample_noun(sample_metric: str) -> str:
    return {"completed_stints": "completed stints", "closed_deals": "closed deals", "won_deals": "won deals"}[sample_metric]


def fetch_baselines(
    layer: SemanticLayer,
    as_of: dt.date,
    *,
    min_closed_deals: int = 20,
    fallback_confidence: float = 0.7,
) -> BaselineSet:
    """Run the baseline queries (five MetricFlow queries) as of ``as_of``."""
    where: Sequence[str] = [time_filter(as_of)]
    return BaselineSet(
        stage_by_segment=layer.query(list(STAGE_METRICS), [SEGMENT_DIM, STAGE_DIM], where=where),
        stage_all_segments=layer.query(list(STAGE_METRICS), [STAGE_DIM], where=where),
        stints_all=layer.query(list(STAGE_METRICS), [], where=where),
        outcomes_by_segment=layer.query(list(OUTCOME_METRICS), [SEGMENT_DIM], where=where),
        outcomes_all=layer.query(list(OUTCOME_METRICS), [], where=where),
        as_of=as_of,
        min_sample=min_closed_deals,
        fallback_confidence=fallback_confidence,
    )
