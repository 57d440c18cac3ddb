"""The custom-rule expression language: a whitelist over Python's ast, never eval."""

from __future__ import annotations

import pytest

from agents.risk.expressions import ExpressionError, compile_expression
from agents.risk.features import FEATURE_NAMES

NAMES = set(FEATURE_NAMES)


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("amount > 500000 and days_since_activity > 7", {"amount": 600000, "days_since_activity": 9}, True),
        ("amount > 500000 and days_since_activity > 7", {"amount": 600000, "days_since_activity": 3}, False),
        ("amount > 500000 and days_since_activity > 7", {"amount": 600000, "days_since_activity": None}, False),
        ("stage in ('Proposal', 'Negotiation') and not has_decision_maker", {"stage": "Proposal", "has_decision_maker": False}, True),
        ("stage not in ['Proposal']", {"stage": "Discovery"}, True),
        ("amount * 0.2 >= 1000 or segment == 'enterprise'", {"amount": 1000, "segment": "enterprise"}, True),
        ("10 <= days_in_stage < 20", {"days_in_stage": 15}, True),
        ("10 <= days_in_stage < 20", {"days_in_stage": 25}, False),
        ("-days_to_close > 5", {"days_to_close": -9}, True),
        ("is_past_due == True", {"is_past_due": True}, True),
        ("(amount - 100) / 0 > 1", {"amount": 5}, False),  # division by zero is unknown, not an error
    ],
)
def test_allowed_expressions_evaluate(source, values, expected):
    assert compile_expression(source, NAMES).test(values) is expected


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("__import__('os')", "function calls"),
        ("__import__", "names starting with '_'"),
        ("amount.__class__", "attribute access"),
        ("open('/etc/passwd')", "function calls"),
        ("len(stage) > 3", "function calls"),
        ("stage[0] == 'P'", "subscripts"),
        ("[x for x in stage]", "comprehensions"),
        ("lambda: 1", "lambdas"),
        ("amount if stage else 0", "conditional"),
        ("amount ** 2 > 1", "power"),
        ("amount | 1", "bitwise"),
        ("stage is None", "'is'"),
        ("f'{amount}' == '1'", "f-strings"),
        ("revenue > 5", "unknown name 'revenue'"),
        ("amount >", "cannot parse"),
        ("amount > 1; import os", "cannot parse"),
        ("stage in segment", "literal list"),
        ("(amount := 5)", "assignment"),
        ("", "non-empty"),
    ],
)
def test_rejected_expressions_name_the_problem(source, fragment):
    with pytest.raises(ExpressionError) as err:
        compile_expression(source, NAMES)
    assert fragment in str(err.value)


def test_evaluation_never_uses_eval(monkeypatch):
    import builtins

    def boom(*a, **k):  # pragma: no cover - must not be called
        raise AssertionError("eval/exec must not be used")

    monkeypatch.setattr(builtins, "eval", boom)
    monkeypatch.setattr(builtins, "exec", boom)
    expr = compile_expression("amount > 1 and stage == 'Proposal'", NAMES)
    assert expr.test({"amount": 2, "stage": "Proposal"})
    assert expr.names == {"amount", "stage"}
