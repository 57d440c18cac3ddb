"""Business-day arithmetic for the ledger's KPIs and gates (Monday to Friday; no holiday calendar)."""

from __future__ import annotations

import datetime as dt


def is_business_day(day: dt.date) -> bool:
    return day.weekday() < 5


def business_days_between(start: dt.date, end: dt.date) -> int:
    """Business days after ``start`` up to and including ``end``: same day -> 0, Friday -> Monday -> 1."""
    if end <= start:
        return 0
    full_weeks, rest = divmod((end - start).days, 7)
    count = full_weeks * 5
    day = start + dt.timedelta(days=full_weeks * 7)
    for _ in range(rest):
        day += dt.timedelta(days=1)
        count += is_business_day(day)
    return count


def window_start(as_of: dt.date, business_days: int) -> dt.date:
    """First day of the window of the last ``business_days`` business days ending on ``as_of``.

    ``as_of`` counts when it is a business day; on a weekend the window is the
    ``business_days`` business days before it.
    """
    if business_days < 1:
        raise ValueError("a window needs at least one business day")
    day = as_of
    remaining = business_days
    while True:
        if is_business_day(day):
            remaining -= 1
            if remaining == 0:
                return day
        day -= dt.timedelta(days=1)
