"""One value parser for every source: the same types, the same reasons for quarantine."""

from __future__ import annotations

import datetime as dt

import pytest

from connectors.schema import RAW_OBJECTS
from connectors.values import ValueProblem, parse_value, stage_lookup

OPP = RAW_OBJECTS["opportunities"]
ISO = {"parse_date": dt.date.fromisoformat, "parse_timestamp": dt.datetime.fromisoformat}


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("opportunity_id", 12345.0, "12345"),  # an API's numeric id keeps the CRM's spelling
        ("amount", "1500.50", 1500.5),
        ("amount", 0, 0.0),
        ("is_won", "TRUE", True),
        ("is_closed", False, False),
        ("stage", "closed won", "Closed Won"),  # matched ignoring case, returned as declared
        ("next_step", {"text": "call"}, '{"text": "call"}'),
        ("close_date", "2026-11-30", dt.date(2026, 11, 30)),
        ("account_id", "  ", None),
    ],
)
def test_values_are_typed_the_canonical_way(field, value, expected):
    stages = stage_lookup(["Prospecting", "Closed Won"])
    assert parse_value(OPP.field(field), value, stages=stages, **ISO) == expected


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("opportunity_id", "", "missing required value"),
        ("opportunity_id", True, "not an id"),
        ("amount", -1, "negative amount: -1"),
        ("amount", "lots", "not a number: 'lots'"),
        ("amount", float("inf"), "not a finite number"),
        ("is_won", "maybe", "not a boolean: 'maybe'"),
        ("stage", "Limbo", "unknown stage 'Limbo' (known: Closed Won, Prospecting)"),
    ],
)
def test_unusable_values_say_why(field, value, reason):
    with pytest.raises(ValueProblem, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse_value(OPP.field(field), value, stages=stage_lookup(["Prospecting", "Closed Won"]), **ISO)
