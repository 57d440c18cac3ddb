"""The coaching drafting agent: one specific, evidence-backed action per flagged deal.

Capability separation (invariant 2): this package returns typed drafts and
nothing else. It imports no outbound channel (Slack, email, CRM writer) and no
Dagster; the Claude drafter's only tool records a draft.

    packets = [build_packet(flag, deal_facts, rows, as_of) for ...]
    run = draft_all(packets, make_drafter(DrafterConfig(...)))
    run.drafts        # list[DraftedItem], every one validated against its packet
    run.stats         # DraftRunStats (counts, fallbacks, tokens, cost, cache hits)
"""

from agents.drafting.config import Budget, DrafterConfig, ModelPrice
from agents.drafting.models import (
    CoachingDraft,
    CrmRow,
    DealFacts,
    DraftedItem,
    DraftOutcome,
    DraftRunStats,
    EvidencePacket,
    TokenUsage,
    build_packet,
)
from agents.drafting.runner import Drafter, DraftRun, RejectedItem, draft_all, make_drafter
from agents.drafting.template import TemplateDrafter, template_draft
from agents.drafting.validator import Finding, validate_draft

__all__ = [
    "Budget",
    "ClaudeDrafter",
    "CoachingDraft",
    "CrmRow",
    "DealFacts",
    "DraftOutcome",
    "DraftRun",
    "DraftRunStats",
    "DraftedItem",
    "Drafter",
    "DrafterConfig",
    "EvidencePacket",
    "Finding",
    "ModelPrice",
    "RejectedItem",
    "TemplateDrafter",
    "TokenUsage",
    "build_packet",
    "draft_all",
    "make_drafter",
    "template_draft",
    "validate_draft",
]


def __getattr__(name: str):
    # The Claude drafter (and the anthropic SDK) load only when asked for: the offline path
    # (no API key, the template drafter) never imports the SDK.
    if name == "ClaudeDrafter":
        from agents.drafting.claude import ClaudeDrafter

        return ClaudeDrafter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
