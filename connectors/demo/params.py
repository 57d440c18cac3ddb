"""The demo world's parameters: segments, stages, deal shapes, and the planted-risk definitions.

Stage-duration baselines (for ``stalled_in_stage``) come from these parameters
by simulating the same closed-deal process the generator uses, so streaming at
any scale never needs to read generated rows back.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

GENERATOR_VERSION = 2  # 2: loss reasons, rep accountability cases, review history (issues 14, 16, 17)

# (stage, stage_order, is_closed, is_won)
STAGES: tuple[tuple[str, int, bool, bool], ...] = (
    ("Prospecting", 1, False, False),
    ("Qualification", 2, False, False),
    ("Discovery", 3, False, False),
    ("Proposal", 4, False, False),
    ("Negotiation", 5, False, False),
    ("Closed Won", 6, True, True),
    ("Closed Lost", 7, True, False),
)
OPEN_STAGES = tuple(s[0] for s in STAGES[:5])
STAGE_ORDER = {s[0]: s[1] for s in STAGES}
CLOSED_WON, CLOSED_LOST = "Closed Won", "Closed Lost"

SEGMENT_NAMES = ("smb", "mid_market", "enterprise")

# Share of a won deal's cycle spent in each open stage.
STAGE_WEIGHTS = (0.14, 0.18, 0.24, 0.26, 0.18)
STINT_SIGMA = 0.35
# Where lost deals drop out (stage 1..5).
LOST_EXIT_WEIGHTS = (0.22, 0.24, 0.22, 0.18, 0.14)


@dataclass(frozen=True)
class Segment:
    name: str
    amount_range: tuple[int, int]
    cycle_days: float  # median won cycle
    win_rate: float
    closed_per_rep: int  # over the two-year history
    accounts_per_rep: int
    contacts_range: tuple[int, int]
    employees_range: tuple[int, int]
    quarterly_quota: int
    meetings_per_week: float
    calls_per_week: float
    emails_per_week: float
    tasks_per_week: float

    @property
    def stage_medians(self) -> tuple[float, ...]:
        return tuple(self.cycle_days * w for w in STAGE_WEIGHTS)


SEGMENTS: dict[str, Segment] = {
    "smb": Segment("smb", (5_000, 30_000), 40, 0.30, 205, 70, (2, 4), (10, 200), 150_000, 1.2, 1.2, 2.0, 0.4),
    "mid_market": Segment(
        "mid_market", (30_000, 150_000), 75, 0.25, 125, 45, (3, 5), (200, 2_000), 400_000, 1.0, 1.0, 1.8, 0.4
    ),
    "enterprise": Segment(
        "enterprise", (150_000, 1_200_000), 160, 0.20, 58, 24, (4, 6), (2_000, 60_000), 1_000_000, 0.9, 0.8, 1.6, 0.3
    ),
}

REPS_PER_MANAGER = 8
# Within each block of 24 reps (one per scale unit): (segment, index within segment).
INACTIVE_REPS = {("smb", 6), ("enterprise", 7)}
OVERLOADED_REP = ("mid_market", 2)
OPEN_DEALS_RANGE = (19, 33)
OVERLOADED_OPEN_DEALS_RANGE = (56, 60)
HISTORY_DAYS = 730

OPPORTUNITY_RISKS = (
    "stalled_in_stage",
    "no_recent_activity",
    "no_decision_maker",
    "meeting_cadence_drop",
    "close_date_slipped",
    "past_due",
    "amount_swing",
)
REP_RISKS = ("rep_overload",)
# Open deals are planted in a fixed rotation: of every PLANT_CYCLE open deals, slot i < 7 gets risk i.
PLANT_CYCLE = 20
ADVERSARIAL_CYCLE, ADVERSARIAL_SLOT = 120, 17  # slot 17 is never planted (17 % 20 >= 7)

RISK_DEFINITIONS = {
    "stalled_in_stage": {
        "rule": "days in the current stage (as_of - entered_at of the current stage) >= multiplier x p75",
        "multiplier_of_p75": 3.0,
        "baseline": "segment x stage percentiles of completed stage stints of closed deals",
        "healthy": "days in current stage <= segment x stage p50",
    },
    "no_recent_activity": {
        "rule": "last activity between min_days and max_days before as_of",
        "min_days": 21,
        "max_days": 60,
        "healthy_max_days": 6,
    },
    "no_decision_maker": {
        "rule": "stage in stages and no activity of the deal ever linked to a contact with buying_role",
        "stages": ["Proposal", "Negotiation"],
        "buying_role": "decision_maker",
        "healthy": "deals at these stages have a decision_maker-linked activity",
    },
    "meeting_cadence_drop": {
        "rule": (
            "meetings in the baseline window (the baseline_weeks weeks before the last recent_days days) >= "
            "min_meetings_per_week x baseline_weeks, 0 meetings in the last recent_days days, and at least one "
            "call or email in the last calls_emails_within_days days"
        ),
        "baseline_weeks": 8,
        "recent_days": 28,
        "min_meetings_per_week": 1.0,
        "calls_emails_within_days": 7,
        "healthy": "meetings in the last 28 days >= healthy_ratio x (baseline meetings / 8) x 4",
        "healthy_ratio": 0.75,
        "min_deal_age_weeks": 5,
    },
    "close_date_slipped": {
        "rule": "field_history close_date rows with new > old >= min_pushes and close_date >= as_of + min_days_ahead",
        "min_pushes": 2,
        "min_days_ahead": 7,
        "healthy": "no close_date changes at all",
    },
    "past_due": {
        "rule": "open and close_date < as_of",
        "healthy_min_days_ahead": 7,
    },
    "amount_swing": {
        "rule": "an amount change with |new - old| / old >= min_relative_change within the last within_days days",
        "min_relative_change": 0.35,
        "within_days": 30,
        "healthy_quiet_days": 90,
    },
    "rep_overload": {
        "rule": "a rep with >= min_open_deals open deals",
        "min_open_deals": 55,
        "others_max_open_deals": 40,
    },
}


def closed_stints(rng: random.Random, seg: Segment, won: bool) -> list[float]:
    """Stint lengths (days) of a closed deal, one per open stage it passed through.

    Lost deals more often stall (in the stage they drop out of, and earlier),
    so stage-duration signals have lift in a backtest.
    """
    if won:
        k = 5
    else:
        k = rng.choices((1, 2, 3, 4, 5), LOST_EXIT_WEIGHTS)[0]
    meds = seg.stage_medians
    stints = []
    for i in range(k):
        s = meds[i] * rng.lognormvariate(0.0, STINT_SIGMA)
        r = rng.random()
        if won:
            if r < 0.05:
                s *= rng.uniform(1.3, 2.0)
        elif i == k - 1:
            if r < 0.55:
                s *= rng.uniform(1.8, 4.0)
        elif r < 0.15:
            s *= rng.uniform(1.5, 3.0)
        stints.append(s)
    return stints


def quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation quantile (same as numpy's default and DuckDB's quantile_cont)."""
    n = len(sorted_values)
    if n == 0:
        return float("nan")
    pos = (n - 1) * q
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@lru_cache(maxsize=None)
def stage_baselines(samples_per_segment: int = 10_000) -> dict[str, dict[str, dict[str, float]]]:
    """p50/p75 of completed stints of closed deals, per segment x open stage (days), from the parameters."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for seg in SEGMENTS.values():
        rng = random.Random(f"baselines:{seg.name}")
        per_stage: list[list[float]] = [[] for _ in OPEN_STAGES]
        for _ in range(samples_per_segment):
            for i, s in enumerate(closed_stints(rng, seg, rng.random() < seg.win_rate)):
                per_stage[i].append(s)
        out[seg.name] = {}
        for stage, values in zip(OPEN_STAGES, per_stage):
            values.sort()
            out[seg.name][stage] = {"p50": round(quantile(values, 0.5), 3), "p75": round(quantile(values, 0.75), 3)}
    return out
