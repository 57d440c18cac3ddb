"""The ``accountability`` section of the risk policy: rep-level triggers, scorecard floors and
the verdict rules. Optional: a policy without it gets these defaults.

```yaml
accountability:
  scorecard_weekday: monday          # scorecards are built on runs as of this weekday
  scorecard_weeks: 8                 # weeks each scorecard shows
  max_primary_flags_per_rep: 1       # fatigue: other rep triggers ride along as supporting signals
  triggers:
    low_coverage: {params: {min_coverage: 3.0}, overrides: [{segment: enterprise, params: {min_coverage: 2.5}}]}
  floors:
    default: {activities_per_week: 10, ...}
    enterprise: {activities_per_week: 6}
  verdicts:                          # first match wins; names: see VERDICT_NAMES
    - {verdict: CRITICAL, when: "floors_missed >= 4 and weeks_below_activity_floor >= 6"}
```
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agents.risk.expressions import Expression, ExpressionError, compile_expression
from agents.risk.policy import Escalation, ReopenWhen, Severity

Verdict = Literal["EXCEEDS", "MEETS", "BELOW_FLOOR", "BELOW_FLOOR_PIP", "CRITICAL"]
VERDICTS: tuple[str, ...] = ("EXCEEDS", "MEETS", "BELOW_FLOOR", "BELOW_FLOOR_PIP", "CRITICAL")
# Verdicts that could hurt someone: never sent to the rep, manager only, second confirmation.
MANAGER_ONLY_VERDICTS = frozenset({"BELOW_FLOOR_PIP", "CRITICAL"})
SCORECARD_RULE = "weekly_scorecard"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LowCoverageParams(_Strict):
    min_coverage: float = Field(3.0, gt=0, description="Fire when open pipeline closing in the period < this x remaining quota.")
    min_days_left: int = Field(
        14, ge=0, description="With fewer days left in the quarter, judge the next quarter's coverage instead."
    )


class WinRateDropParams(_Strict):
    max_drop_points: float = Field(10.0, gt=0, description="Fire when the recent win rate is more than this many points below the norm.")
    recent_days: int = Field(90, ge=7, description="The recent window.")
    norm_days: int = Field(365, ge=30, description="The rep's own norm: the days before the recent window.")
    min_closed: int = Field(10, ge=1, description="Closed deals needed in each window (smaller samples swing by chance).")
    compare_segment: bool = Field(True, description="Also require the drop against the segment's win rate over the recent window.")


class AttainmentMidpointParams(_Strict):
    min_attainment: float = Field(0.5, gt=0, description="Fire when attainment to date is below this from the quarter's midpoint on.")


class SingleThreadedParams(_Strict):
    from_stage: str = Field("Proposal", description="Open deals at this stage or later (by stage order).")
    max_contacts: int = Field(1, ge=0, description="A deal with at most this many contacts engaged is single-threaded.")
    min_deals: int = Field(2, ge=1, description="Fire when the rep has at least this many such deals.")


class ActivityFloorParams(_Strict):
    min_per_week: float = Field(20.0, ge=0, description="Fire when activities per week fall below this.")
    weeks: int = Field(2, ge=1, description="Average over the last N complete weeks.")
    types: list[str] = Field(default_factory=lambda: ["meeting", "call", "email"], description="Activity types counted.")


TRIGGER_PARAMS: dict[str, type[_Strict]] = {
    "low_coverage": LowCoverageParams,
    "win_rate_drop": WinRateDropParams,
    "attainment_below_midpoint": AttainmentMidpointParams,
    "single_threaded_deals": SingleThreadedParams,
    "activity_below_floor": ActivityFloorParams,
}
TRIGGERS = tuple(TRIGGER_PARAMS)
DEFAULT_SEVERITY: dict[str, Severity] = {
    "low_coverage": "high", "win_rate_drop": "medium", "attainment_below_midpoint": "high",
    "single_threaded_deals": "medium", "activity_below_floor": "medium",
}


class TriggerOverride(_Strict):
    segment: str | None = None
    playbook: str | None = Field(None, description="Applies while this playbook is active (by date).")
    enabled: bool | None = None
    severity: Severity | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class TriggerConfig(_Strict):
    enabled: bool = True
    severity: Severity | None = None
    confidence: float = Field(0.85, ge=0, le=1)
    escalation: list[Escalation] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)
    overrides: list[TriggerOverride] = Field(default_factory=list)
    reopen_when: ReopenWhen = Field(default_factory=ReopenWhen)
    description: str | None = None


class Floors(_Strict):
    """What a team expects of a rep each week (and at any time); a scorecard compares with these."""

    activities_per_week: float = Field(20.0, ge=0)
    meetings_per_week: float = Field(2.0, ge=0)
    pipeline_created_per_week: float = Field(0.0, ge=0, description="Amount of new pipeline a week.")
    coverage: float = Field(2.0, ge=0, description="Open pipeline closing this quarter / remaining quota.")
    attainment_pace: float = Field(0.7, ge=0, description="Attainment to date / share of the quarter elapsed.")
    win_rate: float = Field(0.0, ge=0, le=1, description="Win rate over the last 90 days (0 disables).")
    exceeds_margin: float = Field(1.25, ge=1, description="A floor counts as exceeded at this multiple.")


VERDICT_NAMES = frozenset({
    "floors_missed", "floors_exceeded", "floors_judged", "weeks_below_activity_floor", "weeks_below_meeting_floor",
    "weeks_below_pipeline_floor", "activities_per_week", "meetings_per_week", "pipeline_created_per_week",
    "coverage", "attainment", "attainment_pace", "win_rate", "quarter_elapsed", "previous_verdict_below",
})


class VerdictRule(_Strict):
    verdict: Verdict
    when: str = Field(min_length=1)
    reason: str | None = None


DEFAULT_VERDICTS = [
    VerdictRule(verdict="CRITICAL", when="floors_missed >= 4 and weeks_below_activity_floor >= 6",
                reason="four or more floors missed and activity below floor in 6 of the last 8 weeks"),
    VerdictRule(verdict="BELOW_FLOOR_PIP", when="floors_missed >= 3 and weeks_below_activity_floor >= 4",
                reason="three or more floors missed and activity below floor in 4 of the last 8 weeks"),
    VerdictRule(verdict="BELOW_FLOOR", when="floors_missed >= 1", reason="at least one floor missed"),
    VerdictRule(verdict="EXCEEDS", when="floors_exceeded >= 3 and attainment_pace >= 1.2",
                reason="three or more floors exceeded by the margin and attainment ahead of pace"),
    VerdictRule(verdict="MEETS", when="True", reason="every judged floor met"),
]


class AccountabilitySettings(_Strict):
    enabled: bool = True
    scorecard_weekday: Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "any"] = "monday"
    scorecard_weeks: int = Field(8, ge=1, le=26)
    max_primary_flags_per_rep: int = Field(1, ge=1)
    triggers: dict[str, TriggerConfig] = Field(default_factory=dict)
    floors: dict[str, Floors] = Field(default_factory=dict, description="'default' and per-segment floors.")
    verdicts: list[VerdictRule] = Field(default_factory=lambda: list(DEFAULT_VERDICTS))

    @model_validator(mode="after")
    def _check(self) -> "AccountabilitySettings":
        for tid, cfg in self.triggers.items():
            if tid not in TRIGGER_PARAMS:
                raise ValueError(f"unknown trigger {tid!r}; known: {', '.join(TRIGGERS)}")
            for params in [cfg.params, *[o.params for o in cfg.overrides]]:
                try:
                    TRIGGER_PARAMS[tid].model_validate(params)
                except ValidationError as exc:
                    err = exc.errors()[0]
                    raise ValueError(f"triggers.{tid}.params.{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
        for i, rule in enumerate(self.verdicts):
            try:
                compile_expression(rule.when, VERDICT_NAMES)
            except ExpressionError as exc:
                raise ValueError(f"verdicts[{i}].when: {exc}") from None
        return self

    # -- resolution ------------------------------------------------------------------

    def trigger(self, trigger_id: str, *, segment: str | None = None, playbooks: list[str] = ()) -> "ResolvedTrigger":
        cfg = self.triggers.get(trigger_id, TriggerConfig())
        enabled, severity = cfg.enabled, cfg.severity or DEFAULT_SEVERITY[trigger_id]
        params = dict(cfg.params)
        for ov in cfg.overrides:
            if (ov.segment is None or ov.segment == segment) and (ov.playbook is None or ov.playbook in playbooks):
                if ov.segment is None and ov.playbook is None:
                    continue
                enabled = ov.enabled if ov.enabled is not None else enabled
                severity = ov.severity or severity
                params.update(ov.params)
        return ResolvedTrigger(
            trigger_id, enabled, severity, cfg.confidence, tuple(cfg.escalation), TRIGGER_PARAMS[trigger_id](**params)
        )

    def floors_for(self, segment: str | None) -> Floors:
        base = self.floors.get("default", Floors()).model_dump()
        if segment and segment in self.floors:
            base.update(self.floors[segment].model_dump(exclude_unset=True))
        return Floors(**base)

    def compiled_verdicts(self) -> list[tuple[VerdictRule, Expression]]:
        return [(r, compile_expression(r.when, VERDICT_NAMES)) for r in self.verdicts]

    def is_scorecard_day(self, as_of) -> bool:
        return self.enabled and (self.scorecard_weekday == "any" or WEEKDAYS[as_of.weekday()] == self.scorecard_weekday)


class ResolvedTrigger:
    __slots__ = ("trigger_id", "enabled", "severity", "confidence", "escalation", "params")

    def __init__(self, trigger_id, enabled, severity, confidence, escalation, params) -> None:
        self.trigger_id, self.enabled, self.severity = trigger_id, enabled, severity
        self.confidence, self.escalation, self.params = confidence, escalation, params

    def severity_for(self, ratio: float | None) -> str:
        from agents.risk.models import SEVERITY_RANK

        sev = self.severity
        for step in self.escalation:
            if ratio is not None and ratio >= step.ratio and SEVERITY_RANK[step.severity] > SEVERITY_RANK[sev]:
                sev = step.severity
        return sev


def accountability_settings(policy) -> AccountabilitySettings:
    """The policy's ``accountability`` section (validated when the policy loaded), or the defaults."""
    raw = getattr(policy.spec, "accountability", None)
    return AccountabilitySettings.model_validate(raw or {})
