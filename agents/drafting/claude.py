"""The Claude drafter: one forced tool call per packet, through the anthropic SDK.

The model's only tool is `submit_coaching_draft`, and tool_choice forces it, so
the answer is always a typed draft (or a schema error), never free text and
never an action. Runs larger than `batch_threshold` go through the Message
Batches API (half price, asynchronous); smaller runs call the Messages API one
packet at a time. The SDK retries 429/5xx/529 with backoff (`max_retries`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anthropic
from pydantic import ValidationError

from agents.drafting.config import Budget, DrafterConfig
from agents.drafting.models import CoachingDraft, DraftOutcome, DraftToolInput, EvidencePacket, TokenUsage
from agents.drafting.prompts import DRAFT_TOOL, DRAFT_TOOL_NAME, SYSTEM_PROMPT, render_user_message

# A conservative characters-per-token ratio for the worst-case cost estimate made before each call.
_CHARS_PER_TOKEN_LOWER_BOUND = 2.5


def usage_from(raw: Any, *, batched: bool) -> TokenUsage:
    if raw is None:
        return TokenUsage(requests=1, batched=batched)
    return TokenUsage(
        input_tokens=getattr(raw, "input_tokens", 0) or 0,
        output_tokens=getattr(raw, "output_tokens", 0) or 0,
        cache_creation_input_tokens=getattr(raw, "cache_creation_input_tokens", 0) or 0,
        cache_read_input_tokens=getattr(raw, "cache_read_input_tokens", 0) or 0,
        requests=1,
        batched=batched,
    )


def _schema_error(err: ValidationError) -> str:
    parts = []
    for e in err.errors()[:6]:
        loc = ".".join(str(x) for x in e.get("loc", ())) or "(root)"
        parts.append(f"{loc}: {e.get('msg')}")
    return "schema: " + "; ".join(parts)


class ClaudeDrafter:
    """Drafts with Claude; returns parsed-but-unvalidated outcomes (validation is `draft_all`'s job)."""

    def __init__(
        self,
        config: DrafterConfig,
        *,
        client: anthropic.Anthropic | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if client is None:
            if not config.has_api_key:
                raise ValueError("ClaudeDrafter needs an API key (use make_drafter to fall back to templates)")
            client = anthropic.Anthropic(
                api_key=config.api_key.get_secret_value(),  # type: ignore[union-attr]
                base_url=config.base_url,
                max_retries=config.max_retries,
                timeout=config.timeout_s,
            )
        self.config = config
        self.client = client
        self.name = f"claude:{config.model}"
        self._sleep = sleep
        self._clock = clock
        self.batch_ids: list[str] = []

    # -- requests ---------------------------------------------------------------------------------
    def request_params(self, packet: EvidencePacket, findings: Sequence[str] | None = None) -> dict[str, Any]:
        cfg = self.config
        params: dict[str, Any] = {
            "model": cfg.model,
            "max_tokens": cfg.max_tokens,
            "system": [{"type": "text", "text": SYSTEM_PROMPT, "cache_control": {"type": "ephemeral"}}],
            "tools": [DRAFT_TOOL],
            "tool_choice": {"type": "tool", "name": DRAFT_TOOL_NAME},
            "messages": [{"role": "user", "content": render_user_message(packet, findings)}],
        }
        if cfg.temperature is not None:
            params["temperature"] = cfg.temperature
        return params

    def worst_case_cost(self, params: Mapping[str, Any], *, batched: bool) -> float:
        """An upper bound on one request's cost: every input token at the cache-write price, max_tokens out."""
        chars = len(SYSTEM_PROMPT) + len(json.dumps(DRAFT_TOOL)) + sum(len(m["content"]) for m in params["messages"])
        in_tokens = chars / _CHARS_PER_TOKEN_LOWER_BOUND + 50
        price = self.config.price()
        per_in = max(price.input_per_mtok, price.cache_write_per_mtok)
        cost = (in_tokens * per_in + params["max_tokens"] * price.output_per_mtok) / 1_000_000
        return cost * (self.config.batch_discount if batched else 1.0)

    # -- responses --------------------------------------------------------------------------------
    def outcome_from_message(self, packet_id: str, message: Any, *, batched: bool) -> DraftOutcome:
        usage = usage_from(getattr(message, "usage", None), batched=batched)
        cost = self.config.cost_usd(usage)
        blocks = [b for b in (getattr(message, "content", None) or []) if getattr(b, "type", None) == "tool_use"]
        block = next((b for b in blocks if getattr(b, "name", None) == DRAFT_TOOL_NAME), None)
        if block is None:
            return DraftOutcome(
                packet_id=packet_id,
                error=f"schema: no {DRAFT_TOOL_NAME} call in the response (stop_reason={getattr(message, 'stop_reason', None)})",
                usage=usage,
                cost_usd=cost,
            )
        raw = block.input if isinstance(block.input, dict) else {"_unparsed": str(block.input)}
        try:
            fields = DraftToolInput.model_validate(raw)
        except ValidationError as err:
            return DraftOutcome(packet_id=packet_id, error=_schema_error(err), usage=usage, cost_usd=cost, raw_tool_input=raw)
        draft = CoachingDraft(**fields.model_dump(), drafter=self.name)
        return DraftOutcome(packet_id=packet_id, draft=draft, usage=usage, cost_usd=cost, raw_tool_input=raw)

    # -- the Drafter interface ------------------------------------------------------------------------
    def draft(
        self,
        packets: Sequence[EvidencePacket],
        *,
        feedback: Mapping[str, Sequence[str]] | None = None,
        budget: Budget | None = None,
    ) -> list[DraftOutcome]:
        budget = budget or Budget(self.config.budget_usd)
        feedback = feedback or {}
        if len(packets) > self.config.batch_threshold:
            return self._draft_batch(packets, feedback, budget)
        return [self._draft_one(p, feedback.get(p.packet_id), budget) for p in packets]

    def _draft_one(self, packet: EvidencePacket, findings: Sequence[str] | None, budget: Budget) -> DraftOutcome:
        params = self.request_params(packet, findings)
        if not budget.allows(self.worst_case_cost(params, batched=False)):
            return DraftOutcome(packet_id=packet.packet_id, error="budget_exhausted")
        try:
            kwargs = dict(params)
            if "temperature" in kwargs:
                kwargs["extra_body"] = {"temperature": kwargs.pop("temperature")}
            message = self.client.messages.create(**kwargs)
        except anthropic.APIStatusError as err:
            return DraftOutcome(packet_id=packet.packet_id, error=f"api: HTTP {err.status_code} after retries: {err.message}"[:300])
        except anthropic.APIError as err:
            return DraftOutcome(packet_id=packet.packet_id, error=f"api: {type(err).__name__}: {err}"[:300])
        outcome = self.outcome_from_message(packet.packet_id, message, batched=False)
        budget.charge(outcome.cost_usd)
        return outcome

    def _draft_batch(
        self, packets: Sequence[EvidencePacket], feedback: Mapping[str, Sequence[str]], budget: Budget
    ) -> list[DraftOutcome]:
        outcomes: dict[str, DraftOutcome] = {}
        requests = []
        reserved = 0.0
        for p in packets:
            params = self.request_params(p, feedback.get(p.packet_id))
            wc = self.worst_case_cost(params, batched=True)
            if not budget.allows(reserved + wc):
                outcomes[p.packet_id] = DraftOutcome(packet_id=p.packet_id, error="budget_exhausted")
                continue
            reserved += wc
            requests.append({"custom_id": p.packet_id, "params": params})
        if requests:
            self._run_batch(requests, outcomes, budget)
        return [outcomes.get(p.packet_id) or DraftOutcome(packet_id=p.packet_id, error="batch: no result") for p in packets]

    def _run_batch(self, requests: list[dict[str, Any]], outcomes: dict[str, DraftOutcome], budget: Budget) -> None:
        cfg = self.config
        try:
            batch = self.client.messages.batches.create(requests=requests)
            self.batch_ids.append(batch.id)
            started = self._clock()
            while batch.processing_status != "ended":
                if self._clock() - started > cfg.batch_timeout_s:
                    try:
                        self.client.messages.batches.cancel(batch.id)
                    except anthropic.APIError:
                        pass
                    for r in requests:
                        outcomes[r["custom_id"]] = DraftOutcome(packet_id=r["custom_id"], error="batch: timed out")
                    return
                self._sleep(cfg.batch_poll_interval_s)
                batch = self.client.messages.batches.retrieve(batch.id)
            for line in self.client.messages.batches.results(batch.id):
                cid = line.custom_id
                result = line.result
                if result.type == "succeeded":
                    outcome = self.outcome_from_message(cid, result.message, batched=True)
                    budget.charge(outcome.cost_usd)
                elif result.type == "errored":
                    err = getattr(result.error, "error", None)
                    outcome = DraftOutcome(
                        packet_id=cid, error=f"batch: errored: {getattr(err, 'type', '?')}: {getattr(err, 'message', '')}"[:300]
                    )
                else:
                    outcome = DraftOutcome(packet_id=cid, error=f"batch: {result.type}")
                outcomes[cid] = outcome
        except anthropic.APIError as err:
            for r in requests:
                outcomes.setdefault(r["custom_id"], DraftOutcome(packet_id=r["custom_id"], error=f"api: batch failed: {err}"[:300]))
