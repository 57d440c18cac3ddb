"""The stage playbook: the team's exit criteria per stage and the actions a brief may propose.

A YAML file owned by sales ops (``agents/coach/default_playbook.yaml`` is the default; see the README,
"Edit the stage playbook"). Validated with pydantic: an unknown check, metric or action names the
file and the field, so a typo fails when the brief is asked for, not silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_PLAYBOOK = Path(__file__).with_name("default_playbook.yaml")

# check id -> what it means (computed from the deal's CRM rows in agents/coach/facts.py)
CHECKS: dict[str, str] = {
    "decision_maker_engaged": "a decision maker is on an activity of the deal",
    "champion_engaged": "a champion is on an activity of the deal",
    "technical_evaluator_engaged": "a technical evaluator is on an activity of the deal",
    "influencer_engaged": "an influencer is on an activity of the deal",
    "multithreaded": "two or more contacts are on activities of the deal",
    "meeting_in_stage": "a meeting since the deal entered its stage",
    "dm_meeting_in_stage": "a meeting with a decision maker since the deal entered its stage",
    "champion_touch_14d": "an activity with a champion in the last 14 days",
    "next_step_recorded": "the deal has a next step",
    "close_date_ahead": "the close date is on or after the as-of date",
    "amount_set": "the deal has an amount above zero",
}
# metric (semantic_models/coach.yml) -> what the won deals had done when they left the stage
METRICS: dict[str, str] = {
    "coach_won_exits_with_decision_maker": "had engaged a decision maker",
    "coach_won_exits_with_champion": "had engaged a champion",
    "coach_won_exits_with_influencer": "had engaged an influencer",
    "coach_won_exits_with_technical_evaluator": "had engaged a technical evaluator",
    "coach_won_exits_with_user": "had engaged an end user",
    "coach_won_exits_multithreaded": "had two or more contacts engaged",
    "coach_won_exits_dm_meeting_in_stage": "had met a decision maker in the stage",
    "coach_won_exits_champion_touch": "had an activity with the champion in the 14 days before leaving",
    "coach_won_exits_meeting_in_stage": "had a meeting in the stage",
    "coach_won_exits_meeting_before_exit": "had a meeting in the 14 days before leaving",
}
# buying role -> the metric saying how many won exits had it engaged
ROLE_METRICS: dict[str, str] = {
    "decision_maker": "coach_won_exits_with_decision_maker",
    "champion": "coach_won_exits_with_champion",
    "technical_evaluator": "coach_won_exits_with_technical_evaluator",
    "influencer": "coach_won_exits_with_influencer",
    "user": "coach_won_exits_with_user",
}


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    text: str = Field(min_length=3, max_length=120, description="Imperative, e.g. 'Book a meeting with the decision maker'.")
    who: Literal["rep", "manager"] = "rep"
    check: str = Field(description="The check that, when not met, makes this action a candidate.")
    metric: str = Field(description="The coach_stage_exits metric that ranks it (won exits that had done it).")
    success: str = Field(min_length=3, max_length=200, description="What success looks like.")

    @model_validator(mode="after")
    def _known(self) -> Action:
        if self.check not in CHECKS:
            raise ValueError(f"unknown check {self.check!r} (known: {', '.join(CHECKS)})")
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r} (known: {', '.join(METRICS)})")
        return self


class Criterion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    label: str = Field(min_length=3, max_length=120)
    meddpicc: Literal["M", "E", "D", "P", "I", "C", "C2"] | None = None
    check: str
    question: str = Field(min_length=3, max_length=200, description="The question that closes the gap when not met.")

    @model_validator(mode="after")
    def _known(self) -> Criterion:
        if self.check not in CHECKS:
            raise ValueError(f"unknown check {self.check!r} (known: {', '.join(CHECKS)})")
        return self


class StagePlaybook(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    exit_criteria: list[Criterion] = Field(default_factory=list)
    actions: list[str] = Field(default_factory=list)


class Playbook(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: str = "unversioned"
    role_share_threshold: float = Field(default=0.5, ge=0, le=1)
    champion_silence_days: int = Field(default=21, ge=1, le=365)
    min_sample: int = Field(default=10, ge=1)
    actions: dict[str, Action]
    stages: dict[str, StagePlaybook]

    @model_validator(mode="after")
    def _actions_known(self) -> Playbook:
        if "default" not in self.stages:
            raise ValueError("stages: a 'default' stage is required (used for stages not listed)")
        for name, stage in self.stages.items():
            for a in stage.actions:
                if a not in self.actions:
                    raise ValueError(f"stages.{name}.actions: unknown action {a!r} (known: {', '.join(self.actions)})")
        return self

    def for_stage(self, stage: str | None) -> StagePlaybook:
        return self.stages.get(stage or "", self.stages["default"])


def load_playbook(path: Path | str | None = None) -> Playbook:
    """The playbook at ``path`` (default: the shipped one); errors name the file and the field."""
    import yaml
    from pydantic import ValidationError

    path = Path(path) if path else DEFAULT_PLAYBOOK
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise PlaybookError(f"{path}: stage playbook not found") from None
    except yaml.YAMLError as exc:
        raise PlaybookError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise PlaybookError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return Playbook.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors())
        raise PlaybookError(f"{path}: {problems}") from None


class PlaybookError(ValueError):
    """A stage playbook that cannot be used; the message names the file and the field."""
