"""Spend governance: the daily cap switches drafting to the template and is never exceeded by more than
one draft's cost; a per-rep cap; cost per draft recorded per rep in the ledger; the spend as KPIs."""

from __future__ import annotations

import datetime as dt

import pytest

from agents.autonomy.config import SpendCaps
from agents.autonomy.spend import governed_draft_all, spend_summary
from agents.drafting import build_packet, template_draft
from agents.drafting.models import DraftOutcome, TokenUsage
from agents.drafting.template import TemplateDrafter
from agents.ledger import open_ledger
from agents.risk.models import RiskFlag
from tests.test_drafting_validator import AS_OF, make_flag
from tests.test_review_fixtures import Clock

UTC = dt.timezone.utc


class FakeLlmDrafter:
    """Drafts like the Claude drafter as far as money goes: each call checks the run budget for its worst
    case first (``respects_budget``), then costs ``cost`` dollars."""

    def __init__(self, cost: float, worst_case: float = 0.30, respects_budget: bool = True):
        self.name, self.cost, self.worst_case, self.respects_budget = "claude:fake-model", cost, worst_case, respects_budget
        self.calls: list[str] = []

    def draft(self, packets, *, feedback=None, budget=None):
        out = []
        for p in packets:
            if self.respects_budget and budget is not None and not budget.allows(self.worst_case):
                out.append(DraftOutcome(packet_id=p.packet_id, error="budget_exhausted"))
                continue
            self.calls.append(p.packet_id)
            if budget is not None:
                budget.charge(self.cost)
            draft = template_draft(p).model_copy(update={"drafter": self.name})
            out.append(DraftOutcome(packet_id=p.packet_id, draft=draft, usage=TokenUsage(requests=1), cost_usd=self.cost))
        return out


def packets(n: int, reps: list[str] | None = None):
    out = []
    for i in range(n):
        rep = (reps or [f"rep_{i}"])[i % len(reps or [f"rep_{i}"])] if reps else f"rep_{i}"
        flag = make_flag(flag_id=RiskFlag.make_id("stalled_in_stage", f"opp_{i}", AS_OF), opportunity_id=f"opp_{i}", rep_id=rep)
        out.append(build_packet(flag, {"owner_rep_name": "Dana Reyes", "close_date": dt.date(2026, 10, 30)},
                                [{"record_id": f"opp_{i}", "object": "opportunity", "description": "open, Proposal"}], AS_OF))
    return out


@pytest.fixture
def clock():
    return Clock(dt.datetime(2026, 10, 1, 6, 0, tzinfo=UTC))


@pytest.fixture
def ledger(tmp_path, clock):
    with open_ledger(home=tmp_path, clock=clock) as ledger:
        yield ledger


def test_the_daily_cap_switches_to_the_template_drafter_and_is_never_exceeded(ledger, clock):
    caps = SpendCaps(daily_usd=1.00, per_draft_usd=0.30, per_rep_daily_usd=None)
    drafter = FakeLlmDrafter(cost=0.25)
    run, spend = governed_draft_all(packets(6), drafter, ledger, caps, run_id="run-1", run_cap=10.0)
    by = {d.packet_id: d.draft for d in run.drafts}
    assert len(by) == 6 and len(drafter.calls) == 3
    assert sum(1 for d in by.values() if d.drafter == "claude:fake-model") == 3
    reasons = sorted((d.fallback_reason or "").split(":")[0] for d in by.values() if d.drafter == "template")
    assert reasons == ["budget_exhausted", "spend_cap", "spend_cap"]
    assert spend["spend_today_usd"] == pytest.approx(0.75) and spend["spend_today_usd"] <= caps.daily_usd
    assert spend["llm_drafts_today"] == 3 and spend["template_drafts_today"] == 3

    # A second run the same day: what is left ($0.25) is less than one draft's worst case: all template.
    clock.advance(hours=3)
    run, spend = governed_draft_all(packets(4), drafter, ledger, caps, run_id="run-2", run_cap=10.0)
    assert len(drafter.calls) == 3 and {d.draft.drafter for d in run.drafts} == {"template"}
    assert spend["spend_today_usd"] == pytest.approx(0.75) and spend["spend_cap_reached"] is False

    # The next UTC day has its own cap.
    clock.advance(days=1)
    run, spend = governed_draft_all(packets(2), drafter, ledger, caps, run_id="run-3", run_cap=10.0)
    assert len(drafter.calls) == 5 and spend["spend_day"] == "2026-10-02" and spend["spend_today_usd"] == pytest.approx(0.5)


def test_a_drafter_that_ignores_the_budget_still_stays_within_one_draft_of_the_cap(ledger):
    caps = SpendCaps(daily_usd=1.00, per_draft_usd=0.30, per_rep_daily_usd=None)
    drafter = FakeLlmDrafter(cost=0.29, respects_budget=False)
    for run_id in ("a", "b", "c"):
        _, spend = governed_draft_all(packets(5), drafter, ledger, caps, run_id=run_id, run_cap=10.0)
    assert len(drafter.calls) == 4  # 4 reservations of $0.30 fit under $1.00 + one draft
    assert caps.daily_usd < spend["spend_today_usd"] <= caps.daily_usd + caps.per_draft_usd


def test_the_per_rep_cap_and_cost_per_draft_recorded_per_rep(ledger):
    caps = SpendCaps(daily_usd=10.0, per_draft_usd=0.30, per_rep_daily_usd=0.50)
    drafter = FakeLlmDrafter(cost=0.20)
    run, spend = governed_draft_all(packets(5, reps=["rep_a", "rep_a", "rep_a", "rep_b", "rep_b"]), drafter, ledger, caps,
                                    run_id="r", run_cap=10.0)
    llm_reps = sorted(d.rep_id for d in run.drafts if d.draft.drafter != "template")
    assert llm_reps == ["rep_a", "rep_a", "rep_b", "rep_b"]
    capped = [d for d in run.drafts if d.draft.drafter == "template"]
    assert [d.rep_id for d in capped] == ["rep_a"] and "rep rep_a" in capped[0].draft.fallback_reason
    assert spend["spend_by_rep_usd"] == {"rep_a": pytest.approx(0.4), "rep_b": pytest.approx(0.4)}
    assert spend["cost_per_llm_draft_usd"] == pytest.approx(0.2)
    assert any(r.action == "spend.recorded" for r in ledger.audit_rows(subject_type="spend"))
    assert ledger.verify_audit().ok


def test_the_template_drafter_costs_nothing_and_is_never_capped(ledger):
    caps = SpendCaps(daily_usd=0.0)
    run, spend = governed_draft_all(packets(3), TemplateDrafter(), ledger, caps, run_id="t", run_cap=10.0)
    assert len(run.drafts) == 3 and all(not d.draft.fallback_reason for d in run.drafts)
    assert spend["spend_today_usd"] == 0 and spend["drafts_today"] == 3
    assert spend_summary(ledger, caps, dt.date(2026, 10, 1))["template_drafts_today"] == 3


def test_the_recipients_tone_reaches_the_drafter():
    from agents.autonomy.config import AutonomySettings
    from agents.autonomy.preferences import with_tone
    from agents.drafting.prompts import SYSTEM_PROMPT, render_user_message

    prefs = AutonomySettings.model_validate({"preferences": {"teams": {"mgr_1": {"tone": "casual"}},
                                                             "reps": {"rep_1": {"tone": "formal"}}}}).preferences
    toned = {p.deal.owner_rep_id: p for p in with_tone(packets(3), prefs)}
    assert (toned["rep_0"].tone, toned["rep_1"].tone, toned["rep_2"].tone) == ("casual", "formal", "casual")
    assert "TONE: casual" in render_user_message(toned["rep_0"]) and "TONE line" in SYSTEM_PROMPT
    assert toned["rep_0"].packet_id == packets(1)[0].packet_id  # tone does not change what a packet is


def test_the_spend_is_a_review_kpi(ledger):
    from agents.review.run import review_kpis

    caps = SpendCaps(daily_usd=10.0, per_draft_usd=0.30, per_rep_daily_usd=None)
    governed_draft_all(packets(2), FakeLlmDrafter(cost=0.1), ledger, caps, run_id="k", run_cap=10.0)
    kpis = review_kpis(ledger, [], [], None)
    assert kpis["llm_spend_today_usd"] == pytest.approx(0.2)
    assert kpis["llm_spend_today_by_rep_usd"] == {"rep_0": pytest.approx(0.1), "rep_1": pytest.approx(0.1)}
    assert kpis["sent_on_behalf_7d"] == 0 and kpis["waiting_for_quiet_hours"] == 0


def test_a_drafter_with_a_worst_case_estimate_reserves_that_not_the_per_draft_ceiling(ledger):
    class Estimating(FakeLlmDrafter):
        def request_params(self, packet, findings=None):
            return {"packet": packet.packet_id}

        def worst_case_cost(self, params, *, batched):
            return 0.05

    caps = SpendCaps(daily_usd=1.00, per_draft_usd=0.30, per_rep_daily_usd=None)
    drafter = Estimating(cost=0.04, worst_case=0.05)
    run, spend = governed_draft_all(packets(30), drafter, ledger, caps, run_id="e", run_cap=10.0)
    assert len(drafter.calls) == 20  # $1.00 / $0.05 worst case each, not $1.00 / $0.30
    assert spend["spend_today_usd"] == pytest.approx(0.8) and spend["spend_today_usd"] <= caps.daily_usd
