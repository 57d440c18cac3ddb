"""Remedy curves (issue 12.3): each rule's claim of what worked comes from a semantic query (cited by id),
says so when the history is too thin, and reaches the template's rationale; comparables are won deals of the
segment that did what the remedy asks."""

from __future__ import annotations

import datetime as dt

from agents.drafting.models import build_packet
from agents.drafting.template import template_draft
from agents.drafting.validator import validate_draft
from agents.evidence import pick_comparables
from agents.remedies import remedy_evidence
from agents.semantic_layer import SemanticQueryRequest, SemanticQueryResult
from tests.test_review_fixtures import AS_OF, make_flag


def _result(qid, rows, metrics):
    return SemanticQueryResult(query_id=qid, request=SemanticQueryRequest(metrics=tuple(metrics), group_by=("opportunity__segment",)),
                               sql="select 1", manifest_hash="h", columns=tuple(rows[0]) if rows else (), rows=tuple(rows), result_hash="r")


DEAL = _result("mfq_deal", [
    {"opportunity__segment": "smb", "remedy_won_deals": 19, "won_with_dm_meeting": 14, "dm_meeting_to_close_p50": 21.0,
     "slipped_deals": 40, "slipped_win_rate": 0.15, "swing_deals": 4, "swing_win_rate": 0.25},
    {"opportunity__segment": "enterprise", "remedy_won_deals": 4, "won_with_dm_meeting": 3, "dm_meeting_to_close_p50": 90.0,
     "slipped_deals": 2, "slipped_win_rate": 0.5, "swing_deals": 1, "swing_win_rate": 0.0},
], ["remedy_won_deals"])
STAGE = _result("mfq_stage", [{"opportunity__segment": "smb", "stage_stint__stage": "Proposal", "stage_deals_won": 88,
                               "days_to_close_p50": 34.0, "stage_win_rate": 0.41}], ["stage_win_rate"])
REPS = _result("mfq_reps", [{"rep": f"r{i}", "open_deals": n} for i, n in enumerate([20, 24, 30, 57])], ["open_deals"])


def test_claims_per_rule_with_query_ids():
    dm = remedy_evidence("no_decision_maker", "smb", "Proposal", DEAL, STAGE, REPS)
    assert dm.semantic_query_id == "mfq_deal" and not dm.thin
    assert dm.claim == ("in the last 4 quarters 14 of 19 won smb deals met a decision maker before closing; "
                        "they closed a median 21 days after the first meeting")
    slip = remedy_evidence("close_date_slipped", "smb", None, DEAL, STAGE, REPS)
    assert "6 of 40 closed smb deals whose close date was pushed twice or more were won (15%)" in slip.claim
    stalled = remedy_evidence("stalled_in_stage", "smb", "Proposal", DEAL, STAGE, REPS)
    assert stalled.semantic_query_id == "mfq_stage" and "closed a median 34 days after entering it" in stalled.claim
    over = remedy_evidence("rep_overload", None, None, DEAL, STAGE, REPS)
    assert over.claim == "the team's median is 27 open deals per rep (4 reps)"


def test_thin_history_says_so():
    thin = remedy_evidence("no_decision_maker", "enterprise", "Proposal", DEAL, STAGE, REPS)
    assert thin.thin and "too few won enterprise deals" in thin.claim
    assert remedy_evidence("amount_swing", "smb", None, DEAL, STAGE, REPS).thin  # 4 swing deals < 10
    assert remedy_evidence("stalled_in_stage", "smb", "Negotiation", DEAL, STAGE, REPS).thin  # no row for that stage
    flag = make_flag("opp-a", "rep-1", rule="no_decision_maker").model_copy(update={"segment": "enterprise"})
    packet = build_packet(flag, {"opportunity_name": "Granite Health - Platform"}, [], AS_OF, remedy=thin)
    draft = template_draft(packet)
    assert "History is thin" in draft.rationale and "median" not in draft.rationale
    assert "mfq_deal" in packet.semantic_query_ids and not validate_draft(draft, packet)


def test_the_rationale_cites_the_remedy_and_a_comparable():
    flag = make_flag("opp-a", "rep-1", rule="no_decision_maker")
    comps = pick_comparables(flag, [
        {"opportunity_id": "o1", "name": "Birch Freight - Renewal", "amount": 11_000.0, "closed_on": dt.date(2026, 8, 1),
         "segment": "smb", "source_url": None, "cycle_days": 60, "days_dm_meeting_to_close": 19, "close_date_pushes": 0, "max_amount_swing": None},
        {"opportunity_id": "o2", "name": "No Meeting Co", "amount": 10_000.0, "closed_on": dt.date(2026, 8, 1),
         "segment": "smb", "source_url": None, "cycle_days": 60, "days_dm_meeting_to_close": None, "close_date_pushes": 0, "max_amount_swing": None},
        {"opportunity_id": "o3", "name": "Other Segment", "amount": 10_000.0, "closed_on": dt.date(2026, 8, 1),
         "segment": "enterprise", "source_url": None, "cycle_days": 60, "days_dm_meeting_to_close": 5, "close_date_pushes": 0, "max_amount_swing": None},
    ], {})
    assert [c["opportunity_id"] for c in comps] == ["o1"] and comps[0]["days_to_close"] == 19
    contacts = [{"contact_id": "c1", "name": "Dana Lee", "title": "VP Finance", "buying_role": "champion"},
                {"contact_id": "c2", "name": "Sam Ortiz", "title": "CFO", "buying_role": "decision_maker"}]
    packet = build_packet(flag, {"opportunity_name": "Acme Logistics - Renewal"}, [], AS_OF, contacts=contacts,
                          comparables=comps, remedy=remedy_evidence("no_decision_maker", "smb", "Proposal", DEAL, STAGE, REPS))
    draft = template_draft(packet)
    assert not validate_draft(draft, packet)
    assert draft.action.startswith("Ask Dana Lee (VP Finance) to introduce Sam Ortiz (CFO) on Acme Logistics - Renewal")
    assert "14 of 19 won smb deals" in draft.rationale and "mfq_deal" in draft.cited_ids


def test_stalled_in_stage_cites_late_exits_that_still_won():
    from agents.remedies import RemedyCurves

    exits = SemanticQueryResult(
        query_id="mfq_exits", request=SemanticQueryRequest(metrics=("late_won_exits",), group_by=("stage_exit__segment",)),
        sql="select 1", manifest_hash="h", columns=("stage_exit__segment", "stage_exit__stage", "late_won_exits", "late_won_exits_after_meeting"),
        rows=({"stage_exit__segment": "smb", "stage_exit__stage": "Proposal", "late_won_exits": 62, "late_won_exits_after_meeting": 55},
              {"stage_exit__segment": "smb", "stage_exit__stage": "Discovery", "late_won_exits": 3, "late_won_exits_after_meeting": 3}),
        result_hash="r",
    )
    curves = RemedyCurves(as_of=AS_OF, deal=DEAL, stage=STAGE, reps=REPS, exits=exits)
    ev = curves.evidence("stalled_in_stage", "smb", "Proposal")
    assert ev.semantic_query_id == "mfq_exits"
    assert ev.claim == ("62 won smb deals left Proposal late (past its p75) and still won; 55 of them had a meeting in "
                        "the 14 days before leaving it")
    assert curves.evidence("stalled_in_stage", "smb", "Discovery").semantic_query_id == "mfq_stage"  # too few: the stage curve
    packet = build_packet(make_flag("opp-a", "rep-1"), {"opportunity_name": "Acme Logistics - Renewal"}, [], AS_OF, remedy=ev)
    draft = template_draft(packet)
    assert not validate_draft(draft, packet) and "55 of them had a meeting" in draft.rationale
