"""Claude answers questions with tools that can only read the governed semantic layer.

Four tools, all read-only: ``list_metrics``, ``list_dimensions``,
``run_metric_query`` and ``run_saved_query``. A query is structured data
(metric names, group-by names, filters as dimension / operator / values),
validated against the catalog and rendered by agents.ask.plan: there is no
parameter that takes SQL or a filter expression, any unknown field or tool is
refused (and the refusal returned to the model as an error tool result and
kept on the answer), and nothing can write or send. Same client conventions as
the drafter (agents/drafting/claude.py): the anthropic SDK with its retries,
the system prompt and tool list cached, the model id and prices as
configuration, a per-question budget.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from typing import Any

import anthropic
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from agents.ask.answer import Answer, AnswerQuery, AskScope, CannotAnswer, run_plan, summarise
from agents.ask.catalog import Catalog
from agents.ask.plan import Filter, QueryPlan
from agents.drafting.claude import usage_from
from agents.drafting.config import DEFAULT_PRICES, DRAFTER_MODEL_ENV, FALLBACK_PRICE, Budget, ModelPrice, TokenUsage, usage_cost

ASK_MODEL_ENV = "SALES_SUPERVISOR_ASK_MODEL"
CANNOT = "CANNOT ANSWER:"
_CHARS_PER_TOKEN_LOWER_BOUND = 2.5
MAX_ROWS_TO_MODEL = 50

SYSTEM_PROMPT = f"""You answer a sales manager's question about their pipeline using ONLY the governed metrics of a \
semantic layer, through the tools you are given. You cannot write SQL, and you cannot change or send anything.

How to work:
1. Call list_metrics (and list_dimensions for the metrics you pick) to find governed names; never invent names.
2. Call run_metric_query (or run_saved_query) to get the numbers. Filters are structured: a dimension name from \
list_dimensions, an operator, and literal values. Time periods filter the dimension metric_time with >= and <= on \
dates (YYYY-MM-DD), relative to the as-of date you are told.
3. Answer in two to four plain sentences, citing every number exactly as a tool returned it and the query_id it came \
from in brackets, e.g. "Win rate was 25.0% [mfq_...]". Use the metrics' labels, not column names.
If the governed metrics cannot answer the question (a forecast, a reason why, data the layer does not hold, a write), \
reply with "{CANNOT} " followed by one sentence saying why, and nothing else."""

TOOLS: list[dict[str, Any]] = [
    {
        "name": "list_metrics",
        "description": "List the governed metrics (name, label, description) and saved queries. Read-only.",
        "input_schema": {"type": "object", "properties": {}, "additionalProperties": False},
    },
    {
        "name": "list_dimensions",
        "description": "List the dimensions and entities the given metrics can be grouped or filtered by "
                       "(name, kind: categorical | time | entity). Read-only.",
        "input_schema": {
            "type": "object",
            "properties": {"metrics": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
            "required": ["metrics"],
            "additionalProperties": False,
        },
    },
    {
        "name": "run_metric_query",
        "description": "Run one MetricFlow query over governed metrics. Returns query_id, columns and rows. "
                       "Time dimensions group with a grain suffix (metric_time__month). Read-only; no SQL.",
        "input_schema": {
            "type": "object",
            "properties": {
                "metrics": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "group_by": {"type": "array", "items": {"type": "string"}},
                "filters": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "dimension": {"type": "string"},
                            "op": {"type": "string", "enum": ["=", "!=", "<", "<=", ">", ">=", "in", "not in"]},
                            "values": {"type": "array", "items": {"type": ["string", "number", "boolean"]}, "minItems": 1},
                        },
                        "required": ["dimension", "op", "values"],
                        "additionalProperties": False,
                    },
                },
                "order_by": {"type": "array", "items": {"type": "string"}, "description": "metric or group-by names; '-' first for descending"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
            },
            "required": ["metrics"],
            "additionalProperties": False,
        },
    },
    {
        "name": "run_saved_query",
        "description": "Run a saved query by name (see list_metrics). Read-only.",
        "input_schema": {
            "type": "object",
            "properties": {"name": {"type": "string"}},
            "required": ["name"],
            "additionalProperties": False,
        },
    },
]
TOOL_NAMES = tuple(t["name"] for t in TOOLS)


_NUMBER = re.compile(r"(?<![\w.])-?\$?\d[\d,]*(?:\.\d+)?%?(?![\w])")
_IGNORED = re.compile(r"mfq_[0-9a-f]+|\d{4}-\d{2}-\d{2}(?:T[\d:]+)?|\b[qQ][1-4]\b")


def _cell_numbers(queries: list[AnswerQuery]) -> list[float]:
    out: list[float] = []
    for q in queries:
        out.append(float(q.row_count))
        for row in q.rows:
            for v in row.values():
                if isinstance(v, bool):
                    continue
                if isinstance(v, (int, float)):
                    out.extend((float(v), float(v) * 100))
                elif isinstance(v, str):
                    out.extend(float(x) for x in re.findall(r"\d+(?:\.\d+)?", v))
    return out


def unsupported_numbers(text: str, queries: list[AnswerQuery], question: str, as_of: dt.date) -> list[str]:
    """Numbers in the answer that neither a query result (as shown, rounded, or as a percentage), the question
    nor the as-of date contains."""
    cells = _cell_numbers(queries)
    allowed_text = _IGNORED.sub(" ", question) + f" {as_of.year} {as_of.month} {as_of.day}"
    given = {float(x.replace(",", "")) for x in re.findall(r"\d[\d,]*(?:\.\d+)?", allowed_text)}
    bad = []
    for token in _NUMBER.findall(_IGNORED.sub(" ", text)):
        raw = token.lstrip("$").rstrip("%").replace(",", "")
        try:
            value = abs(float(raw))
        except ValueError:
            continue
        decimals = len(raw.split(".")[1]) if "." in raw else 0
        tolerance = 0.5 * 10 ** (-decimals) + 1e-9
        if value in given or any(abs(abs(c) - value) <= tolerance for c in cells):
            continue
        bad.append(token)
    return bad


class MetricQueryInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metrics: list[str] = Field(min_length=1)
    group_by: list[str] = Field(default_factory=list)
    filters: list[Filter] = Field(default_factory=list)
    order_by: list[str] = Field(default_factory=list)
    limit: int | None = Field(default=None, ge=1, le=1000)


class SavedQueryInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str


class ListDimensionsInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metrics: list[str] = Field(min_length=1)


class AskConfig(BaseModel):
    api_key: SecretStr | None = None
    base_url: str | None = None
    model: str = "claude-sonnet-4-5"
    max_tokens: int = Field(default=1024, ge=64, le=8192)
    max_turns: int = Field(default=8, ge=1, le=20, description="Model calls per question (tool round trips).")
    max_retries: int = Field(default=4, ge=0, le=10)
    timeout_s: float = Field(default=60.0, gt=0)
    budget_usd: float = Field(default=0.50, ge=0, description="Cap per question.")
    prices: dict[str, ModelPrice] = Field(default_factory=lambda: dict(DEFAULT_PRICES))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AskConfig:
        """ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL; the model: SALES_SUPERVISOR_ASK_MODEL, else the drafter's."""
        values: dict[str, Any] = {"api_key": env.get("ANTHROPIC_API_KEY") or None,
                                  "base_url": env.get("ANTHROPIC_BASE_URL") or None}
        model = env.get(ASK_MODEL_ENV) or env.get(DRAFTER_MODEL_ENV)
        if model:
            values["model"] = model
        if env.get("SALES_SUPERVISOR_ASK_BUDGET_USD"):
            values["budget_usd"] = float(env["SALES_SUPERVISOR_ASK_BUDGET_USD"])
        return cls(**values)

    def price(self) -> ModelPrice:
        return self.prices.get(self.model, FALLBACK_PRICE)  # as the drafter: an unknown model is priced conservatively

    def cost_usd(self, usage: TokenUsage) -> float:
        return usage_cost(usage, self.price())


class ClaudeAsker:
    def __init__(self, config: AskConfig, *, client: anthropic.Anthropic | None = None) -> None:
        if client is None:
            if config.api_key is None:
                raise ValueError("ClaudeAsker needs an API key (without one, answer() uses the offline grammar)")
            client = anthropic.Anthropic(api_key=config.api_key.get_secret_value(), base_url=config.base_url,
                                         max_retries=config.max_retries, timeout=config.timeout_s)
        self.config = config
        self.client = client
        self.name = f"claude:{config.model}"

    def _params(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        tools = [dict(t) for t in TOOLS]
        tools[-1] = {**tools[-1], "cache_control": {"type": "ephemeral"}}  # the tool list and system prompt are one cached prefix
        return {
            "model": self.config.model,
            "max_tokens": self.config.max_tokens,
            "system": [{"type": "text", "text": SYSTEM_PROMPT, "cache_control": {"type": "ephemeral"}}],
            "tools": tools,
            "messages": messages,
        }

    def _worst_case(self, params: Mapping[str, Any]) -> float:
        chars = len(SYSTEM_PROMPT) + len(json.dumps(params["tools"])) + len(json.dumps(params["messages"]))
        price = self.config.price()
        per_in = max(price.input_per_mtok, price.cache_write_per_mtok)
        return (chars / _CHARS_PER_TOKEN_LOWER_BOUND * per_in + params["max_tokens"] * price.output_per_mtok) / 1_000_000

    def answer(self, question: str, *, layer: Any, catalog: Catalog, as_of: dt.date, scope: AskScope | None,
               labels: Mapping[str, str], base: dict[str, Any]) -> Answer:
        budget = Budget(self.config.budget_usd)
        team = (f" The asker is limited to the team(s) of manager id(s) {', '.join(scope.manager_ids)}; queries are "
                "filtered to them automatically.") if scope and scope.restricted else ""
        messages: list[dict[str, Any]] = [
            {"role": "user", "content": f"As-of date: {as_of.isoformat()}.{team}\nQuestion: {question}"}
        ]
        queries: list[AnswerQuery] = []
        refused: list[str] = []
        spent = 0.0

        def done(answered: bool, text: str, reason: str | None = None) -> Answer:
            return Answer(**base, answered=answered, text=text, reason=reason, engine=self.name, queries=queries,
                          refused_tool_calls=refused, cost_usd=spent)

        for _turn in range(self.config.max_turns):
            params = self._params(messages)
            if not budget.allows(self._worst_case(params)):
                return done(False, "Cannot answer: the per-question budget is spent.", "budget exhausted")
            try:
                message = self.client.messages.create(**params)
            except anthropic.APIStatusError as err:
                return done(False, f"Cannot answer: the model API failed (HTTP {err.status_code}).", f"api: HTTP {err.status_code}")
            except anthropic.APIError as err:
                return done(False, f"Cannot answer: the model API failed ({type(err).__name__}).", f"api: {type(err).__name__}")
            cost = self.config.cost_usd(usage_from(getattr(message, "usage", None), batched=False))
            budget.charge(cost)
            spent += cost
            content = list(message.content or [])
            tool_uses = [b for b in content if getattr(b, "type", None) == "tool_use"]
            if not tool_uses:
                text = " ".join(getattr(b, "text", "") for b in content if getattr(b, "type", None) == "text").strip()
                if not text or text.upper().startswith(CANNOT):
                    reason = text[len(CANNOT):].strip() if text else "the model gave no answer"
                    return done(False, f"Cannot answer: {reason}", reason)
                if not queries:
                    # An answer that rests on no governed query is not an answer.
                    return done(False, "Cannot answer: the model answered without running a governed query.",
                                "no governed query behind the answer")
                unsupported = unsupported_numbers(text, queries, question, as_of)
                if unsupported:
                    # As for drafts: a number that is not in the evidence is not said.
                    reason = f"the model's answer cites numbers not in the query results: {', '.join(unsupported)}"
                    return done(False, f"Cannot answer: {reason}.", reason)
                return done(True, text)
            messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in content]})
            results = []
            for block in tool_uses:
                ok, payload = self._run_tool(block.name, block.input, layer=layer, catalog=catalog, scope=scope,
                                             queries=queries, labels=labels)
                if not ok:
                    refused.append(f"{block.name}: {payload}")
                results.append({"type": "tool_result", "tool_use_id": block.id,
                                "content": json.dumps(payload, default=str) if ok else str(payload),
                                **({} if ok else {"is_error": True})})
            messages.append({"role": "user", "content": results})
        return done(False, "Cannot answer: the model did not finish within the allowed tool calls.", "too many turns")

    def _run_tool(self, name: str, raw: Any, *, layer: Any, catalog: Catalog, scope: AskScope | None,
                  queries: list[AnswerQuery], labels: Mapping[str, str]) -> tuple[bool, Any]:
        """(True, result) or (False, why it is refused). Only the four read-only tools exist."""
        if name not in TOOL_NAMES:
            return False, f"unknown tool {name!r}: the only tools are {', '.join(TOOL_NAMES)} (no SQL, no writes)"
        raw = raw if isinstance(raw, dict) else {}
        try:
            if name == "list_metrics":
                if raw:
                    return False, "list_metrics takes no input"
                return True, {
                    "metrics": [{"name": m.name, "label": m.label, "description": m.description} for m in catalog.metrics.values()],
                    "saved_queries": [{"name": n, "description": d} for n, d in sorted(catalog.saved_queries.items())],
                }
            if name == "list_dimensions":
                args = ListDimensionsInput.model_validate(raw)
                unknown = [m for m in args.metrics if m not in catalog.metrics]
                if unknown:
                    return False, f"not a governed metric: {', '.join(unknown)}"
                return True, {"dimensions": [{"name": g.name, "kind": g.kind, "description": g.description}
                                             for g in catalog.group_bys(args.metrics).values()]}
            if name == "run_saved_query":
                args_s = SavedQueryInput.model_validate(raw)
                plan = QueryPlan(saved_query=args_s.name)
            else:
                args_q = MetricQueryInput.model_validate(raw)
                plan = QueryPlan(metrics=tuple(args_q.metrics), group_by=tuple(args_q.group_by), filters=tuple(args_q.filters),
                                 order_by=tuple(args_q.order_by), limit=args_q.limit)
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(str(x) for x in e['loc']) or '(input)'}: {e['msg']}" for e in err.errors()[:5])
            return False, f"invalid {name} input ({problems}); queries take governed names and literal values only, never SQL"
        try:
            q = run_plan(plan, layer=layer, catalog=catalog, scope=scope)
        except CannotAnswer as exc:
            return False, exc.reason
        queries.append(q)
        return True, {"query_id": q.query_id, "columns": q.columns, "rows": q.rows[:MAX_ROWS_TO_MODEL],
                      "row_count": q.row_count, "company_wide": q.company_wide, "summary": summarise(q, labels)}
