"""The review KPIs as the manager_digests asset reports them, from a ledger with decisions."""

from __future__ import annotations

import datetime as dt

from agents.ledger import open_ledger
from agents.review.digests import build_digests
from agents.review.run import review_kpis


def test_kpis_count_reps_decisions_dismissals_and_shadow_agreement(tmp_path):
    reps = [
        {"rep_id": "r1", "rep_name": "Ana Diaz", "manager_id": "m1", "is_active": True},
        {"rep_id": "r2", "rep_name": "Bo Chen", "manager_id": "m1", "is_active": True},
        {"rep_id": "r3", "rep_name": "Cy Lund", "manager_id": "m1", "is_active": False},
    ]
    managers = [{"manager_id": "m1", "manager_name": "Mia Ward"}]
    digests = build_digests([], reps, managers, dt.date(2026, 10, 1))
    with open_ledger(home=tmp_path) as ledger:
        digest = ledger.create_digest("2026-10-01", "m1", dt.date(2026, 10, 1))
        ids = [
            ledger.add_item(digest.digest_id, flag_id=f"f{i}", rule_id=rule, severity="high", draft={}, evidence={},
                            opportunity_id=f"o{i}", rep_id="r1").item_id
            for i, rule in enumerate(["stalled_in_stage", "stalled_in_stage", "amount_swing"])
        ]
        ledger.record_decision(ids[0], "approve", "m1", "cli")
        ledger.record_decision(ids[1], "dismiss", "m1", "cli", reason="already handled")
        ledger.record_decision(ids[2], "approve", "m1", "cli")
        kpis = review_kpis(ledger, digests, reps, 1.0)
    assert kpis["reps_reviewed_share"] == 1.0 and kpis["active_reps"] == 2  # inactive reps don't count
    assert kpis["decisions_by_manager"] == {"m1": 3}
    assert kpis["dismissal_rate_by_rule"] == {"amount_swing": 0.0, "stalled_in_stage": 0.5}
    assert kpis["shadow_agreement_by_rule"] == {"amount_swing": 1.0, "stalled_in_stage": 0.5}
    assert kpis["shadow_agreement_by_manager"] == {"m1": 2 / 3}
    assert kpis["evidence_rate"] == 1.0
