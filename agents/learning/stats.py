"""Small statistics with honest uncertainty: lift with a bootstrap interval, proportions with a Wilson interval.

Lift = (share of flagged deals that went bad) / (share of unflagged deals that went bad).
Its interval is a nonparametric bootstrap: resampling the deals with replacement
is the same as drawing the four cell counts (flagged/unflagged x bad/good) from
a multinomial with the observed shares, so it costs O(draws), not O(draws x deals).

The verdict tells "no lift" from "not enough data":

- ``lift``: the whole interval is above 1 (flagged deals really go bad more often);
- ``no lift``: the whole interval is below the floor (default 1.1): enough data, and the rule does not help;
- ``not enough data``: too few flagged or unflagged deals, or an interval too wide to say either.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_DRAWS = 2000
DEFAULT_SEED = 17
MIN_DEALS = 10

LIFT = "lift"
NO_LIFT = "no lift"
NOT_ENOUGH = "not enough data"


@dataclass(frozen=True)
class LiftEstimate:
    flagged: int
    flagged_bad: int
    unflagged: int
    unflagged_bad: int
    lift: float | None
    low: float | None
    high: float | None
    verdict: str

    @property
    def flagged_bad_rate(self) -> float | None:
        return self.flagged_bad / self.flagged if self.flagged else None

    @property
    def unflagged_bad_rate(self) -> float | None:
        return self.unflagged_bad / self.unflagged if self.unflagged else None

    def ci_text(self) -> str:
        if self.low is None or self.high is None:
            return "-"
        return f"{self.low:.2f}-{self.high:.2f}"


def lift_of(flagged: int, flagged_bad: int, unflagged: int, unflagged_bad: int) -> float | None:
    if not flagged or not unflagged or not unflagged_bad:
        return None
    return (flagged_bad / flagged) / (unflagged_bad / unflagged)


def lift_with_ci(
    flagged: int, flagged_bad: int, unflagged: int, unflagged_bad: int, *,
    level: float = 0.95, draws: int = DEFAULT_DRAWS, seed: int = DEFAULT_SEED, floor: float = 1.1,
    min_deals: int = MIN_DEALS,
) -> LiftEstimate:
    """Lift and its bootstrap interval from the four counts (seeded: the same counts give the same interval)."""
    lift = lift_of(flagged, flagged_bad, unflagged, unflagged_bad)
    n = flagged + unflagged
    low = high = None
    if lift is not None and n:
        cells = np.array([flagged_bad, flagged - flagged_bad, unflagged_bad, unflagged - unflagged_bad], dtype=float)
        draw = np.random.default_rng(seed).multinomial(n, cells / n, size=draws)
        f = draw[:, 0] + draw[:, 1]
        u = draw[:, 2] + draw[:, 3]
        ok = (f > 0) & (u > 0) & (draw[:, 2] > 0)
        if ok.sum() >= draws * 0.5:
            lifts = (draw[ok, 0] / f[ok]) / (draw[ok, 2] / u[ok])
            alpha = (1 - level) / 2
            low, high = (float(x) for x in np.quantile(lifts, [alpha, 1 - alpha]))
    verdict = lift_verdict(lift, low, high, flagged, unflagged, floor=floor, min_deals=min_deals)
    return LiftEstimate(flagged, flagged_bad, unflagged, unflagged_bad, lift, low, high, verdict)


def lift_verdict(
    lift: float | None, low: float | None, high: float | None, flagged: int, unflagged: int, *,
    floor: float = 1.1, min_deals: int = MIN_DEALS,
) -> str:
    if lift is None or low is None or high is None or flagged < min_deals or unflagged < min_deals:
        return NOT_ENOUGH
    if low > 1.0:
        return LIFT
    if high < floor:
        return NO_LIFT
    return NOT_ENOUGH


def wilson(successes: int, n: int, level: float = 0.95) -> tuple[float | None, float | None]:
    """The Wilson score interval of a proportion (None, None for n = 0)."""
    if n <= 0:
        return None, None
    from scipy.stats import binomtest

    ci = binomtest(successes, n).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)
