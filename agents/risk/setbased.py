"""Risk rule conditions as SQL, generated from the policy and run in the warehouse.

One query per run finds, set-based over the canonical marts, every open deal on which some rule
of the policy fires (or cannot judge), with the point-in-time features computed in SQL and each
rule's settings resolved per deal in SQL (segment / stage overrides and playbooks as CASE chains,
playbook conditions and custom-rule expressions compiled from :mod:`agents.risk.expressions`).
Python then builds the flags of those deals only (explanation text, evidence, severity, fatigue):
the rest of the open deals never become Python objects.

The SQL is a gate, conservative by construction: a comparison at a float boundary, a feature the
compiler cannot express, or a rule whose data may be missing lets the deal through, and Python's
rule functions (:mod:`agents.risk.rules`) make the final call on it, so the flags are those of the
row-by-row engine (``tests/test_risk_sql.py`` compares both on the demo CRM). A source that lacks a
whole table (no activity log, stage history, field history or buying roles) or a playbook condition
the compiler cannot express keeps the row-by-row path (:func:`gate_supported` says why).

Portable: the generated SQL runs on DuckDB and PostgreSQL (:data:`DIALECTS`); literals are inlined
(dates, numbers, quoted strings), so no driver-specific parameter style is needed.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agents.risk.baselines import BaselineSet
from agents.risk.expressions import Expression
from agents.risk.features import (
    FEATURE_NAMES,
    MARTS,
    ActivityFact,
    DealFeatures,
    FieldChange,
    SourceCoverage,
    days_to_quarter_end,
    deal_from_row,
)
from agents.risk.policy import PARAMS_MODELS, REP_RULES, CustomRuleParams, RiskPolicy

__all__ = ["DIALECTS", "GateResult", "compile_expression_sql", "gate_sql", "gate_supported", "run_gate"]

DIALECTS = ("duckdb", "postgres")
# A float comparison in SQL may round differently from Python's by an ulp: the gate lets such
# boundary cases through (Python decides them).
_EPS = 1e-6


class Unsupported(ValueError):
    """The policy uses something the SQL generator cannot express (the row-by-row path is used)."""


# ---------------------------------------------------------------------------- literals and dialects


def lit(value: Any) -> str:
    """A SQL literal for a policy value (None, bool, number, string, date)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if value != value or value in (float("inf"), float("-inf")):
            raise Unsupported(f"non-finite number {value!r}")
        return repr(float(value)) if isinstance(value, float) else str(int(value))
    if isinstance(value, dt.datetime):
        return f"timestamp '{value.isoformat(sep=' ')}'"
    if isinstance(value, dt.date):
        return f"date '{value.isoformat()}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise Unsupported(f"no SQL literal for {value!r}")


@dataclass(frozen=True)
class _Dialect:
    name: str

    @property
    def double(self) -> str:
        return "double precision" if self.name == "postgres" else "double"

    def matches(self, text: str, pattern: str) -> str:
        if self.name == "postgres":
            return f"({text} ~ {lit(pattern)})"
        return f"regexp_matches({text}, {lit(pattern)})"

    def try_double(self, text: str) -> str:
        if self.name == "postgres":
            num = r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$"
            return f"(case when {self.matches(text, num)} then cast({text} as double precision) end)"
        return f"try_cast({text} as double)"

    def agg_list(self, value: str, order_by: str, where: str) -> str:
        """An ordered list of ``value`` over the rows where ``where`` holds (null when none)."""
        fn = "array_agg" if self.name == "postgres" else "list"
        return f"{fn}({value} order by {order_by}) filter (where {where})"

    def agg_select(self, fields: Sequence[str], order: Sequence[str], prefix: str, source: str) -> str:
        """``select opportunity_id, <one list per field> from source group by opportunity_id``: each
        group's rows as one list (DuckDB) or array (PostgreSQL) per field, named ``prefix + field``,
        all in the order of ``order`` (fields of ``fields`` that make each row's place unique).
        Plain lists convert to Python much faster than lists of records. On DuckDB the rows are
        sorted once per group (a list of rows, ``order`` first, sorted and split into the fields'
        lists) instead of once per field by an ordered aggregate each."""
        if self.name == "postgres":
            cols = ", ".join(f"array_agg({f} order by {', '.join(order)}) as {prefix}{f}" for f in fields)
            return f"select opportunity_id, {cols} from {source} group by opportunity_id"
        packed = [*order, *(f for f in fields if f not in order)]
        cols = ", ".join(f"list_transform(_rows, x -> x[{packed.index(f) + 1}]) as {prefix}{f}" for f in fields)
        return (f"select opportunity_id, {cols} from (select opportunity_id, list_sort(list(row({', '.join(packed)}))) "
                f"as _rows from {source} group by opportunity_id) as _sorted")

    def joined(self, value: str, order_by: str, where: str) -> str:
        """The group's values of ``value`` where ``where`` holds, ordered, joined by the unit
        separator (U+001F) into one text (null when none)."""
        return f"string_agg({value}, chr(31) order by {order_by}) filter (where {where})"

    def try_date(self, text: str) -> str:
        head = f"substr(trim({text}), 1, 10)"
        if self.name == "postgres":
            return f"(case when {self.matches(head, '^[0-9]{4}-[0-9]{2}-[0-9]{2}$')} then cast({head} as date) end)"
        return f"try_cast({head} as date)"


def dialect(name: str) -> _Dialect:
    if name not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {name!r}; known: {', '.join(DIALECTS)}")
    return _Dialect(name)


# ---------------------------------------------------------------------------- expressions -> SQL

_SQL_CMP = {ast.Eq: "=", ast.NotEq: "<>", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_SQL_ARITH = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*"}
_BOOL_FEATURES = {"has_decision_maker", "is_past_due", "is_strategic", "has_next_step"}
_TEXT_FEATURES = {"segment", "stage"}


def compile_expression_sql(expr: Expression, column: Mapping[str, str] | None = None) -> str:
    """A SQL boolean that is true exactly where ``expr.test(features)`` is (never null: an unknown
    value makes a comparison false, as in Python). ``column`` maps a feature name to its SQL
    expression (default: the name itself). Raises :class:`Unsupported` for what it cannot express
    exactly (division, modulo, a bare numeric name used as a truth value, ...)."""
    col = dict(column or {})

    def name(n: str) -> str:
        return col.get(n, n)

    def value(node: ast.AST) -> tuple[str, str]:
        """(SQL, kind) of a value; kind is 'num', 'text', 'bool' or 'null'."""
        if isinstance(node, ast.Constant):
            v = node.value
            kind = "null" if v is None else "bool" if isinstance(v, bool) else "text" if isinstance(v, str) else "num"
            return lit(v), kind
        if isinstance(node, ast.Name):
            kind = "bool" if node.id in _BOOL_FEATURES else "text" if node.id in _TEXT_FEATURES else "num"
            return name(node.id), kind
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            inner, kind = value(node.operand)
            if kind != "num":
                raise Unsupported("unary minus on a non-number")
            return (f"(-{inner})" if isinstance(node.op, ast.USub) else inner), "num"
        if isinstance(node, ast.BinOp) and type(node.op) in _SQL_ARITH:
            (left, lk), (right, rk) = value(node.left), value(node.right)
            if lk != "num" or rk != "num":
                raise Unsupported("arithmetic on a non-number")
            return f"({left} {_SQL_ARITH[type(node.op)]} {right})", "num"
        raise Unsupported(f"{type(node).__name__} in an expression")

    def truth(node: ast.AST) -> str:
        if isinstance(node, ast.BoolOp):
            op = " and " if isinstance(node.op, ast.And) else " or "
            return "(" + op.join(truth(v) for v in node.values) + ")"
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return f"(not {truth(node.operand)})"
        if isinstance(node, ast.Compare):
            parts, left = [], node.left
            for op, comp in zip(node.ops, node.comparators):
                lsql, lk = value(left)
                if isinstance(op, (ast.In, ast.NotIn)):
                    options = [e.value for e in comp.elts]  # type: ignore[attr-defined]
                    if any(o is None for o in options):
                        raise Unsupported("None in an 'in' list")
                    if lk == "null":
                        parts.append("false" if isinstance(op, ast.In) else "true")
                    else:
                        inside = f"coalesce({lsql} in ({', '.join(lit(o) for o in options)}), false)" if options else "false"
                        # Python: None in (...) is false, None not in (...) is true.
                        parts.append(inside if isinstance(op, ast.In) else f"(not {inside})")
                else:
                    rsql, rk = value(comp)
                    if "null" in (lk, rk):
                        parts.append("false")
                    elif lk != rk and not {lk, rk} <= {"num", "bool"}:
                        raise Unsupported("a comparison of different kinds")
                    else:
                        parts.append(f"coalesce({lsql} {_SQL_CMP[type(op)]} {rsql}, false)")
                left = comp
            return "(" + " and ".join(parts) + ")"
        if isinstance(node, ast.Constant):
            return "true" if node.value else "false"
        if isinstance(node, ast.Name) and node.id in _BOOL_FEATURES:
            return f"coalesce({name(node.id)}, false)"
        raise Unsupported(f"{type(node).__name__} used as a truth value")

    return truth(expr._tree.body)


# ---------------------------------------------------------------------------- per-deal settings in SQL


def _coerced(policy: RiskPolicy, rule_id: str, param: str, value: Any) -> Any:
    """An override's raw value as the rule's params model types it (e.g. "10" -> 10)."""
    model = PARAMS_MODELS.get(rule_id, CustomRuleParams)
    base = dict(policy.all_rule_configs()[rule_id].params)
    return getattr(model.model_validate({**base, param: value}), param)


def _setting_chain(policy: RiskPolicy, rule_id: str, get, pb_active: Mapping[str, str]) -> list[tuple[str, Any]]:
    """(SQL condition, value) from the highest priority to the lowest, ending with ('true', base).
    ``get(override)`` is the override's value for the setting, or a sentinel when it sets none."""
    cfg = policy.all_rule_configs()[rule_id]
    chain: list[tuple[str, Any]] = []
    for name in reversed(list(policy.spec.playbooks)):
        if name not in pb_active:
            continue
        ov = policy.spec.playbooks[name].overrides.get(rule_id)
        if ov is not None and (v := get(ov)) is not _UNSET:
            chain.append((pb_active[name], v))
    scoped = sorted(
        (ov for ov in cfg.overrides),
        key=lambda ov: (ov.segment is not None and ov.stage is not None, ov.stage is not None),
    )
    for ov in reversed(scoped):
        if (v := get(ov)) is _UNSET:
            continue
        cond = []
        if ov.segment is not None:
            cond.append(f"d.segment = {lit(ov.segment)}")
        if ov.stage is not None:
            cond.append(f"d.stage = {lit(ov.stage)}")
        chain.append((" and ".join(cond), v))
    return chain


_UNSET = object()
_DEAL_COLUMNS = {n: f"d.{n}" for n in FEATURE_NAMES}


def _case(chain: list[tuple[str, Any]], base: Any, render=lit) -> str:
    if not chain:
        return render(base)
    whens = " ".join(f"when {cond} then {render(v)}" for cond, v in chain)
    return f"(case {whens} else {render(base)} end)"


class _Settings:
    """Per-deal rule settings as SQL expressions over the deal row ``d`` and its playbook flags."""

    def __init__(self, policy: RiskPolicy, pb_active: Mapping[str, str]) -> None:
        self.policy, self.pb_active = policy, pb_active

    def param(self, rule_id: str, param: str) -> str:
        """The resolved value of a scalar parameter (number, bool, string) for each deal."""
        base = getattr(self.policy.resolve(rule_id).params, param)

        def get(ov):
            return _coerced(self.policy, rule_id, param, ov.params[param]) if param in ov.params else _UNSET

        return _case(_setting_chain(self.policy, rule_id, get, self.pb_active), base)

    def options(self, rule_id: str, param: str) -> tuple[str, list[Any]]:
        """For a parameter SQL cannot hold (a mapping, an expression): (SQL index of the deal's value,
        the distinct values by index)."""
        base = getattr(self.policy.resolve(rule_id).params, param)
        values: list[Any] = [base]

        def index(v: Any) -> int:
            for i, known in enumerate(values):
                if json.dumps(known, sort_keys=True, default=str) == json.dumps(v, sort_keys=True, default=str):
                    return i
            values.append(v)
            return len(values) - 1

        def get(ov):
            return index(_coerced(self.policy, rule_id, param, ov.params[param])) if param in ov.params else _UNSET

        chain = _setting_chain(self.policy, rule_id, get, self.pb_active)
        return _case(chain, 0), values

    def enabled(self, rule_id: str) -> str:
        base = self.policy.all_rule_configs()[rule_id].enabled
        return _case(_setting_chain(self.policy, rule_id, lambda ov: _UNSET if ov.enabled is None else ov.enabled,
                                    self.pb_active), base)


# ---------------------------------------------------------------------------- the query


def _baseline_rows(baselines: BaselineSet, segments: Sequence[str | None], stages: Sequence[str | None]) -> list[tuple]:
    rows = []
    for seg in segments:
        for stage in stages:
            rows.append((
                seg, stage,
                baselines.stage_duration(seg, stage, "p50").value if stage is not None else None,
                baselines.stage_duration(seg, stage, "p75").value if stage is not None else None,
                baselines.meetings_per_week(seg, stage).value,
                baselines.cycle_length(seg, "p50").value,
                baselines.cycle_length(seg, "p75").value,
                baselines.win_rate(seg).value,
            ))
    return rows


_NONE_KEY = "\u2400none"  # a join key for a missing segment or stage (no real value looks like it)


def _key(sql: str) -> str:
    return f"coalesce({sql}, {lit(_NONE_KEY)})"


def gate_sql(
    policy: RiskPolicy,
    as_of: dt.date,
    baselines: BaselineSet,
    *,
    segments: Sequence[str | None],
    stages: Sequence[str | None],
    dialect_name: str = "duckdb",
    evidence_windows: tuple[int, int] | None = None,
) -> str:
    """The query: one row per open deal at the end of ``as_of`` with ``opportunity_id``,
    ``stage``, ``stage_order``, ``owner_rep_id``, ``amount`` (as of that date) and ``candidate`` (some rule of ``policy``
    fires or cannot judge it). ``segments``/``stages``: the values the marts hold (the baselines
    of each combination are inlined). Raises :class:`Unsupported` when it cannot be generated.

    ``evidence_windows`` (meeting days, any-activity days; :func:`agents.risk.engine.activity_windows`):
    the rows also carry, for the candidates only, the deal's columns as of the date (those of
    :func:`agents.risk.features.load_deal_features`' query) and the evidence rows its rules may cite,
    aggregated in SQL: ``ev_activity_id``, ``ev_activity_type``, ... (the meetings and activities of those windows, the last
    activity and the last decision-maker activity, with their decision-maker contacts, oldest first),
    ``ev_n_activities`` (all activities by the date) and ``ev_field_history_id``... (close-date and amount changes),
    one ordered list per field."""
    D = dialect(dialect_name)
    cut = lit(dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time()))
    asof = lit(as_of)

    # -- playbooks: active by date (decided here) and by condition (compiled) --------------
    pb_active: dict[str, str] = {}
    pb_cols: list[str] = []
    for i, (name, pb) in enumerate(policy.spec.playbooks.items()):
        if not pb.enabled or not _within_dates(pb, as_of):
            continue
        cond = policy._playbook_conditions.get(name)
        pb_active[name] = f"d.pb_{i}"
        pb_cols.append(f"{compile_expression_sql(cond) if cond is not None else 'true'} as pb_{i}")
    settings = _Settings(policy, pb_active)

    # -- baselines per segment x stage (inlined; a handful of rows) -------------------------
    brows = _baseline_rows(baselines, segments, stages)
    bl_values = ", ".join(
        "(" + ", ".join([lit(_NONE_KEY if r[0] is None else r[0]), lit(_NONE_KEY if r[1] is None else r[1])]
                        + [f"cast({lit(v)} as {D.double})" for v in r[2:]]) + ")"
        for r in brows
    ) or f"({lit(_NONE_KEY)}, {lit(_NONE_KEY)}, null, null, null, null, null, null)"

    rules = [r for r in policy.rule_ids if r not in REP_RULES]
    conds: list[str] = []
    rule_conds: list[tuple[str, str]] = []  # (rule, its condition): the rules that may fire on (or not judge) a deal
    cadence_cols: list[str] = []
    swing_cols: list[str] = []
    for rule_id in rules:
        on = settings.enabled(rule_id)
        p = lambda name, r=rule_id: settings.param(r, name)  # noqa: E731
        if policy.is_custom(rule_id):
            idx, exprs = settings.options(rule_id, "expression")
            alts = []
            for i, source in enumerate(exprs):
                expr = policy._expressions.get((rule_id, source))
                try:
                    sql = compile_expression_sql(expr, _DEAL_COLUMNS) if expr is not None else "true"
                except Unsupported:
                    sql = "true"  # Python decides every deal for this expression
                alts.append(f"({idx} = {i} and {sql})")
            body = " or ".join(alts)
        elif rule_id == "stalled_in_stage":
            b = f"(case when {p('percentile')} = 'p50' then bl.dur_p50 else bl.dur_p75 end)"
            body = (f"d.days_in_stage is null or d.stage is null or {b} is null "
                    f"or ({p('multiplier')} * {b} > 0 and d.days_in_stage > {p('multiplier')} * {b} - {_EPS})")
        elif rule_id == "stale_cycle":
            body = (f"d.cycle_days is null or bl.cyc_p75 is null or (d.cycle_days > {p('multiplier')} * bl.cyc_p75 - {_EPS}"
                    f" and (not {p('require_no_decision_maker')} or not d.has_decision_maker))")
        elif rule_id == "no_recent_activity":
            body = (f"(d.last_activity_on is null and {p('fire_when_never_active')}"
                    f" and coalesce(d.cycle_days > {p('days')}, false))"
                    f" or coalesce(d.days_since_activity > {p('days')}, false)")
        elif rule_id == "meeting_cadence_drop":
            n = len(cadence_cols) // 3
            recent, prior_w, active = p("recent_days"), p("prior_weeks"), p("active_within_days")
            cadence_cols += [
                f"count(*) filter (where a.is_meeting and a.on_day > {asof} - {recent}) as cad{n}_recent",
                f"count(*) filter (where a.is_meeting and a.on_day <= {asof} - {recent} "
                f"and a.on_day > {asof} - {recent} - 7 * {prior_w}) as cad{n}_prior",
                f"count(*) filter (where {active} is null or a.on_day > {asof} - {active}) as cad{n}_active",
            ]
            rate = f"(c.cad{n}_recent / ({recent} / 7.0))"
            span = f"least(7 * {prior_w}, greatest(d.cycle_days - {recent}, 0))"
            body = (
                f"d.cycle_days >= {recent} and ({active} is null or coalesce(c.cad{n}_active, 0) > 0) and ("
                f"(coalesce(bl.mpw > 0, false) and coalesce(c.cad{n}_prior, 0) >= {p('baseline_min_prior_meetings')}"
                f" and {rate} < {p('baseline_share')} * bl.mpw + {_EPS})"
                f" or ({span} >= 7 and coalesce(c.cad{n}_prior, 0) >= {p('min_prior_meetings')}"
                f" and {rate} < {p('own_share')} * (coalesce(c.cad{n}_prior, 0) / ({span} / 7.0)) + {_EPS}))"
            )
        elif rule_id == "no_decision_maker":
            by = f"(select so.stage_order from stage_orders so where so.stage = {p('by_stage')})"
            body = f"{by} is null or (coalesce(d.stage_order >= {by}, false) and not d.has_decision_maker)"
        elif rule_id == "close_date_slipped":
            body = (f"d.close_date_pushes >= {p('min_pushes')} or ({p('past_due')} and coalesce(d.close_date < {asof}"
                    f" and {asof} - d.close_date > {p('past_due_grace_days')}, false))")
        elif rule_id == "amount_swing":
            n = len(swing_cols)
            swing_cols.append(
                f"count(*) filter (where x.field_name = 'amount' and x.on_day > {asof} - {p('lookback_days')}"
                f" and x.rel_change > {p('min_relative_change')} - {_EPS}) as swing{n}")
            body = f"coalesce(s.swing{n}, 0) > 0"
        elif rule_id == "missing_required_fields":
            idx, options = settings.options(rule_id, "required_fields")
            alts = []
            for i, required in enumerate(options):
                per_stage = []
                for stage, fields in required.items():
                    empty = " or ".join(_empty(f, D) for f in fields) or "false"
                    per_stage.append(f"(coalesce(d.stage_order >= (select so.stage_order from stage_orders so "
                                     f"where so.stage = {lit(stage)}), false) and ({empty}))")
                alts.append(f"({idx} = {i} and ({' or '.join(per_stage) or 'false'}))")
            body = f"d.stage_order is null or {' or '.join(alts)}"
        else:  # a built-in rule this generator does not know: Python decides every deal
            body = "true"
        conds.append(f"(coalesce({on}, true) and coalesce({body}, true))")
        rule_conds.append((rule_id, conds[-1]))

    cadence = ", ".join(cadence_cols) or "count(*) as cad_none"
    swings = ", ".join(swing_cols) or "count(*) as swing_none"
    pbs = (", " + ", ".join(pb_cols)) if pb_cols else ""
    q_end = days_to_quarter_end(as_of)
    if evidence_windows is None:
        raw, evidence = "", "\nselect * from gate order by opportunity_id"
    else:
        # (the candidates' activity count is the gate's own, activity_count)
        raw = ", " + ", ".join(f"d.{c}" for c in _RAW_COLUMNS) + ", d.activity_count as ev_n_activities"
        # which rules' conditions hold for the deal: Python runs only those (each condition is itself
        # conservative, so a rule whose condition is false would not fire on the deal, nor fail to judge it)
        raw += ", concat_ws(chr(31), " + ", ".join(
            f"case when {cond} then {lit(rule_id)} end" for rule_id, cond in rule_conds) + ") as may_fire"
        evidence = _evidence_sql(D, as_of, evidence_windows)
    return f"""
with open_deals as (
    select * from {MARTS}.fct_opportunities
    where (created_at < {cut} or created_at is null)
      and not (coalesce(is_closed, false) and coalesce(closed_at, {cut}) < {cut})
),
stage_map as (
    select stage, min(stage_order) as stage_order from {MARTS}.fct_opportunities
    where stage_order is not null group by stage
    union all
    select h.stage, min(h.stage_order) from {MARTS}.fct_stage_history h
    where h.stage_order is not null and not exists (
        select 1 from {MARTS}.fct_opportunities o2 where o2.stage = h.stage and o2.stage_order is not null)
    group by h.stage
),
stint_at as (
    select opportunity_id, stage_history_id, stage, stage_order, entered_at,
           row_number() over (partition by opportunity_id order by entered_at desc, stage_history_id desc) as rn
    from {MARTS}.fct_stage_history
    where entered_at < {cut} and opportunity_id in (select opportunity_id from open_deals)
),
later_changes as (
    select opportunity_id, field_name, field_history_id, old_value,
           row_number() over (partition by opportunity_id, field_name order by changed_at, field_history_id) as rn
    from {MARTS}.fct_field_history
    where changed_at >= {cut} and field_name in ('close_date', 'amount', 'next_step')
      and opportunity_id in (select opportunity_id from open_deals)
),
rep_load as (
    select owner_rep_id, count(*) as rep_open_deals from open_deals group by owner_rep_id
),
acts as (
    select a.opportunity_id, a.activity_id, a.activity_type, a.occurred_at, cast(a.occurred_at as date) as on_day,
           lower(coalesce(a.activity_type, '')) = 'meeting' as is_meeting,
           dmb.activity_id is not null as with_dm
    from {MARTS}.fct_activities a
    left join (select distinct activity_id from {MARTS}.bridge_activity_contacts
               where buying_role = 'decision_maker') dmb on dmb.activity_id = a.activity_id
    where a.occurred_at < {cut} and a.opportunity_id in (select opportunity_id from open_deals)
),
act_agg as (
    select opportunity_id, count(*) as activity_count, max(on_day) as last_activity_on,
           bool_or(with_dm) as has_dm,
           count(*) filter (where is_meeting and on_day > {asof} - 28) as meetings_last_28d,
           count(*) filter (where is_meeting and on_day > {asof} - 84 and on_day <= {asof} - 28) as meetings_prior_8w
    from acts group by opportunity_id
),
changes as (
    select opportunity_id, field_name, cast(changed_at as date) as on_day,
           {D.try_date('old_value')} as old_date, {D.try_date('new_value')} as new_date,
           {D.try_double('old_value')} as old_num, {D.try_double('new_value')} as new_num
    from {MARTS}.fct_field_history
    where changed_at < {cut} and field_name in ('close_date', 'amount')
      and opportunity_id in (select opportunity_id from open_deals)
),
chg as (
    select opportunity_id, field_name, on_day,
           case when old_date is not null and new_date is not null and new_date > old_date then 1 else 0 end as is_push,
           case when old_num is not null and new_num is not null and old_num > 0
                then abs(new_num - old_num) / old_num end as rel_change
    from changes
),
chg_agg as (
    select opportunity_id, sum(is_push) filter (where field_name = 'close_date') as close_date_pushes,
           coalesce(max(rel_change) filter (where field_name = 'amount' and on_day > {asof} - 30), 0.0) as amount_change_30d
    from chg group by opportunity_id
),
deal_base as (
    select
        o.opportunity_id, o.owner_rep_id, o.segment, o.opportunity_name, o.account_id,
        case when s.stage_history_id is not null then s.stage
             when not coalesce(o.is_closed, false) then o.stage end as stage,
        case when s.stage_history_id is not null then coalesce(s.stage_order, sm.stage_order)
             when not coalesce(o.is_closed, false) then o.stage_order end as stage_order,
        case when s.stage_history_id is not null then {asof} - cast(s.entered_at as date) end as days_in_stage,
        {asof} - cast(o.created_at as date) as cycle_days,
        case when cd.field_history_id is not null then {D.try_date('cd.old_value')}
             else cast(o.close_date as date) end as close_date,
        case when am.field_history_id is not null then {D.try_double('am.old_value')}
             else cast(o.amount as {D.double}) end as amount,
        case when ns.field_history_id is not null then ns.old_value else o.next_step end as next_step,
        a.tags as account_tags, {asof} - cast(r.hired_on as date) as rep_tenure_days, rl.rep_open_deals,
        coalesce(o.manager_id, r.manager_id) as manager_id, o.created_at, o.source_url, o.is_closed as closed_now,
        o.stage as stage_now, o.stage_order as stage_order_now, s.stage_history_id, s.stage as stage_at,
        s.stage_order as stage_order_at, s.entered_at as stage_entered_at, o.close_date as close_date_now,
        cd.old_value as close_date_at, cd.field_history_id as close_date_source_id, o.amount as amount_now,
        am.old_value as amount_at, am.field_history_id as amount_source_id, o.next_step as next_step_now,
        ns.old_value as next_step_at, ns.field_history_id as next_step_source_id, r.hired_on as rep_hired_on
    from open_deals o
    left join stint_at s on s.opportunity_id = o.opportunity_id and s.rn = 1
    left join (select stage, min(stage_order) as stage_order from stage_map group by stage) sm on sm.stage = s.stage
    left join later_changes cd on cd.opportunity_id = o.opportunity_id and cd.field_name = 'close_date' and cd.rn = 1
    left join later_changes am on am.opportunity_id = o.opportunity_id and am.field_name = 'amount' and am.rn = 1
    left join later_changes ns on ns.opportunity_id = o.opportunity_id and ns.field_name = 'next_step' and ns.rn = 1
    left join {MARTS}.dim_accounts a on a.account_id = o.account_id
    left join {MARTS}.dim_reps r on r.rep_id = o.owner_rep_id
    left join rep_load rl on rl.owner_rep_id = o.owner_rep_id
),
deals as (
    select b.*,
        coalesce(aa.activity_count, 0) as activity_count, aa.last_activity_on,
        {asof} - aa.last_activity_on as days_since_activity,
        coalesce(aa.meetings_last_28d, 0) as meetings_last_28d, coalesce(aa.meetings_prior_8w, 0) as meetings_prior_8w,
        coalesce(aa.has_dm, false) as has_decision_maker,
        b.close_date - {asof} as days_to_close, b.close_date < {asof} as is_past_due,
        coalesce(ca.close_date_pushes, 0) as close_date_pushes, coalesce(ca.amount_change_30d, 0.0) as amount_change_30d,
        {q_end} as days_to_quarter_end,
        coalesce({D.matches('lower(b.account_tags)', '(^|[;,])[[:space:]]*strategic[[:space:]]*($|[;,])')}, false)
            as is_strategic,
        coalesce({D.matches('b.next_step', '[^[:space:]]')}, false) as has_next_step
    from deal_base b
    left join act_agg aa on aa.opportunity_id = b.opportunity_id
    left join chg_agg ca on ca.opportunity_id = b.opportunity_id
),
stage_orders as (
    -- the engine's stage -> order map: the first open deal (by id) at each stage gives its order
    select stage, (array_agg(stage_order order by opportunity_id))[1] as stage_order
    from deals where stage is not null and stage_order is not null group by stage
),
d as (
    select deals.*{pbs} from deals
),
cad as (
    select a.opportunity_id, {cadence}
    from acts a join d on d.opportunity_id = a.opportunity_id group by a.opportunity_id
),
swing as (
    select x.opportunity_id, {swings}
    from chg x join d on d.opportunity_id = x.opportunity_id group by x.opportunity_id
),
bl (segment, stage, dur_p50, dur_p75, mpw, cyc_p50, cyc_p75, win_rate) as (values {bl_values}),
gate as {'materialized ' if evidence_windows is not None else ''}(
    select d.opportunity_id, d.stage, d.stage_order, d.owner_rep_id, d.amount,
           ({' or '.join(conds) or 'false'}) as candidate{raw}
    from d
    left join bl on bl.segment = {_key('d.segment')} and bl.stage = {_key('d.stage')}
    left join cad c on c.opportunity_id = d.opportunity_id
    left join swing s on s.opportunity_id = d.opportunity_id
){evidence}
"""


# The columns of features.load_deal_features' open-deals query (features.deal_from_row reads them).
_RAW_COLUMNS = (
    "account_id", "manager_id", "opportunity_name", "segment", "created_at", "source_url", "closed_now", "stage_now",
    "stage_order_now", "stage_history_id", "stage_at", "stage_order_at", "stage_entered_at", "close_date_now",
    "close_date_at", "close_date_source_id", "amount_now", "amount_at", "amount_source_id", "next_step_now",
    "next_step_at", "next_step_source_id", "account_tags", "rep_hired_on", "rep_open_deals",
)
_ACTIVITY_FIELDS = ("activity_id", "activity_type", "occurred_at", "dm_contacts")
_CHANGE_FIELDS = ("field_history_id", "field_name", "old_value", "new_value", "changed_at")


def _evidence_sql(D: _Dialect, as_of: dt.date, windows: tuple[int, int]) -> str:
    """The gate's tail: the candidates' evidence rows aggregated per deal (see :func:`gate_sql`); the
    same selection as features' compact activity query and field-change query, for the candidates only."""
    cut = lit(dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time()))
    meetings_since, any_since = (lit(dt.datetime.combine(as_of - dt.timedelta(days=n), dt.time())) for n in windows)
    dm = "b.buying_role = 'decision_maker'"
    return f""",
cand as (select opportunity_id from gate where candidate),
ranked_acts as (
    select a.opportunity_id, a.activity_id, a.activity_type, a.occurred_at, a.with_dm,
           row_number() over (partition by a.opportunity_id order by a.occurred_at desc, a.activity_id desc) as rn_last,
           row_number() over (partition by a.opportunity_id, a.with_dm
                              order by a.occurred_at desc, a.activity_id desc) as rn_kind
    from acts a
    where a.opportunity_id in (select opportunity_id from cand)
),
picked as (
    select p.opportunity_id, p.activity_id, p.activity_type, p.occurred_at, p.with_dm
    from ranked_acts p
    where (lower(p.activity_type) = 'meeting' and p.occurred_at >= {meetings_since}) or p.occurred_at >= {any_since}
       or p.rn_last = 1 or (p.with_dm and p.rn_kind = 1)
),
dm_contacts as (
    -- the decision-maker contacts of the picked activities that have any (the bridge's other rows are not read)
    select b.activity_id, string_agg(b.contact_id, chr(31) order by b.contact_id) as dm_contacts
    from {MARTS}.bridge_activity_contacts b
    where {dm} and b.activity_id in (select activity_id from picked where with_dm)
    group by b.activity_id
),
picked_acts as (
    select p.opportunity_id, p.activity_id, p.activity_type, p.occurred_at, c.dm_contacts
    from picked p left join dm_contacts c on c.activity_id = p.activity_id
),
ev_acts as (
    {D.agg_select(_ACTIVITY_FIELDS, ('occurred_at', 'activity_id'), 'ev_', 'picked_acts')}
),
changes_of_cands as (
    select opportunity_id, {', '.join(_CHANGE_FIELDS)}
    from {MARTS}.fct_field_history
    where changed_at < {cut} and field_name in ('close_date', 'amount')
      and opportunity_id in (select opportunity_id from cand)
),
ev_changes as (
    {D.agg_select(_CHANGE_FIELDS, ('changed_at', 'field_history_id'), 'ev_', 'changes_of_cands')}
)
select g.*, {', '.join(f'ea.ev_{f}' for f in _ACTIVITY_FIELDS)},
       {', '.join(f'ec.ev_{f}' for f in _CHANGE_FIELDS)}
from gate g
left join ev_acts ea on ea.opportunity_id = g.opportunity_id
left join ev_changes ec on ec.opportunity_id = g.opportunity_id
order by g.opportunity_id"""


def _within_dates(pb, as_of: dt.date) -> bool:
    return not ((pb.active_from and as_of < pb.active_from) or (pb.active_to and as_of > pb.active_to))


_STRING_FIELDS = {"next_step", "account_id", "owner_rep_id", "opportunity_name"}


def _empty(field: str, D: _Dialect) -> str:
    col = f"d.{field}"
    if field in _STRING_FIELDS:
        return f"({col} is null or not coalesce({D.matches(col, '[^[:space:]]')}, false))"
    return f"({col} is null)"


# ---------------------------------------------------------------------------- running it


def gate_supported(policy: RiskPolicy, coverage: SourceCoverage) -> str | None:
    """None when the set-based path can run, else why the row-by-row path is used."""
    missing = [name for name, ok in (
        ("stage history", coverage.has_stage_history), ("activity log", coverage.has_activities),
        ("field history", coverage.has_field_history), ("contact buying roles", coverage.has_buying_roles),
    ) if not ok]
    if missing:
        return f"the source has no {', '.join(missing)}"
    for name, cond in policy._playbook_conditions.items():
        try:
            compile_expression_sql(cond)
        except Unsupported as exc:
            return f"playbook {name}'s condition cannot run as SQL ({exc})"
    return None


@dataclass(frozen=True)
class GateResult:
    """What the gate found: the open deals (id -> (owner rep, amount as of the date)), the
    candidates among them (in id order), the engine's stage -> order map, and the SQL it ran.
    With evidence (``run_gate(..., activity_windows=...)``), ``deals`` holds the candidates'
    features built from the rows and evidence the query aggregated (no second read)."""

    open_deals: dict[str, tuple[str | None, float | None]]
    candidates: list[str]
    stage_orders: dict[str, int]
    sql: str
    deals: list[DealFeatures] | None = None
    # With evidence: candidate -> the rules whose SQL condition holds for it (the others cannot fire on it).
    may_fire: dict[str, frozenset[str]] | None = None


def _fetch(con: Any, sql: str) -> list[tuple]:
    cur = con.execute(sql)
    rows = cur.fetchall() if hasattr(cur, "fetchall") else con.fetchall()
    return rows


def _fetch_named(con: Any, sql: str) -> tuple[list[str], list[tuple]]:
    cur = con.execute(sql)
    columns = getattr(cur, "columns", None)
    if not isinstance(columns, list):  # a driver cursor (DuckDB, psycopg), not a WarehouseResult
        columns = [d[0] for d in cur.description]
    return columns, cur.fetchall()


def _records(row: Mapping[str, Any], fields: Sequence[str]) -> Any:
    """A deal's aggregated rows (one list per field, ``ev_<field>``) as value tuples in ``fields`` order."""
    return zip(*[row[f"ev_{f}"] or () for f in fields])


def distinct_values(con: Any) -> tuple[list[str | None], list[str | None]]:
    """The segments and stages the marts hold (plus None), for the inlined baselines."""
    segments = [r[0] for r in _fetch(con, f"select distinct segment from {MARTS}.fct_opportunities")]
    stages = [r[0] for r in _fetch(con, f"select distinct stage from {MARTS}.fct_opportunities union "
                                        f"select distinct stage from {MARTS}.fct_stage_history")]
    segs = sorted({s for s in segments if s is not None}) + [None]
    stgs = sorted({s for s in stages if s is not None}) + [None]
    return segs, stgs


def _stage_order_map(con: Any) -> dict[str, int]:
    """features' stage -> order map (the order of a stint whose own is missing), portable."""
    out: dict[str, int] = {}
    for table in ("fct_opportunities", "fct_stage_history"):
        for stage, order in _fetch(con, f"select stage, min(stage_order) from {MARTS}.{table} "
                                        "where stage_order is not null group by stage"):
            out.setdefault(stage, int(order))
    return out


def run_gate(
    con: Any, policy: RiskPolicy, as_of: dt.date, baselines: BaselineSet, *, dialect_name: str | None = None,
    activity_windows: tuple[int, int] | None = None, coverage: SourceCoverage | None = None,
) -> GateResult:
    """Run the gate on a warehouse connection: an :class:`agents.warehouse.WarehouseConnection`
    (DuckDB or PostgreSQL, the dialect is its own), a DuckDB connection, or a cursor (pass
    ``dialect_name``): the open deals, the candidates among them and the engine's stage orders.

    ``activity_windows`` (:func:`agents.risk.engine.activity_windows`): the same query also returns
    the candidates' columns and evidence rows (aggregated in SQL), built into ``GateResult.deals``
    exactly as :func:`agents.risk.features.load_deal_features` builds them."""
    dialect_name = dialect_name or getattr(con, "dialect", None) or "duckdb"
    segments, stages = distinct_values(con)
    sql = gate_sql(policy, as_of, baselines, segments=segments, stages=stages, dialect_name=dialect_name,
                   evidence_windows=activity_windows)
    columns, rows = _fetch_named(con, sql)
    orders: dict[str, int] = {}
    for _, stage, order, *_rest in rows:  # ordered by opportunity id: the first deal at a stage wins
        if stage is not None and order is not None:
            orders.setdefault(stage, int(order))
    deals = may_fire = None
    if activity_windows is not None:
        picked = [dict(zip(columns, r)) for r in rows if r[5]]
        deals = _candidate_features(picked, as_of, coverage or SourceCoverage(), _stage_order_map(con))
        may_fire = {r["opportunity_id"]: frozenset(r["may_fire"].split("\x1f")) if r["may_fire"] else frozenset()
                    for r in picked}
    return GateResult(
        open_deals={r[0]: (r[3], None if r[4] is None or r[4] != r[4] else float(r[4])) for r in rows},
        candidates=[r[0] for r in rows if r[5]], stage_orders=orders, sql=sql, deals=deals, may_fire=may_fire,
    )


def _candidate_features(
    rows: list[dict[str, Any]], as_of: dt.date, coverage: SourceCoverage, stage_orders: Mapping[str, int],
) -> list[DealFeatures]:
    out = []
    for r in rows:
        opp = r["opportunity_id"]
        activities = [
            ActivityFact(activity_id=str(aid), activity_type=str(kind or "").lower(), occurred_at=at,
                         decision_maker_contact_ids=tuple(dm.split("\x1f")) if dm else ())
            for aid, kind, at, dm in _records(r, _ACTIVITY_FIELDS)
        ] if coverage.has_activities else []
        changes: dict[tuple[str, str], list[FieldChange]] = defaultdict(list)
        if coverage.has_field_history:
            for fid, name, old, new, at in _records(r, _CHANGE_FIELDS):
                changes[(opp, name)].append(FieldChange(
                    field_history_id=str(fid), field_name=name, old_value=old, new_value=new, changed_at=at))
        total = int(r["ev_n_activities"]) if coverage.has_activities and r["ev_n_activities"] is not None else 0
        out.append(deal_from_row(r, as_of, coverage=coverage, stage_orders=stage_orders, activities=activities,
                                 changes=changes, activity_total=total))
    return out


assert set(FEATURE_NAMES) >= _BOOL_FEATURES | _TEXT_FEATURES
