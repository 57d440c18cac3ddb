"""The brief eval: a golden set of deal briefs across stages and data gaps, and its gate (`make eval-briefs`).

Each case (evals/golden_briefs.yaml) describes a deal at a stage with some data missing (no contacts,
no stage history, no activities, no loss reasons, no team figures, a thin history, no risk run, a
silent champion, a single thread, a passed close date, ...). ``packet_for`` builds its packet
offline (no warehouse: the same ``BriefPacket`` the warehouse reader builds), the drafter writes the
brief, and the case passes when the grounding validator finds nothing and every expectation holds:
``expect`` maps a section to phrases it must contain, ``forbid`` to phrases it must not.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field

from agents.coach.facts import EXIT_METRICS, EXIT_SEGMENT, EXIT_STAGE, LOSS_REASON, LOSS_SEGMENT, LOSS_STAGE
from agents.coach.models import Brief, BriefPacket, Citation, Contact, DealFacts
from agents.coach.playbook import Playbook, load_playbook
from agents.coach.template import draft_brief
from agents.coach.validator import brief_vocabulary, validate_brief

GOLDEN_BRIEFS = Path(__file__).with_name("golden_briefs.yaml")
AS_OF = dt.date(2026, 10, 1)
STAGES = ("Prospecting", "Qualification", "Discovery", "Proposal", "Negotiation")
EXITS_QID, LOSSES_QID = "mfq_eval_exits", "mfq_eval_losses"
REASONS = {"Proposal": [("Price too high", 18), ("Went with a competitor", 12), ("No decision (status quo)", 6)],
           "Negotiation": [("Failed security review", 9), ("Price too high", 7)],
           "Discovery": [("Missing integration", 11), ("Went with a competitor", 8)],
           "Qualification": [("No budget this year", 14), ("Not a priority now", 9)],
           "Prospecting": [("Not a priority now", 15), ("No budget this year", 10)]}


class BriefCase(BaseModel):
    id: str
    stage: str
    segment: str = "enterprise"
    gaps: list[str] = Field(default_factory=list)
    expect: dict[str, list[str]] = Field(default_factory=dict)
    forbid: dict[str, list[str]] = Field(default_factory=dict)


class CaseResult(BaseModel):
    case_id: str
    passed: bool
    failures: list[str] = Field(default_factory=list)


class BriefEvalReport(BaseModel):
    drafter: str
    cases: int
    passed: int
    pass_rate: float
    gate: float
    gate_passed: bool
    results: list[CaseResult]
    cost_usd: float = 0.0


def _ts(days_before: int) -> str:
    return (dt.datetime.combine(AS_OF, dt.time(10)) - dt.timedelta(days=days_before)).isoformat()


def packet_for(case: BriefCase) -> BriefPacket:
    """The case's packet, as agents.coach.facts.deal_packet would build it from a warehouse."""
    g = set(case.gaps)
    order = STAGES.index(case.stage) if case.stage in STAGES else 0
    entered = AS_OF - dt.timedelta(days=9)
    deal = DealFacts(
        opportunity_id=f"opp-{case.id}", name=f"Northwind Traders - Platform License {case.id[-2:]}", account_name="Northwind Traders",
        segment=case.segment, stage=case.stage, stage_entered=None if "no_stage_history" in g else entered,
        amount=None if "no_amount" in g else 84000.0,
        close_date=(AS_OF - dt.timedelta(days=6)) if "close_date_passed" in g else AS_OF + dt.timedelta(days=40),
        created=AS_OF - dt.timedelta(days=20 + 25 * order), owner_rep_id="rep-0101", rep_name="Priya Natarajan",
        manager_id="mgr-0007", manager_name="Tomas Berg", has_next_step="no_next_step" not in g,
        source_url=f"https://crm.example.invalid/record/opp-{case.id}",
    )
    p = BriefPacket(as_of=AS_OF, deal=deal, playbook_version="eval")
    row = deal.model_dump(mode="json")
    p.cite(Citation(id=deal.opportunity_id, kind="crm", table="marts.fct_opportunities",
                    row={**row, "current_stage_entered_at": str(deal.stage_entered) if deal.stage_entered else None}, url=deal.source_url))
    people = [("con-1", "Olga Jensen", "Chief Financial Officer", "decision_maker"),
              ("con-2", "Felix Meyer", "Director of Sales", "champion"),
              ("con-3", "Bianca Ito", "Solutions Architect", "technical_evaluator"),
              ("con-4", "Sam Bauer", "Procurement Lead", "influencer")]
    engaged = {"con-1", "con-2", "con-3", "con-4"}
    if "single_threaded" in g:
        engaged = {"con-4"}
    if "no_champion" in g:
        engaged.discard("con-2")
    if "no_decision_maker" in g:
        engaged.discard("con-1")
    if "no_contacts" in g:
        people, engaged = [], set()
    for i, (cid, name, title, role) in enumerate(people):
        on = cid in engaged
        last = None
        if on:
            last = AS_OF - dt.timedelta(days=(35 if (role == "champion" and "champion_silent" in g) else 2 + i))
        c = Contact(contact_id=cid, name=name, title=title, role=role, last_touch=last, meetings_90d=(3 - i if on else 0) if i < 3 else 1,
                    touches=5 if on else 0, engaged=on)
        p.contacts.append(c)
        p.cite(Citation(id=cid, kind="crm", table="marts.dim_contacts + fct_activities", row={
            "contact_id": cid, "contact_name": name, "title": title, "buying_role": role,
            "last_touch": str(last) if last else None, "meetings_90d": c.meetings_90d, "touches": c.touches}))
    if "no_stage_history" not in g:
        for k, st in enumerate(STAGES[: order + 1]):
            e = AS_OF - dt.timedelta(days=9 + 25 * (order - k))
            s = {"stage_history_id": f"sh-{case.id}-{k}", "stage": st, "entered_at": f"{e}T09:00:00",
                 "exited_at": None if k == order else f"{e + dt.timedelta(days=25)}T09:00:00"}
            p.stints.append(s)
            p.cite(Citation(id=s["stage_history_id"], kind="crm", table="marts.fct_stage_history", row=s))
    if "amount_changed" in g:
        f = {"field_history_id": f"fh-{case.id}-a", "field_name": "amount", "old_value": "60000", "new_value": "84000", "changed_at": _ts(12)}
        p.changes.append(f)
        p.cite(Citation(id=f["field_history_id"], kind="crm", table="marts.fct_field_history", row=f))
    if "close_pushed" in g:
        for j, (o, n) in enumerate([("2026-09-15", "2026-10-20"), ("2026-10-20", str(deal.close_date))]):
            f = {"field_history_id": f"fh-{case.id}-c{j}", "field_name": "close_date", "old_value": o, "new_value": n, "changed_at": _ts(30 - 10 * j)}
            p.changes.append(f)
            p.cite(Citation(id=f["field_history_id"], kind="crm", table="marts.fct_field_history", row=f))
    if "no_activities" not in g and p.contacts:
        ids = sorted(engaged)
        for j, typ in enumerate(("meeting", "call", "email")):
            a = {"activity_id": f"act-{case.id}-{j}", "activity_type": typ, "occurred_at": _ts(2 + j), "contact_ids": ids[j % len(ids)] if ids else None}
            p.activities.append(a)
            p.cite(Citation(id=a["activity_id"], kind="crm", table="marts.fct_activities", row=a))
        if deal.stage_entered and "no_stage_meeting" not in g:
            m = {"activity_id": f"act-{case.id}-0", "occurred_at": _ts(2), "contact_ids": ids[0] if ids else None}
            p.stage_meetings.append(m)
    if "no_risk_run" not in g:
        p.risk_run = {"run_id": "run-eval", "as_of": str(AS_OF)}
        if "flagged" in g:
            f = {"flag_id": f"flag-{case.id}", "rule_id": "close_date_slipped", "severity": "high",
                 "message": "close date pushed 2 times in 30 days"}
            p.flags.append(f)
            p.cite(Citation(id=f["flag_id"], kind="risk", table="risk.risk_flags", row={**f, "run_id": "run-eval"}))
    if "no_team_figures" not in g:
        n = 4 if "thin_history" in g else 120
        shares = {"coach_won_exits_with_decision_maker": 0.83, "coach_won_exits_with_champion": 0.71,
                  "coach_won_exits_with_influencer": 0.4, "coach_won_exits_with_technical_evaluator": 0.62,
                  "coach_won_exits_with_user": 0.2, "coach_won_exits_multithreaded": 0.9,
                  "coach_won_exits_dm_meeting_in_stage": 0.77, "coach_won_exits_champion_touch": 0.66,
                  "coach_won_exits_meeting_in_stage": 0.93, "coach_won_exits_meeting_before_exit": 0.95}
        row = {EXIT_SEGMENT: case.segment, EXIT_STAGE: case.stage, "coach_won_exits": n,
               **{m: round(n * shares[m]) for m in EXIT_METRICS[1:]}}
        p.exits_query_id, p.exits_row = EXITS_QID, row
        p.cite(Citation(id=EXITS_QID, kind="query", table="coach_stage_exits", query={"query_id": EXITS_QID}, rows=[row]))
        loss_rows = [{LOSS_SEGMENT: case.segment, LOSS_STAGE: case.stage, LOSS_REASON: None, "coach_lost_deals": 7}]
        if "no_loss_reasons" not in g:
            stage_reasons = REASONS.get(case.stage, []) if "thin_losses" not in g else [("Price too high", 2)]
            loss_rows += [{LOSS_SEGMENT: case.segment, LOSS_STAGE: case.stage, LOSS_REASON: r, "coach_lost_deals": k} for r, k in stage_reasons]
            if "thin_losses" in g:
                loss_rows += [{LOSS_SEGMENT: case.segment, LOSS_STAGE: "Discovery", LOSS_REASON: "Missing integration", "coach_lost_deals": 9}]
        p.losses_query_id, p.loss_rows = LOSSES_QID, loss_rows
        p.cite(Citation(id=LOSSES_QID, kind="query", table="lost_deals", query={"query_id": LOSSES_QID}, rows=loss_rows))
    return p


def _section_text(brief: Brief, section: str) -> str:
    if section == "next_action":
        na = brief.next_action
        return "" if na is None else " ".join(x.text for x in (na.action, na.reason, na.timing, na.who, na.success, na.alternative) if x)
    if section == "adherence":
        return " ".join(f"{'met' if c.met else 'not met'} {c.criterion}: {c.evidence.text}" for c in brief.adherence)
    value = getattr(brief, section)
    return value.text if hasattr(value, "text") else " ".join(x.text for x in value)


def check_case(case: BriefCase, brief: Brief, packet: BriefPacket, playbook: Playbook) -> CaseResult:
    failures = [str(f) for f in validate_brief(brief, packet, vocabulary=brief_vocabulary(playbook, packet))]
    for section, phrases in case.expect.items():
        text = _section_text(brief, section)
        failures += [f"{section} lacks {ph!r}" for ph in phrases if ph.lower() not in text.lower()]
    for section, phrases in case.forbid.items():
        text = _section_text(brief, section)
        failures += [f"{section} says {ph!r}" for ph in phrases if ph.lower() in text.lower()]
    if len(brief.history) > 5:
        failures.append(f"history has {len(brief.history)} lines (at most 5)")
    return CaseResult(case_id=case.id, passed=not failures, failures=failures)


def load_cases(path: Path = GOLDEN_BRIEFS) -> list[BriefCase]:
    return [BriefCase.model_validate(c) for c in yaml.safe_load(path.read_text(encoding="utf-8"))["cases"]]


def run_brief_eval(path: Path = GOLDEN_BRIEFS, *, claude: Any | None = None, gate: float = 0.9,
                   playbook: Playbook | None = None) -> BriefEvalReport:
    playbook = playbook or load_playbook()
    results, cost = [], 0.0
    for case in load_cases(path):
        packet = packet_for(case)
        brief = draft_brief(packet, playbook)
        if claude is not None:
            body, c, error = claude.draft(packet, brief)
            cost += c
            if body is None:
                results.append(CaseResult(case_id=case.id, passed=False, failures=[error or "no draft"]))
                continue
            brief = Brief(**body.model_dump(), opportunity_id=brief.opportunity_id, as_of=brief.as_of, drafter=claude.name,
                          playbook_version=brief.playbook_version, citations=brief.citations)
        results.append(check_case(case, brief, packet, playbook))
    passed = sum(r.passed for r in results)
    rate = passed / len(results) if results else 0.0
    return BriefEvalReport(drafter=claude.name if claude is not None else "template", cases=len(results), passed=passed,
                           pass_rate=round(rate, 4), gate=gate, gate_passed=bool(results) and rate >= gate, results=results,
                           cost_usd=round(cost, 6))


def format_report(report: BriefEvalReport) -> str:
    lines = [f"Brief eval ({report.drafter}): {report.passed} of {report.cases} cases pass ({report.pass_rate:.0%}); "
             f"gate {report.gate:.0%}: {'PASSED' if report.gate_passed else 'FAILED'}"
             + (f"; cost ${report.cost_usd:.4f}" if report.cost_usd else "")]
    for r in report.results:
        if not r.passed:
            lines.append(f"  FAIL {r.case_id}: {' | '.join(r.failures)[:300]}")
    return "\n".join(lines)
