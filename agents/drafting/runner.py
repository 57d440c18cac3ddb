"""`draft_all`: the one entry point that turns evidence packets into validated drafts.

Per packet: draft -> validate -> (on failure) redraft once with the validator's
findings -> (on failure again, an API error, or a spent budget) the template
drafter, marked with `fallback_reason`. The template draft is validated too;
nothing unvalidated leaves this function.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from agents.drafting.config import Budget, DrafterConfig
from agents.drafting.models import (
    CoachingDraft,
    DraftedItem,
    DraftOutcome,
    DraftRunStats,
    EvidencePacket,
    TokenUsage,
)
from agents.drafting.template import TemplateDrafter, template_draft
from agents.drafting.validator import validate_draft

DEFAULT_BUDGET_USD = 10.0


@runtime_checkable
class Drafter(Protocol):
    """Anything that turns packets into (unvalidated) outcomes, one per packet, in order."""

    name: str

    def draft(
        self,
        packets: Sequence[EvidencePacket],
        *,
        feedback: Mapping[str, Sequence[str]] | None = None,
        budget: Budget | None = None,
    ) -> list[DraftOutcome]: ...


class RejectedItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    packet_id: str
    flag_id: str
    findings: list[str]


class DraftRun(BaseModel):
    model_config = ConfigDict(extra="forbid")
    drafts: list[DraftedItem] = Field(default_factory=list)
    rejected: list[RejectedItem] = Field(default_factory=list)
    stats: DraftRunStats


def make_drafter(config: DrafterConfig | None = None, *, client: object | None = None) -> Drafter:
    """Claude only when an API key is configured; otherwise the offline template drafter."""
    config = config or DrafterConfig()
    if not config.has_api_key:
        return TemplateDrafter()
    from agents.drafting.claude import ClaudeDrafter

    return ClaudeDrafter(config, client=client)  # type: ignore[arg-type]


def _error_category(error: str) -> str:
    if error == "budget_exhausted":
        return "budget_exhausted"
    if error.startswith("schema:"):
        return "schema_error"
    if error.startswith("batch:"):
        return "batch_error"
    return "api_error"


def draft_all(
    packets: Sequence[EvidencePacket],
    drafter: Drafter,
    *,
    budget_usd: float | None = None,
    max_due_days: int | None = None,
    template_only: Mapping[str, str] | None = None,
) -> DraftRun:
    """``template_only``: packet id -> reason (e.g. a spend cap reached, agents/autonomy/spend.py): those
    packets never reach the LLM; the template drafter drafts them, marked with the reason."""
    started = time.monotonic()
    config: DrafterConfig | None = getattr(drafter, "config", None)
    cap = budget_usd if budget_usd is not None else (config.budget_usd if config else DEFAULT_BUDGET_USD)
    due_days = max_due_days if max_due_days is not None else (config.max_due_days if config else 14)
    budget = Budget(cap)
    is_template = isinstance(drafter, TemplateDrafter)
    batches_before = len(getattr(drafter, "batch_ids", []))
    stats = DraftRunStats(drafter=drafter.name, items=len(packets), budget_usd=cap)

    by_id = {p.packet_id: p for p in packets}
    usage: dict[str, TokenUsage] = {p.packet_id: TokenUsage() for p in packets}
    cost: dict[str, float] = {p.packet_id: 0.0 for p in packets}
    attempts: dict[str, int] = {p.packet_id: 0 for p in packets}
    findings_log: dict[str, list[str]] = {p.packet_id: [] for p in packets}
    accepted: dict[str, CoachingDraft] = {}
    fallback: dict[str, str] = {}
    cache_hits = 0

    def absorb(outcomes: Sequence[DraftOutcome]) -> dict[str, list[str]]:
        """Record outcomes; return findings for the ones to redraft."""
        nonlocal cache_hits
        redo: dict[str, list[str]] = {}
        for o in outcomes:
            pid = o.packet_id
            if pid not in by_id:
                continue
            usage[pid] = usage[pid] + o.usage
            cost[pid] += o.cost_usd
            if o.usage.cache_read_input_tokens > 0:
                cache_hits += 1
            if o.error == "budget_exhausted":
                fallback[pid] = "budget_exhausted"
                continue
            attempts[pid] += 1
            if o.draft is None:
                cat = _error_category(o.error or "")
                if cat == "schema_error":
                    redo[pid] = [o.error or "schema error"]
                else:
                    fallback[pid] = f"{cat}: {o.error}"[:300]
                continue
            found = [str(f) for f in validate_draft(o.draft, by_id[pid], max_due_days=due_days)]
            if found:
                stats.validation_failures += 1
                redo[pid] = found
            else:
                accepted[pid] = o.draft
        return redo

    for pid, reason in (template_only or {}).items():
        if pid in by_id and not is_template:
            fallback[pid] = reason
    to_llm = [p for p in packets if p.packet_id not in fallback]
    redo = absorb(drafter.draft(to_llm, budget=budget)) if to_llm else {}
    for pid, found in redo.items():
        findings_log[pid].extend(found)
    if redo and not is_template:
        stats.llm_retries += len(redo)
        retry_packets = [by_id[pid] for pid in redo]
        second = absorb(drafter.draft(retry_packets, feedback=redo, budget=budget))
        for pid, found in second.items():
            findings_log[pid].extend(found)
            if all(f.startswith("schema:") for f in found):
                fallback[pid] = ("schema_error: " + found[0].split(":", 1)[1].strip())[:300]
            else:
                codes = sorted({f.split(":", 1)[0] for f in found})
                fallback[pid] = "validation_failed: " + ", ".join(codes)

    drafts: list[DraftedItem] = []
    rejected: list[RejectedItem] = []
    for p in packets:
        pid = p.packet_id
        if pid in accepted:
            draft = accepted[pid]
        elif is_template:
            # The template drafter is itself the last resort: nothing to fall back to.
            rejected.append(RejectedItem(packet_id=pid, flag_id=p.flag_id, findings=findings_log[pid]))
            continue
        else:
            reason = fallback.get(pid, "no_outcome")
            draft = template_draft(p, fallback_reason=reason)
            found = [str(f) for f in validate_draft(draft, p, max_due_days=due_days)]
            if found:
                # Evidence or nothing: a packet even the template cannot ground is reported, not drafted.
                rejected.append(RejectedItem(packet_id=pid, flag_id=p.flag_id, findings=findings_log[pid] + found))
                continue
            stats.fallbacks += 1
            key = reason.split(":", 1)[0]
            stats.fallback_reasons[key] = stats.fallback_reasons.get(key, 0) + 1
        drafts.append(
            DraftedItem.from_validated(
                p,
                draft,
                attempts=max(attempts[pid], 1),
                llm_findings=findings_log[pid] if draft.drafter != "template" or draft.fallback_reason else [],
                usage=usage[pid],
                cost_usd=cost[pid],
            )
        )
        if draft.drafter == "template":
            stats.by_template += 1
        else:
            stats.by_llm += 1

    total = TokenUsage()
    for u in usage.values():
        total = total + u
    stats.drafted = len(drafts)
    stats.rejected = len(rejected)
    stats.llm_requests = total.requests
    stats.batches = len(getattr(drafter, "batch_ids", [])) - batches_before
    stats.input_tokens = total.input_tokens
    stats.output_tokens = total.output_tokens
    stats.cache_creation_input_tokens = total.cache_creation_input_tokens
    stats.cache_read_input_tokens = total.cache_read_input_tokens
    stats.cache_hits = cache_hits
    stats.cost_usd = sum(cost.values())
    stats.budget_exhausted = budget.exhausted
    stats.duration_s = round(time.monotonic() - started, 3)
    return DraftRun(drafts=drafts, rejected=rejected, stats=stats)
