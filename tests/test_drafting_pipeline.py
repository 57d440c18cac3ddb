"""The coaching_drafts asset through the Claude drafter: the real anthropic client, the Message
Batches API and prompt caching, against a local server speaking the Anthropic wire format."""

from __future__ import annotations

import json

import duckdb
import pytest

from agents.drafting.models import EvidencePacket
from agents.drafting.template import template_draft
from sales_supervisor.pipeline import run_daily_job
from tests.fakes.anthropic_server import FakeAnthropicServer

pytestmark = pytest.mark.slow


def grounded_model(body: dict) -> dict:
    """A well-behaved model: reads the trusted evidence from the prompt and answers with a grounded draft."""
    text = body["messages"][0]["content"]
    evidence = text.split("EVIDENCE (trusted, from the CRM marts and the semantic layer):\n", 1)[1].split("\nDATA GAPS:", 1)[0]
    packet = EvidencePacket.model_validate({**json.loads(evidence), "untrusted_text": {}})
    return template_draft(packet).model_dump(mode="json", exclude={"drafter", "fallback_reason"})


def test_demo_run_through_the_claude_drafter_validates_and_records_cost_and_cache(built_warehouse, monkeypatch):
    with FakeAnthropicServer(grounded_model) as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key-not-real")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        monkeypatch.setenv("SALES_SUPERVISOR_DRAFTING_BATCH_POLL_S", "0")
        summary = run_daily_job(built_warehouse.settings, selection=["risk/coaching_drafts"])
        requests = list(server.requests)
    assert summary.success, summary.failures
    meta = summary.asset_metadata["risk/coaching_drafts"]
    # more items than the batch threshold: one Message Batch, polled to completion
    assert any(r.path.endswith("/v1/messages/batches") and r.method == "POST" for r in requests)
    assert meta["by_llm"] == meta["drafted"] > 0 and meta["fallbacks"] == 0
    assert meta["cost_usd"] > 0 and meta["cache_hits"] > 0
    with duckdb.connect(str(built_warehouse.warehouse), read_only=True) as con:
        drafts = con.execute(
            "select drafter, cost_usd from risk.coaching_drafts where run_id = ?", [summary.run_id]
        ).fetchall()
    assert drafts and all(d.startswith("claude:") for d, _ in drafts)
    assert sum(c for _, c in drafts) > 0
