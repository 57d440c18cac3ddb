"""Answer a question through the semantic layer only: ``answer(question, layer=..., settings=...) -> Answer``.

The one function every surface calls (``sales-supervisor ask``, the Slack slash
command, the console). A question becomes governed MetricFlow queries (by the
offline grammar, or by Claude through tools that can only list metrics and run
MetricFlow queries), and the answer carries each query's id, SQL and rows. A
question the semantic layer cannot answer gets ``answered=False`` and the reason.

Access: an ``AskScope`` limits a manager (or delegate) to their team(s): every
query that can be filtered by the deal's manager is; a deal-level answer that
cannot be is refused; a company-wide baseline (a metric not kept per team, by
segment or stage) is answered and labelled company-wide. Each answer and
refusal is recorded in the audit trail when a ledger is given.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, Field

from agents.ask.catalog import Catalog
from agents.ask.grammar import DEFAULT_STAGES, Refusal, parse
from agents.ask.plan import PlanError, QueryPlan

MAX_ROWS_SHOWN = 200
# Names that single out deals, reps or accounts: never answered company-wide for a scoped asker.
_ENTITY_LEVEL = ("opportunity", "rep", "account", "manager", "deal_name")
MANAGER_SCOPE_NAMES = ("opportunity__manager", "manager")


class LayerLike(Protocol):  # agents.semantic_layer.SemanticLayer
    semantic_manifest: Any

    def query(self, metrics: Sequence[str], group_by: Sequence[str] = (), where: Sequence[str] | None = None,
              order_by: Sequence[str] | None = None, limit: int | None = None) -> Any: ...

    def saved_query(self, name: str) -> Any: ...


class AnswerQuery(BaseModel):
    """One governed query an answer rests on: its id, what it asked, the SQL MetricFlow ran, the rows."""

    query_id: str
    description: str
    request: dict[str, Any]
    sql: str
    columns: list[str]
    rows: list[dict[str, Any]]
    row_count: int
    truncated: bool = False
    manifest_hash: str = ""
    result_hash: str = ""
    company_wide: bool = False


class Answer(BaseModel):
    question: str
    answered: bool
    text: str
    reason: str | None = None
    hints: list[str] = Field(default_factory=list)
    engine: str = "grammar"
    as_of: dt.date
    asked_by: str | None = None
    scope: list[str] | None = None
    interpretation: str | None = None
    queries: list[AnswerQuery] = Field(default_factory=list)
    refused_tool_calls: list[str] = Field(default_factory=list)
    cost_usd: float = 0.0

    @property
    def query_ids(self) -> list[str]:
        return [q.query_id for q in self.queries]

    def audit_payload(self) -> dict[str, Any]:
        return {
            "question": self.question, "answered": self.answered, "reason": self.reason, "engine": self.engine,
            "as_of": self.as_of.isoformat(), "scope": self.scope, "query_ids": self.query_ids,
            "refused_tool_calls": self.refused_tool_calls, "cost_usd": round(self.cost_usd, 6),
        }


@dataclass(frozen=True)
class AskScope:
    """Who asks, and the managers' teams they may see (None: everything, e.g. sales-ops at the CLI)."""

    asked_by: str
    manager_ids: tuple[str, ...] | None = None

    @property
    def restricted(self) -> bool:
        return self.manager_ids is not None

    @property
    def my_team(self) -> str | None:
        return self.manager_ids[0] if self.manager_ids and len(self.manager_ids) == 1 else None


def scope_for(approver_id: str, delegates: Mapping[str, Iterable[str]] | None = None, *, is_manager: bool = True) -> AskScope:
    """The teams an approver id may ask about: their own (when they are a manager) and those they are a delegate for."""
    teams = [approver_id] if is_manager else []
    teams += sorted(m for m, ds in (delegates or {}).items() if approver_id in set(ds) and m != approver_id)
    return AskScope(asked_by=approver_id, manager_ids=tuple(teams))


class CannotAnswer(Exception):
    def __init__(self, reason: str, hints: Sequence[str] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hints = list(hints)


def _is_entity_level(names: Iterable[str]) -> bool:
    return any(n.split("__")[-1] in _ENTITY_LEVEL or n in _ENTITY_LEVEL for n in names)


def run_plan(plan: QueryPlan, *, layer: LayerLike, catalog: Catalog, scope: AskScope | None = None) -> AnswerQuery:
    """Validate and run one plan through the semantic layer (scoped to the asker's teams); CannotAnswer if it cannot."""
    from agents.semantic_layer import SemanticLayerError

    try:
        plan.validate_against(catalog)
    except PlanError as exc:
        raise CannotAnswer(str(exc)) from None
    if plan.saved_query:
        if scope is not None and scope.restricted:
            sq = next(q for q in catalog.manifest.saved_queries if q.name == plan.saved_query)
            group_by = [str(g) for g in sq.query_params.group_by]
            if _is_entity_level(re.findall(r"'([a-z0-9_]+)'", " ".join(group_by))):
                raise CannotAnswer(f"the saved query {plan.saved_query} lists deals, reps or accounts company-wide; "
                                   "ask for it with a team filter instead")
        try:
            result = layer.saved_query(plan.saved_query)
        except SemanticLayerError as exc:
            raise CannotAnswer(f"the saved query {plan.saved_query} failed: {_first_line(exc)}") from None
        # The saved queries are baselines by segment and stage: company-wide by definition.
        return _answer_query(result, plan.interpretation or plan.describe(), company_wide=bool(scope and scope.restricted))
    where = plan.where(catalog)
    company_wide = False
    if scope is not None and scope.restricted:
        mentioned = [f.dimension for f in plan.filters if f.dimension.split("__")[-1] == "manager"]
        for f in plan.filters:
            if f.dimension in mentioned and any(str(v) not in scope.manager_ids for v in f.values):
                raise CannotAnswer(
                    f"{scope.asked_by} may ask about their own team only ({', '.join(scope.manager_ids) or 'none'})"
                )
        if not scope.manager_ids:
            raise CannotAnswer(f"{scope.asked_by} is neither a manager nor a delegate: no team to answer for")
        allowed = catalog.group_bys(plan.metrics)
        if "manager" in allowed:
            ids = ", ".join("'" + m.replace("'", "''") + "'" for m in scope.manager_ids)
            last_exc: Exception | None = None
            # The deal's manager: opportunity__manager from a model joined to deals, manager on the deals themselves.
            for name in MANAGER_SCOPE_NAMES:
                team_filter = "{{ Entity('" + name + "') }} IN (" + ids + ")"
                try:
                    result = layer.query(plan.metrics, plan.group_by, [*where, team_filter], plan.order_by or None, plan.limit)
                    return _answer_query(result, (plan.interpretation or plan.describe()) + f" (team: {', '.join(scope.manager_ids)})")
                except SemanticLayerError as exc:
                    last_exc = exc
            raise CannotAnswer(f"the query failed: {_first_line(last_exc)}")
        if _is_entity_level([*plan.group_by, *(f.dimension for f in plan.filters)]):
            raise CannotAnswer(
                f"{', '.join(plan.metrics)} is not kept per team, so deal-, rep- or account-level answers "
                "cannot be limited to your team"
            )
        company_wide = True
    try:
        result = layer.query(plan.metrics, plan.group_by, where, plan.order_by or None, plan.limit)
    except SemanticLayerError as exc:
        raise CannotAnswer(f"the semantic layer refused the query: {_first_line(exc)}") from None
    return _answer_query(result, plan.interpretation or plan.describe(), company_wide=company_wide)


def _first_line(exc: Any) -> str:
    text = str(exc)
    if "lock" in text.lower() and ("conflicting" in text.lower() or "could not set" in text.lower()):
        return "the warehouse is busy (a pipeline run holds it); try again in a minute"
    if "Got error(s) during query resolution" in text:
        # MetricFlow's resolution errors name the offending item on the lines that follow.
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        useful = [ln for ln in lines if "Error #" in ln or "does not" in ln or "not found" in ln.lower() or "match" in ln.lower()]
        return " ".join(useful[:3])[:400] or lines[0][:400]
    return text.splitlines()[0][:400] if text else type(exc).__name__


def _answer_query(result: Any, description: str, *, company_wide: bool = False) -> AnswerQuery:
    rows = [dict(r) for r in result.rows]
    return AnswerQuery(
        query_id=result.query_id,
        description=description + (" (company-wide: not kept per team)" if company_wide else ""),
        request=result.request.as_dict(),
        sql=result.sql,
        columns=list(result.columns),
        rows=rows[:MAX_ROWS_SHOWN],
        row_count=len(rows),
        truncated=len(rows) > MAX_ROWS_SHOWN,
        manifest_hash=result.manifest_hash,
        result_hash=result.result_hash,
        company_wide=company_wide,
    )


# -- wording ---------------------------------------------------------------------------------------

def format_value(column: str, value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        if column.endswith("_rate") or column.endswith("win_rate"):
            return f"{value:.1%}"
        if "amount" in column:
            return f"${value:,.0f}"
        if any(k in column for k in ("cycle_length", "duration", "days_to_close", "_to_close")):
            return f"{value:,.1f} days"
        if isinstance(value, float) and not value.is_integer():
            return f"{value:,.2f}"
        return f"{int(value):,}"
    text = str(value)
    if column.startswith("metric_time") or column.endswith("__day") or column.endswith("_at"):
        return text[:10]
    return text


def summarise(q: AnswerQuery, labels: Mapping[str, str]) -> str:
    metrics = list(q.request.get("metrics") or [])
    if not q.row_count:
        return "No rows: nothing in the governed data matches."
    if q.row_count == 1 and not [c for c in q.columns if c not in metrics]:
        row = q.rows[0]
        return "; ".join(f"{labels.get(m, m)}: {format_value(m, row.get(m))}" for m in q.columns)
    return f"{q.row_count} row{'s' if q.row_count != 1 else ''}" + (f" (first {len(q.rows)} shown)" if q.truncated else "") + "."


# -- the entry point ------------------------------------------------------------------------------

def answer(
    question: str,
    *,
    layer: LayerLike,
    settings: Any = None,
    as_of: dt.date | None = None,
    scope: AskScope | None = None,
    catalog: Catalog | None = None,
    asker: Any = None,
    ledger: Any = None,
    stages: Sequence[str] = DEFAULT_STAGES,
    actor: str | None = None,
) -> Answer:
    """Answer ``question`` from the governed metrics only.

    ``asker``: a Claude asker (agents.ask.claude.ClaudeAsker); None uses the
    offline grammar. ``make_asker(settings)`` picks Claude when an Anthropic key
    is configured. ``as_of``: the date relative periods count from (default:
    the settings' run date). ``actor``: who the audit trail names when there is no scope.
    """
    if as_of is None:
        as_of = settings.effective_as_of() if settings is not None else dt.date.today()
    catalog = catalog or Catalog.from_layer(layer)
    labels = {name: info.label for name, info in catalog.metrics.items()}
    base = {"question": question, "as_of": as_of, "asked_by": scope.asked_by if scope else None,
            "scope": list(scope.manager_ids) if scope and scope.manager_ids is not None else None}
    if asker is not None:
        out = asker.answer(question, layer=layer, catalog=catalog, as_of=as_of, scope=scope, labels=labels, base=base)
    else:
        out = _answer_offline(question, layer=layer, catalog=catalog, as_of=as_of, scope=scope, labels=labels,
                              base=base, stages=stages)
    if ledger is not None:
        qid = "ask_" + hashlib.sha256(json.dumps(out.audit_payload(), sort_keys=True, default=str).encode()).hexdigest()[:24]
        ledger.record_event(out.asked_by or actor or "cli", "ask.answered" if out.answered else "ask.refused", "question", qid,
                            out.audit_payload())
    return out


def _answer_offline(question: str, *, layer: LayerLike, catalog: Catalog, as_of: dt.date, scope: AskScope | None,
                    labels: Mapping[str, str], base: dict[str, Any], stages: Sequence[str]) -> Answer:
    plan = parse(question, catalog=catalog, as_of=as_of, stages=stages, my_team=scope.my_team if scope else None)
    if isinstance(plan, Refusal):
        return Answer(**base, answered=False, text=f"Cannot answer: {plan.reason}.", reason=plan.reason, hints=plan.hints)
    try:
        q = run_plan(plan, layer=layer, catalog=catalog, scope=scope)
    except CannotAnswer as exc:
        return Answer(**base, answered=False, text=f"Cannot answer: {exc.reason}.", reason=exc.reason,
                      hints=exc.hints, interpretation=plan.interpretation)
    text = f"{plan.interpretation[:1].upper()}{plan.interpretation[1:]}: {summarise(q, labels)}"
    if q.company_wide:
        text += " Company-wide: this metric is not kept per team."
    return Answer(**base, answered=True, text=text, interpretation=plan.interpretation, queries=[q])


def answer_as(
    question: str,
    *,
    layer: LayerLike,
    settings: Any,
    approver_id: str | None = None,
    ledger: Any = None,
    offline: bool = False,
    catalog: Catalog | None = None,
) -> Answer:
    """``answer`` for an interface (the console, Slack): the asker's team scope from the settings' delegates
    (None: unrestricted, e.g. sales-ops), Claude when a key is configured unless ``offline``, audited."""
    scope = None
    if approver_id is not None:
        scope = scope_for(approver_id, settings.delegates() if settings is not None else {},
                          is_manager=not approver_id.startswith(("slack:", "teams:")))
    asker = None if offline else make_asker(settings)
    return answer(question, layer=layer, settings=settings, scope=scope, asker=asker, ledger=ledger, catalog=catalog)


def make_asker(settings: Any = None, env: Mapping[str, str] | None = None) -> Any:
    """Claude when ANTHROPIC_API_KEY is set (model and base URL as the drafter's), else None (the offline grammar)."""
    import os

    env = dict(os.environ) if env is None else env
    if not (env.get("ANTHROPIC_API_KEY") or "").strip():
        return None
    from agents.ask.claude import AskConfig, ClaudeAsker

    return ClaudeAsker(AskConfig.from_env(env))
