"""LLM spend governance: a cap per UTC day and per rep per day beside the per-run cap, cost per draft
recorded per rep in the ledger, and the template drafter once a cap is reached.

Before a run, each packet reserves what one draft may cost (the drafter's worst case for it, at most
``per_draft_usd``) against what is left of today's cap and of its rep's cap; a packet that finds a cap already reserved goes to the template drafter (fallback reason
``spend_cap``). The LLM's own budget for the run is what is left of the day, so a drafter that checks
the worst case of each call before making it (the Claude drafter) never takes the day past its cap;
a per-rep cap is met through the reservations, so it is exceeded, if at all, by less than one draft.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from agents.autonomy.config import SpendCaps
from agents.drafting.models import EvidencePacket
from agents.drafting.runner import Drafter, DraftRun, draft_all
from agents.drafting.template import TemplateDrafter
from agents.ledger import Ledger
from agents.ledger import autonomy as _store

SPEND_CAP = "spend_cap"


@dataclasses.dataclass
class SpendPlan:
    day: dt.date
    caps: SpendCaps
    spent_today: float
    spent_by_rep: dict[str, float]
    run_budget: float
    capped: dict[str, str]  # packet id -> reason (drafted by the template)


def draft_reservation(drafter: Any, packet: EvidencePacket, caps: SpendCaps) -> float:
    """What one draft may cost: the drafter's own worst case for this packet (the Claude drafter prices every
    input token at the cache-write price and max_tokens out), never more than ``per_draft_usd``."""
    worst = getattr(drafter, "worst_case_cost", None)
    params = getattr(drafter, "request_params", None)
    if callable(worst) and callable(params):
        try:
            return min(caps.per_draft_usd, float(worst(params(packet), batched=False)))
        except Exception:  # noqa: BLE001 - an estimate that fails falls back to the configured figure
            return caps.per_draft_usd
    return caps.per_draft_usd


def plan_spend(
    packets: Sequence[EvidencePacket], caps: SpendCaps, *, day: dt.date, spent_today: float,
    spent_by_rep: dict[str, float], run_cap: float, drafter: Any | None = None,
) -> SpendPlan:
    remaining = max(caps.daily_usd - spent_today, 0.0)
    reserved, rep_reserved = 0.0, defaultdict(float)
    capped: dict[str, str] = {}
    for p in packets:
        cost = draft_reservation(drafter, p, caps)
        rep = p.deal.owner_rep_id
        rep_spent = spent_by_rep.get(rep or "", 0.0) + rep_reserved[rep]
        if reserved >= remaining:
            capped[p.packet_id] = f"{SPEND_CAP}: the daily LLM cap of ${caps.daily_usd:.2f} is reached ({day.isoformat()})"
        elif caps.per_rep_daily_usd is not None and rep and rep_spent >= caps.per_rep_daily_usd:
            capped[p.packet_id] = f"{SPEND_CAP}: the LLM cap of ${caps.per_rep_daily_usd:.2f} a day for rep {rep} is reached"
        else:
            reserved += cost
            rep_reserved[rep] += cost
    return SpendPlan(day, caps, spent_today, dict(spent_by_rep), min(run_cap, remaining), capped)


def governed_draft_all(
    packets: Sequence[EvidencePacket], drafter: Drafter, ledger: Ledger, caps: SpendCaps, *, run_id: str,
    run_cap: float, max_due_days: int | None = None,
) -> tuple[DraftRun, dict[str, Any]]:
    """``draft_all`` within the day's and the reps' caps; records each draft's cost; returns (run, spend metadata)."""
    day = ledger.uow.now().date()
    spent_today, by_rep = _store.spend_on(ledger.uow, day)
    is_template = isinstance(drafter, TemplateDrafter)
    plan = plan_spend(packets, caps, day=day, spent_today=spent_today, spent_by_rep=by_rep, run_cap=run_cap, drafter=drafter)
    run = draft_all(
        packets, drafter, budget_usd=run_cap if is_template else plan.run_budget, max_due_days=max_due_days,
        template_only=None if is_template else plan.capped,
    )
    rows = [
        {"day": day, "packet_id": d.packet_id, "rep_id": d.rep_id, "manager_id": d.manager_id,
         "drafter": d.draft.drafter, "cost_usd": d.cost_usd}
        for d in run.drafts
    ]
    unattributed = run.stats.cost_usd - sum(d.cost_usd for d in run.drafts)
    if unattributed > 1e-9:  # rejected packets cost money too
        rows.append({"day": day, "packet_id": "rejected", "rep_id": None, "manager_id": None, "drafter": drafter.name,
                     "cost_usd": unattributed})
    _store.record_spend(ledger.uow, rows, run_id=run_id)
    return run, spend_summary(ledger, caps, day)


def spend_summary(ledger: Ledger, caps: SpendCaps, day: dt.date) -> dict[str, Any]:
    """Today's spend as KPIs: total and per rep against the caps, drafts, cost per draft, drafts over the per-draft figure."""
    drafts = _store.spend_rows_on(ledger.uow, day)
    total, by_rep = _store.spend_on(ledger.uow, day)
    llm = [d for d in drafts if d.drafter != "template" and d.packet_id != "rejected"]
    capped = [d for d in drafts if d.drafter == "template"]
    return {
        "spend_day": day.isoformat(),
        "spend_today_usd": round(total, 6),
        "spend_daily_cap_usd": caps.daily_usd,
        "spend_cap_reached": total >= caps.daily_usd,
        "spend_per_rep_cap_usd": caps.per_rep_daily_usd,
        "spend_by_rep_usd": {k: round(v, 6) for k, v in sorted(by_rep.items())},
        "drafts_today": len([d for d in drafts if d.packet_id != "rejected"]),
        "llm_drafts_today": len(llm),
        "template_drafts_today": len(capped),
        "cost_per_llm_draft_usd": round(sum(d.cost_usd for d in llm) / len(llm), 6) if llm else None,
        "drafts_over_per_draft_usd": sum(1 for d in llm if d.cost_usd > caps.per_draft_usd),
    }
