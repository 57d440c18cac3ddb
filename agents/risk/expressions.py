"""A small, safe expression language for custom risk rules and playbook conditions.

    amount > 500000 and days_since_activity > 7
    stage in ('Proposal', 'Negotiation') and not has_decision_maker

An expression is parsed with Python's ``ast`` module and every node is checked
against a whitelist: boolean operators, comparisons (including chained ones and
``in`` / ``not in`` over a literal tuple or list), arithmetic, unary ``not`` and
minus, numeric / string / boolean / None constants, and names from the deal's
feature set. Attribute access, subscripts, calls, lambdas, comprehensions and
everything else are rejected when the policy is loaded, with the offending
piece of text in the message. Evaluation walks the checked tree itself: nothing
is ever passed to ``eval`` or ``exec``.

A name whose value is unknown for a deal (``None``, e.g. ``days_since_activity``
for a deal with no activity) makes a comparison false rather than raising, so a
custom rule never fires on missing data.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Expression", "ExpressionError", "compile_expression"]

MAX_EXPRESSION_LENGTH = 500
MAX_NODES = 200

_BIN_OPS: dict[type, Any] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_CMP_OPS: dict[type, Any] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_DESCRIBE = {
    ast.Attribute: "attribute access",
    ast.Call: "function calls",
    ast.Subscript: "subscripts",
    ast.Lambda: "lambdas",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.IfExp: "conditional expressions",
    ast.NamedExpr: "assignment expressions",
    ast.Starred: "starred expressions",
    ast.JoinedStr: "f-strings",
    ast.Dict: "dicts",
    ast.Set: "sets",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.Pow: "the power operator",
    ast.BitAnd: "bitwise operators",
    ast.BitOr: "bitwise operators",
    ast.BitXor: "bitwise operators",
    ast.LShift: "bitwise operators",
    ast.RShift: "bitwise operators",
    ast.Invert: "bitwise operators",
    ast.MatMult: "the matrix operator",
    ast.Is: "'is' (use ==)",
    ast.IsNot: "'is not' (use !=)",
}


class ExpressionError(ValueError):
    """An expression is malformed, uses disallowed syntax or an unknown name."""


@dataclass(frozen=True)
class Expression:
    """A checked expression; :meth:`evaluate` runs it over a mapping of feature values."""

    source: str
    names: frozenset[str]
    _tree: ast.Expression

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        return _eval(self._tree.body, values)

    def test(self, values: Mapping[str, Any]) -> bool:
        """The expression's truth for one deal (``None`` counts as false)."""
        return bool(self.evaluate(values))

    def __str__(self) -> str:
        return self.source


def _segment(source: str, node: ast.AST) -> str:
    seg = ast.get_source_segment(source, node)
    return seg if seg is not None else type(node).__name__


def _op_name(op: ast.AST) -> str:
    return _DESCRIBE.get(type(op), f"operator {type(op).__name__}")


def _check(source: str, tree: ast.Expression, allowed_names: frozenset[str]) -> frozenset[str]:
    names: set[str] = set()
    count = 0
    for node in ast.walk(tree.body):
        count += 1
        if count > MAX_NODES:
            raise ExpressionError(f"expression is too complex (more than {MAX_NODES} nodes): {source!r}")
        kind = type(node)
        if kind in _DESCRIBE:
            raise ExpressionError(
                f"{_DESCRIBE[kind]} are not allowed in risk expressions: {_segment(source, node)!r} in {source!r}"
            )
        if isinstance(node, ast.Name):
            if node.id.startswith("_"):
                raise ExpressionError(f"names starting with '_' are not allowed: {node.id!r} in {source!r}")
            if node.id not in allowed_names:
                known = ", ".join(sorted(allowed_names))
                raise ExpressionError(f"unknown name {node.id!r} in {source!r}; known names: {known}")
            names.add(node.id)
        elif isinstance(node, ast.Constant):
            if not (node.value is None or isinstance(node.value, (bool, int, float, str))):
                raise ExpressionError(f"constant {node.value!r} is not allowed in {source!r}")
        elif isinstance(node, ast.Compare):
            if isinstance(node.left, (ast.Tuple, ast.List)):
                raise ExpressionError(f"lists are only allowed after 'in': {_segment(source, node)!r}")
            for op, right in zip(node.ops, node.comparators):
                if not isinstance(op, (ast.In, ast.NotIn)) and isinstance(right, (ast.Tuple, ast.List)):
                    raise ExpressionError(f"lists are only allowed after 'in': {_segment(source, node)!r}")
                if isinstance(op, (ast.In, ast.NotIn)):
                    if not isinstance(right, (ast.Tuple, ast.List)) or not all(
                        isinstance(e, ast.Constant) for e in right.elts
                    ):
                        raise ExpressionError(
                            f"'in' needs a literal list of constants on its right: {_segment(source, node)!r}"
                        )
                elif type(op) not in _CMP_OPS:
                    raise ExpressionError(f"{_op_name(op)} not allowed: {_segment(source, node)!r} in {source!r}")
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _BIN_OPS:
                raise ExpressionError(f"{_op_name(node.op)} not allowed: {_segment(source, node)!r} in {source!r}")
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, (ast.Not, ast.USub, ast.UAdd)):
                raise ExpressionError(f"{_op_name(node.op)} not allowed: {_segment(source, node)!r} in {source!r}")
        elif isinstance(node, (ast.Tuple, ast.List)):
            if not isinstance(node.ctx, ast.Load):
                raise ExpressionError(f"not allowed: {_segment(source, node)!r}")
        elif isinstance(
            node,
            (ast.BoolOp, ast.And, ast.Or, ast.Not, ast.USub, ast.UAdd, ast.Load, ast.In, ast.NotIn),
        ) or type(node) in _CMP_OPS or type(node) in _BIN_OPS:
            pass
        else:
            raise ExpressionError(
                f"{type(node).__name__} is not allowed in risk expressions: {_segment(source, node)!r} in {source!r}"
            )
    # Tuples/lists may only appear as the right-hand side of 'in'.
    for node in ast.walk(tree.body):
        if isinstance(node, ast.Compare):
            continue
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Tuple, ast.List)):
                raise ExpressionError(f"lists are only allowed after 'in': {_segment(source, child)!r} in {source!r}")
    if isinstance(tree.body, (ast.Tuple, ast.List)):
        raise ExpressionError(f"an expression must be a condition, not a list: {source!r}")
    return frozenset(names)


def compile_expression(source: str, allowed_names: Iterable[str]) -> Expression:
    """Parse and check ``source``; raise :class:`ExpressionError` naming what is wrong."""
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError("an expression must be a non-empty string")
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"expression is longer than {MAX_EXPRESSION_LENGTH} characters")
    text = source.strip()
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"cannot parse {text!r}: {exc.msg} (column {exc.offset})") from None
    names = _check(text, tree, frozenset(allowed_names))
    return Expression(source=text, names=names, _tree=tree)


def _eval(node: ast.AST, values: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return values.get(node.id)
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            result: Any = True
            for v in node.values:
                result = _eval(v, values)
                if not result:
                    return result
            return result
        result = False
        for v in node.values:
            result = _eval(v, values)
            if result:
                return result
        return result
    if isinstance(node, ast.UnaryOp):
        operand = _eval(node.operand, values)
        if isinstance(node.op, ast.Not):
            return not operand
        if operand is None:
            return None
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left, values), _eval(node.right, values)
        if left is None or right is None:
            return None
        try:
            return _BIN_OPS[type(node.op)](left, right)
        except ZeroDivisionError:
            return None
        except TypeError as exc:
            raise ExpressionError(f"cannot compute {left!r} and {right!r}: {exc}") from None
    if isinstance(node, ast.Compare):
        left = _eval(node.left, values)
        for op, comp in zip(node.ops, node.comparators):
            if isinstance(op, (ast.In, ast.NotIn)):
                options = [e.value for e in comp.elts]  # type: ignore[attr-defined]
                ok = (left in options) if isinstance(op, ast.In) else (left not in options)
                right = None
            else:
                right = _eval(comp, values)
                if left is None or right is None:
                    # Unknown values never satisfy a comparison (a rule never fires on missing data).
                    return False
                try:
                    ok = _CMP_OPS[type(op)](left, right)
                except TypeError:
                    raise ExpressionError(f"cannot compare {left!r} with {right!r}") from None
            if not ok:
                return False
            left = right
        return True
    raise ExpressionError(f"cannot evaluate {type(node).__name__}")  # unreachable after _check
