"""Weekly rep scorecards: the last N complete weeks per rep from the semantic layer against the
team's floors, and a verdict decided by the policy's rules (never by a model).

A scorecard becomes one review item per rep (rule ``weekly_scorecard``, subject ``rep``), so it is
drafted, validated, put in the manager's digest (first, on scorecard day) and decided like any item.
Verdicts that could hurt someone (BELOW_FLOOR_PIP, CRITICAL) are marked manager-only: the ledger
never delivers them to a rep channel (agents/ledger/audience.py).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agents.accountability.evidence import RepRows
from agents.accountability.metrics import RepMetrics, RepMetricSet
from agents.accountability.policy import MANAGER_ONLY_VERDICTS, SCORECARD_RULE, AccountabilitySettings, Floors
from agents.ledger.audience import MANAGER_ONLY_HINT
from agents.risk.models import Baseline, CrmRecordRef, RiskFlag

VERDICT_SEVERITY = {"EXCEEDS": "low", "MEETS": "low", "BELOW_FLOOR": "medium", "BELOW_FLOOR_PIP": "high", "CRITICAL": "critical"}
BELOW = frozenset({"BELOW_FLOOR", "BELOW_FLOOR_PIP", "CRITICAL"})


class ScorecardWeek(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    week_start: dt.date
    activities: int
    meetings: int
    deals_created: int
    pipeline_created: float


class FloorResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    value: float | None
    floor: float
    met: bool
    exceeded: bool
    unit: str


class Scorecard(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    rep_id: str
    rep_name: str | None
    manager_id: str | None
    segment: str | None
    as_of: dt.date
    weeks: list[ScorecardWeek]
    coverage: float | None
    attainment: float | None
    attainment_pace: float | None
    win_rate: float | None
    floors: list[FloorResult]
    scalars: dict[str, Any]
    verdict: str
    verdict_rule: str
    verdict_reason: str | None
    previous_verdict: str | None = None
    crm_records: list[CrmRecordRef] = Field(min_length=1)
    semantic_query_ids: list[str] = Field(min_length=1)

    @property
    def manager_only(self) -> bool:
        return self.verdict in MANAGER_ONLY_VERDICTS

    def summary(self) -> str:
        parts = []
        for f in self.floors:
            if f.value is None:
                continue
            if f.unit == "x":
                v, fl = f"{f.value:.1f}x", f"{f.floor:g}x"
            elif f.unit == "%":
                v, fl = f"{f.value:.0%}", f"{f.floor:.0%}"
            elif f.unit == "amount/week":
                v, fl = f"{f.value:,.0f}/week", f"{f.floor:,.0f}"
            else:
                v, fl = f"{f.value:.1f}/week", f"{f.floor:g}"
            parts.append(f"{f.name} {v} ({'below' if not f.met else 'at or above'} the floor of {fl})")
        return "; ".join(parts)

    def to_flag(self, policy_version: str, open_pipeline: float | None = None) -> RiskFlag:
        msg = (f"Weekly scorecard over the last {len(self.weeks)} complete weeks: {self.verdict} "
               f"({self.verdict_reason or self.verdict_rule}). {self.summary()}.")
        return RiskFlag(
            flag_id=RiskFlag.make_id(SCORECARD_RULE, self.rep_id, self.as_of), rule_id=SCORECARD_RULE, subject="rep",
            rep_id=self.rep_id, manager_id=self.manager_id, segment=self.segment, amount=open_pipeline or None,
            observed=self.verdict, threshold=self.verdict_rule,
            baseline=Baseline(metric="activity_count", value=self.scalars.get("activities_per_week"),
                              slice={"rep": self.rep_id, "weeks": str(len(self.weeks))},
                              semantic_query_id=self.semantic_query_ids[0]),
            severity=VERDICT_SEVERITY[self.verdict], confidence=1.0, message=msg, policy_version=policy_version,
            as_of=self.as_of, crm_records=self.crm_records, semantic_query_ids=self.semantic_query_ids,
            action_hint=MANAGER_ONLY_HINT if self.manager_only else None,
        )


def _floor_results(m: RepMetrics, ms: RepMetricSet, floors: Floors, weeks: list[ScorecardWeek]) -> tuple[list[FloorResult], dict[str, Any]]:
    n = len(weeks)
    acts = sum(w.activities for w in weeks) / n
    meets = sum(w.meetings for w in weeks) / n
    created = sum(w.pipeline_created for w in weeks) / n
    coverage = m.coverage
    attainment = m.attainment if m.quota else None
    elapsed = ms.periods.quarter_elapsed
    pace = (attainment / elapsed) if attainment is not None and elapsed > 0 else None
    win = m.win_rate_recent if m.closed_recent else None
    margin = floors.exceeds_margin
    candidates = [
        ("activities", acts if ms.has_activities else None, floors.activities_per_week, "per week"),
        ("meetings", meets if ms.has_activities else None, floors.meetings_per_week, "per week"),
        ("pipeline created", created, floors.pipeline_created_per_week, "amount/week"),
        ("coverage", coverage, floors.coverage, "x"),
        ("attainment pace", pace, floors.attainment_pace, "x"),
        ("win rate", win, floors.win_rate, "%"),
    ]
    results = [
        FloorResult(name=name, value=None if value is None else round(value, 3), floor=floor,
                    met=value is None or value >= floor, exceeded=value is not None and value >= floor * margin, unit=unit)
        for name, value, floor, unit in candidates
        if floor > 0
    ]
    judged = [r for r in results if r.value is not None]
    scalars = {
        "floors_missed": sum(1 for r in judged if not r.met),
        "floors_exceeded": sum(1 for r in judged if r.exceeded),
        "floors_judged": len(judged),
        "weeks_below_activity_floor": sum(1 for w in weeks if w.activities < floors.activities_per_week) if ms.has_activities else None,
        "weeks_below_meeting_floor": sum(1 for w in weeks if w.meetings < floors.meetings_per_week) if ms.has_activities else None,
        "weeks_below_pipeline_floor": sum(1 for w in weeks if w.pipeline_created < floors.pipeline_created_per_week),
        "activities_per_week": round(acts, 2), "meetings_per_week": round(meets, 2),
        "pipeline_created_per_week": round(created, 2), "coverage": coverage, "attainment": attainment,
        "attainment_pace": pace, "win_rate": win, "quarter_elapsed": round(elapsed, 3),
    }
    return results, scalars


def build_scorecards(
    metrics: RepMetricSet, reps: dict[str, RepRows], settings: AccountabilitySettings, *, as_of: dt.date,
    previous: dict[str, str] | None = None,
) -> list[Scorecard]:
    """One scorecard per active rep, verdict by the first matching rule of ``settings.verdicts``."""
    previous = previous or {}
    rules = settings.compiled_verdicts()
    weeks_of = metrics.periods.weeks[-settings.scorecard_weeks:]
    qids = [metrics.query_id(k) for k in ("activities_by_week", "created_by_week", "pipeline_closing", "coverage_quota",
                                          "coverage_won", "attainment", "win_rate_recent")]
    out = []
    for rep in sorted(reps.values(), key=lambda r: r.rep_id):
        if not rep.is_active:
            continue
        m = metrics.reps.get(rep.rep_id) or RepMetrics(rep.rep_id)
        weeks = []
        for w in weeks_of:
            types = m.activities_by_week.get(w, {})
            n_created, amount = m.created_by_week.get(w, (0, 0.0))
            weeks.append(ScorecardWeek(week_start=w, activities=sum(types.values()), meetings=types.get("meeting", 0),
                                       deals_created=n_created, pipeline_created=amount))
        floors, scalars = _floor_results(m, metrics, settings.floors_for(rep.segment), weeks)
        scalars["previous_verdict_below"] = 1 if previous.get(rep.rep_id) in BELOW else 0
        verdict, rule_text, reason = "MEETS", "True", None
        for rule, expr in rules:
            if expr.test(scalars):
                verdict, rule_text, reason = rule.verdict, rule.when, rule.reason
                break
        records = [CrmRecordRef(object="rep", record_id=rep.rep_id, note=f"scorecard {verdict}")]
        seen = {rep.rep_id}
        for role in ("closing", "won"):
            for d in rep.deals.get(role, [])[:3]:
                if d["opportunity_id"] not in seen:
                    seen.add(d["opportunity_id"])
                    records.append(CrmRecordRef(object="opportunity", record_id=d["opportunity_id"],
                                                source_url=d.get("source_url"), note=f"{role}, {d['amount'] or 0:,.0f}"))
        records += [CrmRecordRef(object="activity", record_id=a["activity_id"], note=f"latest {a['activity_type']}")
                    for a in rep.recent_activities[:2]]
        out.append(Scorecard(
            rep_id=rep.rep_id, rep_name=rep.rep_name, manager_id=rep.manager_id, segment=rep.segment, as_of=as_of,
            weeks=weeks, coverage=scalars["coverage"], attainment=scalars["attainment"],
            attainment_pace=scalars["attainment_pace"], win_rate=scalars["win_rate"], floors=floors, scalars=scalars,
            verdict=verdict, verdict_rule=rule_text, verdict_reason=reason, previous_verdict=previous.get(rep.rep_id),
            crm_records=records, semantic_query_ids=qids,
        ))
    return out
