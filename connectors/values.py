"""Typing and validating one field value, the same way for every source.

Every source (CSV files, the CRM APIs) maps its records into the canonical fields of
connectors/schema.py and calls :func:`parse_value` per field, so a value that is unusable
(missing id, unparseable date, negative amount, unknown stage, ...) is quarantined with the
same wording whatever the CRM. Only how dates and timestamps are written differs by source,
so those parsers are passed in.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from connectors.schema import AMOUNT, BOOL, DATE, ID, INT, STAGE, STR, TIMESTAMP, Field

TRUE_VALUES = frozenset({"true", "1", "yes", "y", "t"})
FALSE_VALUES = frozenset({"false", "0", "no", "n", "f"})


class ValueProblem(ValueError):
    """Why a value cannot be used; becomes the reason of a quarantined row."""


@dataclass(frozen=True)
class PlausibleBounds:
    """The window a date or timestamp must fall in and the ceiling an amount must stay under.

    Built from a source's ``plausibility`` settings (connectors/mapping.py ``Plausibility``) and
    the as-of date: CSV files and every CRM connector quarantine the same values with the same
    wording (a 1900 placeholder date, a close date in 2099, an amount typed in cents).
    """

    min_date: dt.date
    max_date: dt.date
    max_amount: float

    @classmethod
    def window(
        cls, min_date: dt.date, max_years_ahead: int, max_amount: float, as_of: dt.date | None = None
    ) -> PlausibleBounds:
        as_of = as_of or dt.date.today()
        year = as_of.year + max_years_ahead
        latest = dt.date(year, 2, 28) if (as_of.month, as_of.day) == (2, 29) else as_of.replace(year=year)
        return cls(min_date=min_date, max_date=latest, max_amount=max_amount)

    def check(self, f: Field, typed: Any, raw: Any) -> Any:
        """``typed`` when plausible, else ValueProblem in the words CSV quarantine uses."""
        if typed is None:
            return typed
        if f.type == AMOUNT and typed > self.max_amount:
            raise ValueProblem(f"amount above the ceiling of {self.max_amount:,.0f} (plausibility.max_amount): {raw}")
        if f.type in (DATE, TIMESTAMP):
            day = typed.date() if isinstance(typed, dt.datetime) else typed
            if day < self.min_date or day > self.max_date:
                kind = "date" if f.type == DATE else "timestamp"
                raise ValueProblem(
                    f"{kind} outside the plausible window {self.min_date.isoformat()} to "
                    f"{self.max_date.isoformat()} (plausibility): {raw}"
                )
        return typed


def stage_lookup(stage_names: Collection[str] | None) -> dict[str, str] | None:
    """Lower-cased stage name -> the name as declared (None: any stage accepted)."""
    return None if stage_names is None else {s.lower(): s for s in stage_names}


def parse_value(
    f: Field,
    value: Any,
    *,
    parse_date: Callable[[Any], dt.date],
    parse_timestamp: Callable[[Any], dt.datetime],
    stages: Mapping[str, str] | None = None,
    true_values: Collection[str] = TRUE_VALUES,
    false_values: Collection[str] = FALSE_VALUES,
    bounds: PlausibleBounds | None = None,
) -> Any:
    """The typed value of one canonical field, or ValueProblem saying why it cannot be used.

    ``stages``: from :func:`stage_lookup`; a stage matches exactly or ignoring case and is
    returned as declared. ``bounds``: dates, timestamps and amounts outside them are refused.
    """
    typed = _parse_value(f, value, parse_date, parse_timestamp, stages, true_values, false_values)
    return bounds.check(f, typed, value) if bounds is not None else typed


def _parse_value(
    f: Field,
    value: Any,
    parse_date: Callable[[Any], dt.date],
    parse_timestamp: Callable[[Any], dt.datetime],
    stages: Mapping[str, str] | None,
    true_values: Collection[str],
    false_values: Collection[str],
) -> Any:
    if isinstance(value, str):
        value = value.strip()
    if value is None or value == "":
        if f.required:
            raise ValueProblem("missing required value")
        return None
    if f.type == ID:
        if isinstance(value, (bool, dict, list)):
            raise ValueProblem(f"not an id: {value!r}")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return str(value)
    if f.type == STR:
        if isinstance(value, (dict, list)):
            return json.dumps(value, default=str)
        return value if isinstance(value, str) else str(value)
    if f.type == INT:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueProblem(f"not a whole number: {value!r}") from None
        if not math.isfinite(number) or number != int(number):
            raise ValueProblem(f"not a whole number: {value!r}")
        return int(number)
    if f.type == AMOUNT:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueProblem(f"not a number: {value!r}") from None
        if not math.isfinite(number):
            raise ValueProblem(f"not a finite number: {value!r}")
        if number < 0:
            raise ValueProblem(f"negative amount: {value}")
        return number
    if f.type == BOOL:
        if isinstance(value, bool):
            return value
        low = str(value).lower()
        if low in true_values:
            return True
        if low in false_values:
            return False
        raise ValueProblem(f"not a boolean: {value!r}")
    if f.type == DATE:
        return parse_date(value)
    if f.type == TIMESTAMP:
        return parse_timestamp(value)
    if f.type == STAGE:
        name = str(value)
        if stages is None:
            return name
        canonical = stages.get(name.lower())
        if canonical is None:
            known = ", ".join(sorted(set(stages.values())))
            raise ValueProblem(f"unknown stage {name!r} (known: {known})")
        return canonical
    raise AssertionError(f"unhandled field type {f.type}")
