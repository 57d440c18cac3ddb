"""The risk policy: which rules run, with which thresholds, for which deals.

A policy is one YAML file (``default_policy.yaml`` is the shipped one) with a
``version`` that every flag records. Each rule can be switched on or off and
has a base severity, optional escalation by how far past its threshold a deal
is, typed parameters, and overrides per segment, per stage and per segment x
stage. On top of that:

* custom rules: a condition in the safe expression language
  (:mod:`agents.risk.expressions`) over the deal's features, with an action hint;
* exclusions: accounts with a tag (e.g. Strategic) skip the listed rules;
* playbooks: named bundles of overrides (quarter_end, new_rep, ...) active in a
  date range and/or when a condition on the deal holds;
* fatigue limits: primary flags per deal, deals per rep per run;
* the data-sufficiency floor for baselines (``min_closed_deals``).

Everything is validated when the file is loaded; a problem raises
:class:`PolicyError` naming the file, the rule and the field.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agents.autonomy.config import AutonomySettings
from agents.risk.expressions import Expression, ExpressionError, compile_expression
from agents.risk.features import FEATURE_NAMES
from agents.risk.models import SEVERITY_RANK, Severity

__all__ = [
    "BUILTIN_RULES",
    "DEFAULT_POLICY_PATH",
    "PolicyError",
    "ResolvedRule",
    "RiskPolicy",
    "load_policy",
]

DEFAULT_POLICY_PATH = Path(__file__).with_name("default_policy.yaml")


class PolicyError(ValueError):
    """A policy file is invalid; the message names the file, the rule and the field."""

    def __init__(self, file: str | Path | None, rule: str | None, field: str | None, message: str) -> None:
        self.file = str(file) if file is not None else "<policy>"
        self.rule = rule
        self.field = field
        where = [self.file]
        if rule:
            where.append(f"rule {rule!r}")
        if field:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {message}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------- rule parameters


class StalledInStageParams(_Strict):
    multiplier: float = Field(2.0, gt=0, description="Fire when days in stage > multiplier x the baseline percentile.")
    percentile: Literal["p50", "p75"] = "p75"


class StaleCycleParams(_Strict):
    multiplier: float = Field(1.0, gt=0, description="Fire when cycle-to-date > multiplier x segment won-cycle p75.")
    require_no_decision_maker: bool = True


class NoRecentActivityParams(_Strict):
    days: int = Field(14, ge=1, description="Fire when the last activity is more than this many days old.")
    fire_when_never_active: bool = Field(
        True, description="A deal with no activity at all fires once it is older than `days`."
    )


class MeetingCadenceDropParams(_Strict):
    recent_days: int = Field(28, ge=7)
    prior_weeks: int = Field(8, ge=1, description="The deal's own earlier cadence: the weeks before the recent window.")
    baseline_share: float = Field(
        0.25, ge=0, le=1, description="Fire when recent meetings/week < this share of the segment x stage baseline."
    )
    baseline_min_prior_meetings: int = Field(
        1, ge=0, description="The baseline test needs at least this many meetings in the prior window."
    )
    own_share: float = Field(0.5, ge=0, le=1, description="Fire when recent meetings/week < this share of the prior rate.")
    min_prior_meetings: int = Field(4, ge=1, description="The own-cadence test needs this many prior meetings.")
    active_within_days: int | None = Field(
        14, ge=1, description="Only deals with some activity this recently (a silent deal is no_recent_activity)."
    )


class NoDecisionMakerParams(_Strict):
    by_stage: str = Field("Proposal", description="From this stage on (by stage_order) a decision maker is expected.")


class CloseDateSlippedParams(_Strict):
    min_pushes: int = Field(2, ge=1)
    past_due: bool = Field(True, description="Also fire when the close date has passed while the deal is open.")
    past_due_grace_days: int = Field(0, ge=0)


class AmountSwingParams(_Strict):
    min_relative_change: float = Field(0.2, gt=0)
    lookback_days: int = Field(30, ge=1)


class MissingRequiredFieldsParams(_Strict):
    required_fields: dict[str, list[str]] = Field(
        default_factory=dict,
        description="stage -> fields required from that stage on (cumulative by stage_order).",
    )


class RepOverloadParams(_Strict):
    max_open_deals: int = Field(50, ge=1)


class CustomRuleParams(_Strict):
    expression: str
    action: str | None = None
    message: str | None = Field(None, description="Flag message; the expression is appended.")


PARAMS_MODELS: dict[str, type[_Strict]] = {
    "stalled_in_stage": StalledInStageParams,
    "stale_cycle": StaleCycleParams,
    "no_recent_activity": NoRecentActivityParams,
    "meeting_cadence_drop": MeetingCadenceDropParams,
    "no_decision_maker": NoDecisionMakerParams,
    "close_date_slipped": CloseDateSlippedParams,
    "amount_swing": AmountSwingParams,
    "missing_required_fields": MissingRequiredFieldsParams,
    "rep_overload": RepOverloadParams,
}
BUILTIN_RULES = tuple(PARAMS_MODELS)
REP_RULES = frozenset({"rep_overload"})
# Deal fields the required-fields rule can check.
REQUIRED_FIELD_NAMES = frozenset({"amount", "close_date", "next_step", "account_id", "owner_rep_id", "opportunity_name"})


# ---------------------------------------------------------------------------- rule configuration


class Escalation(_Strict):
    ratio: float = Field(gt=0, description="How far past the threshold (1.0 = at the threshold).")
    severity: Severity


class RuleOverride(_Strict):
    enabled: bool | None = None
    severity: Severity | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class ScopedOverride(RuleOverride):
    segment: str | None = None
    stage: str | None = None

    @model_validator(mode="after")
    def _scoped(self) -> ScopedOverride:
        if self.segment is None and self.stage is None:
            raise ValueError("an override needs a segment, a stage or both")
        return self


class ReopenWhen(_Strict):
    """When a dismissed flag counts as materially changed (and is proposed again before the cool-off ends)."""

    observed_increase: float | None = Field(
        None, gt=0, description="The observed value grew by at least this much, in the rule's own unit (days, pushes, share)."
    )
    stage_change: bool = Field(True, description="The deal moved to another stage.")
    severity_increase: bool = Field(True, description="The flag's severity rose.")
    amount_change: float | None = Field(None, gt=0, description="The deal amount changed by at least this share (0.2 = 20%).")


class RuleConfig(_Strict):
    reopen_when: ReopenWhen = Field(default_factory=ReopenWhen)
    enabled: bool = True
    severity: Severity = "medium"
    confidence: float = Field(0.8, ge=0, le=1)
    escalation: list[Escalation] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)
    overrides: list[ScopedOverride] = Field(default_factory=list)
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _custom_shorthand(cls, data: Any) -> Any:
        # Custom rules may put expression/action/message at the top level.
        if isinstance(data, dict) and any(k in data for k in ("expression", "action", "message")):
            data = dict(data)
            params = dict(data.get("params") or {})
            for k in ("expression", "action", "message"):
                if k in data:
                    params[k] = data.pop(k)
            data["params"] = params
        return data


class Exclusion(_Strict):
    tag: str = Field(min_length=1)
    rules: list[str] = Field(min_length=1, description="Rule ids, or '*' for every rule.")
    reason: str | None = None


class Playbook(_Strict):
    description: str | None = None
    enabled: bool = True
    active_from: dt.date | None = None
    active_to: dt.date | None = None
    condition: str | None = Field(None, description="An expression over the deal's features.")
    overrides: dict[str, RuleOverride] = Field(default_factory=dict)


class FatigueLimits(_Strict):
    max_primary_flags_per_deal: int = Field(1, ge=1)
    max_deals_per_rep: int = Field(5, ge=1)


class DecisionSettings(_Strict):
    """How long a manager's decision holds (agents/review/recurrence.py)."""

    cool_off_days: int = Field(21, ge=1, description="A dismissed flag may return after this many days even if unchanged.")


class DemotionSettings(_Strict):
    """Rules earn their place: a rule whose backtest lift is below the floor is shown as informational."""

    enabled: bool = True
    lift_floor: float = Field(1.1, gt=0, description="Demote rules whose backtest lift (flagged bad% / unflagged bad%) is below this.")
    rules: list[str] = Field(default_factory=list, description="Rules always shown as informational (e.g. applied from a proposal).")


class BaselineSettings(_Strict):
    min_closed_deals: int = Field(20, ge=1, description="A slice with a smaller sample falls back to a broader one.")
    fallback_confidence: float = Field(0.7, gt=0, le=1, description="Confidence factor per fallback level.")


AIMS = ("stage_advanced", "decision_maker_meeting", "close_date_held", "activity_resumed", "meeting_logged")


class OutcomeRule(_Strict):
    aim: Literal["stage_advanced", "decision_maker_meeting", "close_date_held", "activity_resumed", "meeting_logged"] | None = None
    business_days: int | None = Field(None, ge=1, description="Check this rule's actions after this many business days.")


class OutcomeSettings(_Strict):
    """When an approved action is checked for the change it aimed for (agents/learning/outcomes.py)."""

    check_after_business_days: int = Field(10, ge=1, description="Business days after the flag to look for the change.")
    rules: dict[str, OutcomeRule] = Field(default_factory=dict, description="Per rule: the aim and/or the delay.")


class _PolicyFile(_Strict):
    version: str = Field(min_length=1)
    description: str | None = None
    baselines: BaselineSettings = Field(default_factory=BaselineSettings)
    fatigue: FatigueLimits = Field(default_factory=FatigueLimits)
    decisions: DecisionSettings = Field(default_factory=DecisionSettings)
    demotion: DemotionSettings = Field(default_factory=DemotionSettings)
    autonomy: AutonomySettings = Field(default_factory=AutonomySettings)  # levels, preferences, spend (agents/autonomy)
    rules: dict[str, RuleConfig] = Field(default_factory=dict)
    custom_rules: dict[str, RuleConfig] = Field(default_factory=dict)
    exclusions: list[Exclusion] = Field(default_factory=list)
    playbooks: dict[str, Playbook] = Field(default_factory=dict)
    outcomes: OutcomeSettings = Field(default_factory=OutcomeSettings)
    # Rep-level triggers, scorecard floors and verdict rules (agents/accountability/policy.py).
    accountability: dict[str, Any] | None = None


# ---------------------------------------------------------------------------- the loaded policy


@dataclass(frozen=True)
class ResolvedRule:
    """A rule's effective settings for one deal (base, then segment/stage overrides, then playbooks)."""

    rule_id: str
    enabled: bool
    severity: Severity
    confidence: float
    escalation: tuple[Escalation, ...]
    params: Any
    expression: Expression | None = None
    is_custom: bool = False

    def severity_for(self, ratio: float | None) -> Severity:
        """The base severity, raised by the escalation steps the ratio reaches (never lowered)."""
        sev = self.severity
        if ratio is None:
            return sev
        for step in self.escalation:
            if ratio >= step.ratio and SEVERITY_RANK[step.severity] > SEVERITY_RANK[sev]:
                sev = step.severity
        return sev


def _first_error(exc: ValidationError) -> tuple[str, str]:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err.get("loc", ()))
    return field, err.get("msg", str(exc))


class RiskPolicy:
    """A validated policy. Build with :func:`load_policy` or :meth:`from_dict`."""

    def __init__(self, spec: _PolicyFile, *, source: str = "<policy>", digest: str = "") -> None:
        self.spec = spec
        self.source = source
        self.digest = digest
        self._expressions: dict[tuple[str, str], Expression] = {}
        self._playbook_conditions: dict[str, Expression] = {}
        self._validate()

    # -- construction ---------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<policy>") -> RiskPolicy:
        if not isinstance(data, Mapping):
            raise PolicyError(source, None, None, "the policy must be a mapping (YAML object)")
        digest = hashlib.sha256(yaml.safe_dump(dict(data), sort_keys=True).encode()).hexdigest()
        data = dict(data)
        # Validate section by section so an error names its rule.
        for section in ("rules", "custom_rules"):
            rules = data.get(section) or {}
            if not isinstance(rules, Mapping):
                raise PolicyError(source, None, section, "must be a mapping of rule id -> settings")
            for rule_id, cfg in rules.items():
                try:
                    RuleConfig.model_validate(cfg if cfg is not None else {})
                except ValidationError as exc:
                    field, msg = _first_error(exc)
                    raise PolicyError(source, str(rule_id), field, msg) from None
        if data.get("accountability") is not None:
            from agents.accountability.policy import AccountabilitySettings

            try:
                AccountabilitySettings.model_validate(data["accountability"])
            except ValidationError as exc:
                field, msg = _first_error(exc)
                raise PolicyError(source, None, "accountability" + (f".{field}" if field else ""), msg) from None
        playbooks = data.get("playbooks") or {}
        if isinstance(playbooks, Mapping):
            for name, pb in playbooks.items():
                try:
                    Playbook.model_validate(pb if pb is not None else {})
                except ValidationError as exc:
                    field, msg = _first_error(exc)
                    rule = None
                    if field.startswith("overrides."):
                        rule = field.split(".")[1]
                    raise PolicyError(source, rule, f"playbooks.{name}.{field}", msg) from None
        try:
            spec = _PolicyFile.model_validate(
                {
                    **data,
                    "rules": {k: (v or {}) for k, v in (data.get("rules") or {}).items()},
                    "custom_rules": {k: (v or {}) for k, v in (data.get("custom_rules") or {}).items()},
                    "playbooks": {k: (v or {}) for k, v in (playbooks or {}).items()},
                }
            )
        except ValidationError as exc:
            field, msg = _first_error(exc)
            raise PolicyError(source, None, field, msg) from None
        return cls(spec, source=source, digest=digest)

    # -- validation -----------------------------------------------------------------

    def _validate(self) -> None:
        src = self.source
        for rule_id in self.spec.rules:
            if rule_id not in PARAMS_MODELS:
                raise PolicyError(
                    src, rule_id, None, f"unknown rule; built-in rules: {', '.join(BUILTIN_RULES)} "
                    "(put your own under custom_rules)"
                )
        for rule_id in self.spec.custom_rules:
            if rule_id in PARAMS_MODELS:
                raise PolicyError(src, rule_id, None, "a custom rule cannot reuse a built-in rule id")
        for rule_id, cfg in self.all_rule_configs().items():
            self._check_rule(rule_id, cfg)
        known = set(self.rule_ids)
        for i, ex in enumerate(self.spec.exclusions):
            for r in ex.rules:
                if r != "*" and r not in known:
                    raise PolicyError(src, r, f"exclusions[{i}].rules", f"unknown rule in the exclusion for tag {ex.tag!r}")
        for r in self.spec.demotion.rules:
            if r not in known:
                raise PolicyError(src, r, "demotion.rules", "unknown rule")
        for r in self.spec.outcomes.rules:
            if r not in known:
                raise PolicyError(src, r, "outcomes.rules", "unknown rule")
        for name, pb in self.spec.playbooks.items():
            if pb.active_from and pb.active_to and pb.active_from > pb.active_to:
                raise PolicyError(src, None, f"playbooks.{name}.active_to", "active_to is before active_from")
            if pb.enabled and pb.condition is None and pb.active_from is None and pb.active_to is None:
                raise PolicyError(
                    src, None, f"playbooks.{name}", "an enabled playbook needs a date range or a condition"
                )
            if pb.condition is not None:
                try:
                    self._playbook_conditions[name] = compile_expression(pb.condition, FEATURE_NAMES)
                except ExpressionError as exc:
                    raise PolicyError(src, None, f"playbooks.{name}.condition", str(exc)) from None
            for rule_id, ov in pb.overrides.items():
                if rule_id not in known:
                    raise PolicyError(src, rule_id, f"playbooks.{name}.overrides", "unknown rule")
                self._check_params(rule_id, ov.params, f"playbooks.{name}.overrides.{rule_id}.params")

    def _params_model(self, rule_id: str) -> type[_Strict]:
        return PARAMS_MODELS.get(rule_id, CustomRuleParams)

    def _check_params(self, rule_id: str, override: Mapping[str, Any], where: str) -> Any:
        cfg = self.all_rule_configs()[rule_id]
        merged = {**cfg.params, **override}
        try:
            params = self._params_model(rule_id).model_validate(merged)
        except ValidationError as exc:
            field, msg = _first_error(exc)
            raise PolicyError(self.source, rule_id, f"{where}.{field}" if field else where, msg) from None
        if isinstance(params, CustomRuleParams):
            if params.expression not in {k[1] for k in self._expressions if k[0] == rule_id}:
                try:
                    self._expressions[(rule_id, params.expression)] = compile_expression(
                        params.expression, FEATURE_NAMES
                    )
                except ExpressionError as exc:
                    raise PolicyError(self.source, rule_id, f"{where}.expression", str(exc)) from None
        if isinstance(params, MissingRequiredFieldsParams):
            for stage, fields in params.required_fields.items():
                for f in fields:
                    if f not in REQUIRED_FIELD_NAMES:
                        raise PolicyError(
                            self.source, rule_id, f"{where}.required_fields.{stage}",
                            f"unknown field {f!r}; known: {', '.join(sorted(REQUIRED_FIELD_NAMES))}",
                        )
        return params

    def _check_rule(self, rule_id: str, cfg: RuleConfig) -> None:
        self._check_params(rule_id, {}, "params")
        for i, ov in enumerate(cfg.overrides):
            self._check_params(rule_id, ov.params, f"overrides[{i}].params")
        steps = [s.ratio for s in cfg.escalation]
        if steps != sorted(steps):
            raise PolicyError(self.source, rule_id, "escalation", "escalation steps must be in increasing ratio")

    # -- access ---------------------------------------------------------------------

    @property
    def version(self) -> str:
        return self.spec.version

    @property
    def fatigue(self) -> FatigueLimits:
        return self.spec.fatigue

    @property
    def decisions(self) -> DecisionSettings:
        return self.spec.decisions

    @property
    def outcomes(self) -> OutcomeSettings:
        return self.spec.outcomes

    @property
    def demotion(self) -> DemotionSettings:
        return self.spec.demotion

    def reopen_when(self, rule_id: str) -> ReopenWhen:
        cfg = self.all_rule_configs().get(rule_id)
        return cfg.reopen_when if cfg is not None else ReopenWhen()

    @property
    def baseline_settings(self) -> BaselineSettings:
        return self.spec.baselines

    @property
    def min_closed_deals(self) -> int:
        return self.spec.baselines.min_closed_deals

    def all_rule_configs(self) -> dict[str, RuleConfig]:
        return {**self.spec.rules, **self.spec.custom_rules}

    @property
    def rule_ids(self) -> list[str]:
        """Built-in rules (in policy order), then custom rules."""
        return list(self.spec.rules) + list(self.spec.custom_rules)

    def is_custom(self, rule_id: str) -> bool:
        return rule_id in self.spec.custom_rules

    def excluded_rules(self, tags: Iterable[str]) -> dict[str, str]:
        """rule id -> reason, for an account with these tags ('*' expands to every rule)."""
        lowered = {t.strip().lower() for t in tags}
        out: dict[str, str] = {}
        for ex in self.spec.exclusions:
            if ex.tag.lower() not in lowered:
                continue
            reason = ex.reason or f"account tagged {ex.tag}"
            for r in self.rule_ids if "*" in ex.rules else ex.rules:
                out.setdefault(r, reason)
        return out

    def active_playbooks(self, as_of: dt.date, features: Mapping[str, Any] | None = None) -> list[str]:
        """Playbooks active at ``as_of`` (for a deal, when ``features`` are given), in policy order.

        A playbook with a condition is only active for a deal whose features satisfy it.
        """
        out = []
        for name, pb in self.spec.playbooks.items():
            if not pb.enabled:
                continue
            if pb.active_from and as_of < pb.active_from:
                continue
            if pb.active_to and as_of > pb.active_to:
                continue
            cond = self._playbook_conditions.get(name)
            if cond is not None and (features is None or not cond.test(features)):
                continue
            out.append(name)
        return out

    def resolve(
        self,
        rule_id: str,
        *,
        segment: str | None = None,
        stage: str | None = None,
        playbooks: Iterable[str] = (),
    ) -> ResolvedRule:
        """The rule's settings for a deal: base -> segment -> stage -> segment x stage -> playbooks."""
        cfg = self.all_rule_configs()[rule_id]
        enabled, severity, params = cfg.enabled, cfg.severity, dict(cfg.params)

        def apply(ov: RuleOverride) -> None:
            nonlocal enabled, severity
            if ov.enabled is not None:
                enabled = ov.enabled
            if ov.severity is not None:
                severity = ov.severity
            params.update(ov.params)

        scoped = sorted(
            (ov for ov in cfg.overrides
             if (ov.segment is None or ov.segment == segment) and (ov.stage is None or ov.stage == stage)),
            key=lambda ov: (ov.segment is not None and ov.stage is not None, ov.stage is not None),
        )
        for ov in scoped:
            apply(ov)
        for name in playbooks:
            pb = self.spec.playbooks[name]
            if rule_id in pb.overrides:
                apply(pb.overrides[rule_id])
        model = self._params_model(rule_id).model_validate(params)
        expression = None
        if isinstance(model, CustomRuleParams):
            key = (rule_id, model.expression)
            if key not in self._expressions:  # validated at load; defensive for odd merges
                self._expressions[key] = compile_expression(model.expression, FEATURE_NAMES)
            expression = self._expressions[key]
        return ResolvedRule(
            rule_id=rule_id,
            enabled=enabled,
            severity=severity,
            confidence=cfg.confidence,
            escalation=tuple(cfg.escalation),
            params=model,
            expression=expression,
            is_custom=self.is_custom(rule_id),
        )


def load_policy(path: str | Path | None = None) -> RiskPolicy:
    """Load and validate a policy file (the shipped default when ``path`` is None)."""
    p = Path(path) if path is not None else DEFAULT_POLICY_PATH
    try:
        text = p.read_text()
    except OSError as exc:
        raise PolicyError(p, None, None, f"cannot read the policy file: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(p, None, None, f"not valid YAML: {exc}") from None
    policy = RiskPolicy.from_dict(data if data is not None else {}, source=str(p))
    policy.digest = hashlib.sha256(text.encode()).hexdigest()
    return policy
