"""The rule lab: judge a rule or a threshold on a labelled outcome table, no dates needed.

The table has one row per closed deal, feature columns, and an outcome column
(won/lost, or a boolean). The rule is an expression in the same language as
custom rules (:mod:`agents.risk.expressions`), over the table's columns: either
given directly or read from a custom rule of the policy. Reported:

- share flagged, loss rate flagged vs unflagged, lift with a bootstrap interval
  and a verdict (lift / no lift / not enough data, see :mod:`agents.learning.stats`);
- a threshold sweep: the rule's feature at the p50, p55, ... p95 of the *won*
  deals, each threshold judged the same way, and the best lift among thresholds
  that flag at least ``min_flagged`` deals.

A rule that is one comparison (``days_in_stage > 40``) is swept on its own
feature and operator; any other rule can name a feature to sweep (``sweep=``),
which is then swept as ``feature > threshold``.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from agents.learning.stats import MIN_DEALS, LiftEstimate, lift_with_ci
from agents.risk.expressions import Expression, ExpressionError, compile_expression

__all__ = ["LabError", "RuleLabReport", "SweepRow", "load_labelled_table", "outcome_is_lost", "run_rule_lab"]

LOST_WORDS = ("lost", "closed lost", "closed_lost", "loss", "churned")
WON_WORDS = ("won", "closed won", "closed_won", "win")
SWEEP_PERCENTILES = tuple(range(50, 100, 5))  # p50 .. p95


class LabError(ValueError):
    """The table, the outcome column or the rule cannot be used; the message says why and what would work."""


@dataclass(frozen=True)
class SweepRow:
    percentile: int
    threshold: float
    expression: str
    share_flagged: float
    estimate: LiftEstimate


@dataclass
class RuleLabReport:
    expression: str
    rows: int
    excluded_rows: int  # outcome neither won nor lost (open deals, blanks)
    lost_rows: int
    estimate: LiftEstimate
    share_flagged: float
    sweep_feature: str | None = None
    sweep_operator: str | None = None
    sweep: list[SweepRow] = field(default_factory=list)
    best: SweepRow | None = None
    outcome_note: str = ""

    def table(self) -> str:
        e = self.estimate
        pct = lambda x: "-" if x is None else f"{x:.1%}"  # noqa: E731
        lines = [
            f"Rule: {self.expression}",
            f"Deals: {self.rows} closed ({self.lost_rows} lost); {self.excluded_rows} rows skipped (outcome not won/lost). "
            f"{self.outcome_note}",
            f"Flagged: {e.flagged} of {self.rows} ({self.share_flagged:.1%})",
            f"Loss rate flagged {pct(e.flagged_bad_rate)} vs unflagged {pct(e.unflagged_bad_rate)}",
            f"Lift {'-' if e.lift is None else f'{e.lift:.2f}'} (95% CI {e.ci_text()}): {e.verdict}",
        ]
        if self.sweep:
            lines += ["", f"Threshold sweep: {self.sweep_feature} {self.sweep_operator} t, t = percentiles of won deals",
                      f"{'pct':>4s} {'threshold':>10s} {'flagged':>8s} {'share':>6s} {'loss% fl':>8s} {'loss% un':>8s} "
                      f"{'lift':>5s} {'95% CI':>11s}  verdict"]
            for s in self.sweep:
                e2 = s.estimate
                lines.append(
                    f"p{s.percentile:<3d} {s.threshold:10.4g} {e2.flagged:8d} {s.share_flagged:6.1%} "
                    f"{pct(e2.flagged_bad_rate):>8s} {pct(e2.unflagged_bad_rate):>8s} "
                    f"{'-' if e2.lift is None else f'{e2.lift:.2f}':>5s} {e2.ci_text():>11s}  {e2.verdict}"
                )
            if self.best is not None:
                lines.append(f"Best lift: {self.best.expression} (p{self.best.percentile} of won deals): "
                             f"lift {self.best.estimate.lift:.2f} (95% CI {self.best.estimate.ci_text()})")
            else:
                lines.append("Best lift: none (no threshold flags enough deals with a measurable lift)")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        def est(e: LiftEstimate) -> dict[str, Any]:
            return {"flagged": e.flagged, "flagged_lost": e.flagged_bad, "unflagged": e.unflagged,
                    "unflagged_lost": e.unflagged_bad, "lift": e.lift, "ci_low": e.low, "ci_high": e.high,
                    "verdict": e.verdict}

        return {
            "expression": self.expression, "rows": self.rows, "excluded_rows": self.excluded_rows,
            "share_flagged": self.share_flagged, **est(self.estimate),
            "sweep": [{"percentile": s.percentile, "threshold": s.threshold, "expression": s.expression,
                       "share_flagged": s.share_flagged, **est(s.estimate)} for s in self.sweep],
            "best": None if self.best is None else self.best.expression,
        }


def load_labelled_table(csv: str | Path | None = None, *, table: str | None = None, warehouse: Any = None) -> pd.DataFrame:
    """A CSV file, or a table of the warehouse (read-only), as a DataFrame."""
    if (csv is None) == (table is None):
        raise LabError("give a CSV file or a warehouse table (one of them)")
    if csv is not None:
        try:
            return pd.read_csv(csv)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise LabError(f"cannot read {csv}: {exc}") from None
    from agents.warehouse import Warehouse, WarehouseError

    wh = Warehouse.coerce(warehouse) if warehouse is not None else None
    if wh is None or not wh.exists():
        raise LabError(f"no warehouse ({wh.label if wh else 'none configured'}): run the pipeline first, or give a CSV")
    parts = table.split(".")
    if len(parts) != 2 or not all(part.replace("_", "").isalnum() for part in parts):
        raise LabError(f"{table!r} is not a table name (schema.table)")
    with wh.connect(read_only=True) as con:
        if not con.has_table(*parts):
            raise LabError(f"no table {table} in the {wh.label}")
        try:
            return con.execute(f"select * from {wh.table(*parts)}").fetch_df()
        except WarehouseError as exc:
            raise LabError(f"cannot read the warehouse table {table}: {str(exc).splitlines()[0]}") from None


def outcome_is_lost(values: pd.Series, column: str) -> tuple[pd.Series, str]:
    """Per row: True (lost), False (won) or NA (neither), and a sentence saying how the column was read."""
    s = values
    if pd.api.types.is_bool_dtype(s) or (pd.api.types.is_numeric_dtype(s) and set(s.dropna().unique()) <= {0, 1}):
        positive_is_won = "won" in column.lower() or "win" in column.lower()
        as_bool = s.map(lambda v: None if pd.isna(v) else bool(v))
        lost = as_bool.map(lambda v: None if v is None else (not v if positive_is_won else v))
        return lost, f"Outcome column {column!r} read as {'1/true = won' if positive_is_won else '1/true = lost'}."
    text = s.astype("string").str.strip().str.lower()
    lost = pd.Series([None] * len(s), index=s.index, dtype="object")
    lost[text.isin(LOST_WORDS)] = True
    lost[text.isin(WON_WORDS)] = False
    if lost.notna().sum() == 0:
        sample = ", ".join(repr(v) for v in s.dropna().astype(str).unique()[:5])
        raise LabError(f"outcome column {column!r} has no won/lost values (saw {sample}); "
                       f"expected one of {', '.join(WON_WORDS + LOST_WORDS)} or a 0/1 column")
    return lost, f"Outcome column {column!r}: 'won'/'lost' values."


def _simple_comparison(expr: str) -> tuple[str, str] | None:
    """(feature, operator) when the rule is one `name <op> number` comparison."""
    try:
        node = ast.parse(expr.strip(), mode="eval").body
    except SyntaxError:
        return None
    ops = {ast.Gt: ">", ast.GtE: ">=", ast.Lt: "<", ast.LtE: "<="}
    if (isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in ops
            and isinstance(node.left, ast.Name) and isinstance(node.comparators[0], (ast.Constant, ast.UnaryOp))):
        return node.left.id, ops[type(node.ops[0])]
    return None


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    # Unknown is not false: NaN becomes None, which the expression language treats as "no match".
    clean = df.astype(object).where(df.notna(), None)
    return clean.to_dict("records")


def _flags(expression: Expression, records: list[dict[str, Any]]) -> pd.Series:
    return pd.Series([expression.test(r) for r in records], dtype=bool)


def run_rule_lab(
    df: pd.DataFrame, expression: str, *, outcome: str = "outcome", sweep: str | None = None,
    min_flagged: int = MIN_DEALS, floor: float = 1.1, seed: int = 17,
) -> RuleLabReport:
    if outcome not in df.columns:
        raise LabError(f"no outcome column {outcome!r}; the table has: {', '.join(map(str, df.columns))}")
    features = [c for c in df.columns if c != outcome]
    try:
        compiled = compile_expression(expression, features)
    except ExpressionError as exc:
        raise LabError(f"{exc} (the table's columns: {', '.join(map(str, features))})") from None
    lost, note = outcome_is_lost(df[outcome], outcome)
    known = lost.notna()
    if "is_closed" in df.columns and outcome != "is_closed":
        # A marts-like table holds open deals too: only closed ones have an outcome.
        closed = df["is_closed"].map(lambda v: str(v).strip().lower() in ("true", "1", "yes", "t"))
        note += f" Rows with is_closed false skipped ({int((known & ~closed).sum())})."
        known &= closed
    data = df[known].reset_index(drop=True)
    y = lost[known].astype(bool).reset_index(drop=True)
    records = _records(data[features])
    flagged = _flags(compiled, records)

    def estimate(f: pd.Series) -> LiftEstimate:
        nf = int(f.sum())
        return lift_with_ci(nf, int((f & y).sum()), int(len(f) - nf), int((~f & y).sum()),
                            floor=floor, min_deals=min_flagged, seed=seed)

    n = len(data)
    report = RuleLabReport(
        expression=expression, rows=n, excluded_rows=int((~known).sum()), lost_rows=int(y.sum()),
        estimate=estimate(flagged), share_flagged=float(flagged.mean()) if n else 0.0, outcome_note=note,
    )
    if sweep is not None:
        if sweep not in features:
            raise LabError(f"cannot sweep {sweep!r}: no such column")
        feature, op = sweep, ">"
    else:
        simple = _simple_comparison(expression)
        feature, op = simple if simple else (None, None)
    if feature is not None:
        values = pd.to_numeric(data[feature], errors="coerce")
        won_values = values[~y].dropna()
        if len(won_values):
            report.sweep_feature, report.sweep_operator = feature, op
            seen: set[float] = set()
            for p in SWEEP_PERCENTILES:
                t = float(won_values.quantile(p / 100))
                if t in seen or math.isnan(t):
                    continue
                seen.add(t)
                text = f"{feature} {op} {t:.6g}"
                sweep_expr = compile_expression(text, features)
                f = _flags(sweep_expr, records)
                report.sweep.append(SweepRow(p, t, text, float(f.mean()) if n else 0.0, estimate(f)))
            candidates = [s for s in report.sweep if s.estimate.lift is not None and s.estimate.flagged >= min_flagged]
            report.best = max(candidates, key=lambda s: s.estimate.lift, default=None)
    return report
