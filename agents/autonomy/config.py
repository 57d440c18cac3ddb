"""The policy's optional ``autonomy:`` section: levels per rule, the L5 bar, high-risk categories,
recipients' preferences (channel, quiet hours, tone) and LLM spend caps.

Every field has a default that keeps the behaviour before autonomy existed (every rule at L3:
drafted for a manager's approval, published after it), except the two things the users asked to
be on by default: quiet hours (no sends to a rep 18:00-08:00 and at weekends, in the rep's time
zone) and the daily spend cap ($10 a day, $0.30 a draft).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Level = Literal[1, 2, 3, 4, 5]
LEVEL_NAMES = {
    1: "L1 answer when asked",
    2: "L2 recommend",
    3: "L3 draft for approval",
    4: "L4 publish after approval",
    5: "L5 send low-risk nudges without per-item approval",
}
# The ledger delivery channels that reach the rep (the only ones L5 may use); crm_note writes to the CRM.
REP_CHANNELS = ("rep_slack", "rep_email")
PREFERRED_CHANNEL = {"slack": "rep_slack", "email": "rep_email", "teams": "rep_teams"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleAutonomy(_Strict):
    level: Level = 3
    low_risk: bool = Field(False, description="The rule's nudges are low-risk: the only ones L5 may send.")


class L5Gate(_Strict):
    """The bar a rule's own record must clear, at start-up and before every L5 send."""

    min_agreement: float = Field(0.9, ge=0, le=1, description="approved / decided by managers on this rule's items.")
    window_business_days: int = Field(10, ge=1)
    min_decisions: int = Field(10, ge=1, description="Fewer human decisions in the window: not enough evidence, no L5.")
    min_eval_pass_rate: float = Field(0.9, ge=0, le=1, description="The live drafter's eval pass rate (as for live mode).")


class HighRisk(_Strict):
    """Never sent at L5, whatever the rule's level."""

    max_amount: float = Field(50_000, ge=0, description="Deals above this amount are high-risk.")
    rules: tuple[str, ...] = Field(("rep_overload",), description="Rules whose items are performance verdicts on a rep.")
    severities: tuple[str, ...] = ("critical",)


def _hhmm(value: str) -> dt.time:
    try:
        return dt.time.fromisoformat(value)
    except ValueError:
        raise ValueError(f"a time of day as HH:MM, got {value!r}") from None


class QuietHours(_Strict):
    start: str = Field("18:00", description="No sends from this time of day (recipient's time zone) ...")
    end: str = Field("08:00", description="... until this time of day.")
    weekends: bool = Field(True, description="No sends on Saturdays and Sundays.")

    @field_validator("start", "end")
    @classmethod
    def _time(cls, v: str) -> str:
        _hhmm(v)
        return v

    @property
    def start_time(self) -> dt.time:
        return _hhmm(self.start)

    @property
    def end_time(self) -> dt.time:
        return _hhmm(self.end)


class Preference(_Strict):
    """One layer of preferences; unset fields fall through (rep -> team -> default)."""

    channel: Literal["slack", "email", "teams"] | None = None
    timezone: str | None = None
    quiet_hours: QuietHours | None = None
    quiet_hours_off: bool | None = Field(None, description="true: sends at any hour for this team or rep.")
    tone: Literal["formal", "casual"] | None = None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                ZoneInfo(v)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {v!r} (use an IANA name such as Europe/Berlin)") from None
        return v


class Preferences(_Strict):
    # Unset fields fall through to the built-in defaults: UTC, quiet hours 18:00-08:00 and weekends, formal tone.
    default: Preference = Field(default_factory=Preference)
    teams: dict[str, Preference] = Field(default_factory=dict, description="manager id -> that team's preferences")
    reps: dict[str, Preference] = Field(default_factory=dict, description="rep id -> that rep's preferences")


class SpendCaps(_Strict):
    daily_usd: float = Field(10.0, ge=0, description="LLM spend per UTC day, all runs together.")
    per_draft_usd: float = Field(0.30, gt=0, description="What one draft may cost; reserved per draft against the caps.")
    per_rep_daily_usd: float | None = Field(1.50, ge=0, description="LLM spend per rep per UTC day (null: no per-rep cap).")


class AutonomySettings(_Strict):
    default_level: Level = 3
    rules: dict[str, RuleAutonomy] = Field(default_factory=dict)
    l5: L5Gate = Field(default_factory=L5Gate)
    high_risk: HighRisk = Field(default_factory=HighRisk)
    preferences: Preferences = Field(default_factory=Preferences)
    spend: SpendCaps = Field(default_factory=SpendCaps)

    @model_validator(mode="after")
    def _l5_only_low_risk(self) -> AutonomySettings:
        for rule_id, cfg in self.rules.items():
            if cfg.level == 5 and not cfg.low_risk:
                raise ValueError(f"rule {rule_id}: level 5 needs `low_risk: true` (L5 sends only nudges the policy marks low-risk)")
            if cfg.level == 5 and rule_id in self.high_risk.rules:
                raise ValueError(f"rule {rule_id}: a high-risk rule (high_risk.rules) can never be set to level 5")
        return self

    def configured_level(self, rule_id: str) -> int:
        cfg = self.rules.get(rule_id)
        return cfg.level if cfg is not None else self.default_level

    def low_risk(self, rule_id: str) -> bool:
        cfg = self.rules.get(rule_id)
        return bool(cfg and cfg.low_risk)

    def l5_rules(self) -> list[str]:
        return sorted(r for r, cfg in self.rules.items() if cfg.level == 5)


def load_autonomy(policy: object | None) -> AutonomySettings:
    """The autonomy settings of a loaded ``RiskPolicy`` (its optional ``autonomy:`` section), or the defaults."""
    spec = getattr(policy, "spec", None)
    found = getattr(spec, "autonomy", None)
    return found if isinstance(found, AutonomySettings) else AutonomySettings()
