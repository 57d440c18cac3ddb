"""A question's query plan: governed metrics, group-bys and structured filters, never SQL.

Filters are data (dimension, operator, values), rendered here into MetricFlow
filter templates with quoted literals, so neither a parsed phrase nor a model's
tool call can put SQL of its own into a query: a name must be one the catalog
lists for the metrics asked, an operator one of a fixed set, and a value a
literal.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agents.ask.catalog import NAME_RE, Catalog, time_grains

Operator = Literal["=", "!=", "<", "<=", ">", ">=", "in", "not in"]
Scalar = str | int | float | bool


class PlanError(ValueError):
    """The plan names something the semantic layer does not govern (or is malformed)."""


class Filter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dimension: str = Field(description="A group-by name from list_dimensions (e.g. opportunity__segment, metric_time).")
    op: Operator = "="
    values: tuple[Scalar, ...] = Field(min_length=1, max_length=50)

    @field_validator("dimension")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(f"not a dimension name: {v!r}")
        return v

    def describe(self) -> str:
        vals = ", ".join(str(v) for v in self.values)
        return f"{self.dimension} {self.op} {vals}"


class QueryPlan(BaseModel):
    """One MetricFlow query (or a saved query by name) and, for people, what it means."""

    model_config = ConfigDict(extra="forbid")

    metrics: tuple[str, ...] = ()
    group_by: tuple[str, ...] = ()
    filters: tuple[Filter, ...] = ()
    order_by: tuple[str, ...] = ()
    limit: int | None = Field(default=None, ge=1, le=1000)
    saved_query: str | None = None
    interpretation: str = ""

    def validate_against(self, catalog: Catalog) -> None:
        """Raise PlanError unless every name is governed and admitted by the metrics asked."""
        if self.saved_query:
            if self.saved_query not in catalog.saved_queries:
                raise PlanError(f"no saved query named {self.saved_query!r}; known: {', '.join(sorted(catalog.saved_queries))}")
            return
        if not self.metrics:
            raise PlanError("a query needs at least one governed metric")
        unknown = [m for m in self.metrics if m not in catalog.metrics]
        if unknown:
            raise PlanError(f"not a governed metric: {', '.join(unknown)}")
        allowed = catalog.group_bys(self.metrics)
        for g in self.group_by:
            if _base(g) not in allowed:
                raise PlanError(f"{g!r} is not a dimension of {', '.join(self.metrics)}")
            if "__" in g and g.rsplit("__", 1)[1] in time_grains() and allowed[_base(g)].kind != "time":
                raise PlanError(f"{g!r}: only time dimensions take a grain")
        for f in self.filters:
            if f.dimension not in allowed:
                raise PlanError(f"{f.dimension!r} is not a dimension of {', '.join(self.metrics)}")
        for o in self.order_by:
            name = o.lstrip("-")
            if name not in self.metrics and name not in self.group_by:
                raise PlanError(f"order by {name!r}: order only by a metric or group-by of the query")

    def where(self, catalog: Catalog) -> list[str]:
        """The MetricFlow filter templates (after validate_against)."""
        allowed = catalog.group_bys(self.metrics) if self.metrics else {}
        return [render_filter(f, allowed[f.dimension].kind if f.dimension in allowed else "categorical") for f in self.filters]

    def describe(self) -> str:
        if self.saved_query:
            return f"saved query {self.saved_query}"
        parts = [", ".join(self.metrics)]
        if self.group_by:
            parts.append("by " + ", ".join(self.group_by))
        if self.filters:
            parts.append("where " + " and ".join(f.describe() for f in self.filters))
        if self.order_by:
            parts.append("ordered by " + ", ".join(self.order_by))
        if self.limit:
            parts.append(f"limit {self.limit}")
        return " ".join(parts)


def _base(name: str) -> str:
    head, _, tail = name.rpartition("__")
    return head if head and tail in time_grains() else name


def _literal(value: Scalar, kind: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)) and kind != "time":
        return repr(value)
    text = str(value)
    if kind == "time":
        try:
            dt.date.fromisoformat(text[:10])
        except ValueError:
            raise PlanError(f"a time filter takes a date like 2026-07-01, got {text!r}") from None
        text = text[:10]
    return "'" + text.replace("'", "''") + "'"


def render_filter(f: Filter, kind: str) -> str:
    if kind == "time":
        ref = f"{{{{ TimeDimension('{f.dimension}', 'day') }}}}"
    elif kind == "entity":
        ref = f"{{{{ Entity('{f.dimension}') }}}}"
    else:
        ref = f"{{{{ Dimension('{f.dimension}') }}}}"
    if f.op in ("in", "not in"):
        return f"{ref} {f.op.upper()} (" + ", ".join(_literal(v, kind) for v in f.values) + ")"
    if len(f.values) != 1:
        raise PlanError(f"operator {f.op!r} takes one value, got {len(f.values)}")
    return f"{ref} {f.op} {_literal(f.values[0], kind)}"
