"""Shadow or live, and the kill switch, as configured at start-up (invariant 5).

``AGENT_MODE=shadow|live`` (default shadow) and ``AGENT_SEND_ENABLED=true|false``
(default false: the kill switch is engaged until someone turns sending on).
Live mode is refused unless both gates pass:

- eval: the ``pass_rate`` of the eval stored in the ledger (``sales-supervisor eval``
  records it, audited) for the drafter *and model* live mode will draft with
  (``template``, or ``claude:<SALES_SUPERVISOR_DRAFTER_MODEL>`` when
  ANTHROPIC_API_KEY is set) >= ``AGENT_LIVE_MIN_EVAL_PASS_RATE`` (0.9). An eval
  of another drafter or model does not count, and a results file on disk is
  not read (anyone could write one);
- shadow agreement: approved / decided over the shadow decisions of the last
  ``AGENT_LIVE_WINDOW_BUSINESS_DAYS`` (10) business days >=
  ``AGENT_LIVE_MIN_SHADOW_AGREEMENT`` (0.9).

The ledger holds the mode and the kill switch (all processes agree on them);
this module decides what to ask it for and explains a refusal.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from agents.drafting.config import live_drafter_name
from agents.ledger import GateNotPassed, Ledger

KILL_SWITCH_ACTOR = "env:AGENT_SEND_ENABLED"


class LiveModeRefused(RuntimeError):
    def __init__(self, message: str, gates: list[GateResult]):
        super().__init__(message)
        self.gates = gates


@dataclasses.dataclass(frozen=True)
class GateThresholds:
    min_eval_pass_rate: float = 0.9
    min_shadow_agreement: float = 0.9
    window_business_days: int = 10
    min_shadow_decisions: int = 1


@dataclasses.dataclass(frozen=True)
class GateResult:
    name: str  # "eval" or "shadow_agreement" (the ledger's REQUIRED_LIVE_GATES)
    passed: bool
    value: float | None
    threshold: float
    detail: str

    def describe(self) -> str:
        shown = "missing" if self.value is None else f"{self.value:.3f}"
        verdict = "passed" if self.passed else "FAILED"
        op = ">=" if self.passed else "<"
        return f"{self.name} gate {verdict}: {shown} {op if self.value is not None else 'vs'} {self.threshold:.2f} ({self.detail})"


def _bool(name: str, raw: str | None, default: bool) -> bool:
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {raw!r}")


def _float(name: str, raw: str | None, default: float) -> float:
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be between 0 and 1, got {value}")
    return value


@dataclasses.dataclass(frozen=True)
class ModeSettings:
    mode: Literal["shadow", "live"] = "shadow"
    send_enabled: bool = False
    eval_results_path: Path | None = None  # no longer read by the gate (kept so AGENT_EVAL_RESULTS still parses)
    thresholds: GateThresholds = GateThresholds()
    live_drafter: str = "template"  # the Drafter.name live mode drafts with; its eval (in the ledger) is the gate

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ModeSettings:
        env = os.environ if env is None else env
        mode = (env.get("AGENT_MODE") or "shadow").strip().lower()
        if mode not in ("shadow", "live"):
            raise ValueError(f"AGENT_MODE must be shadow or live, got {env.get('AGENT_MODE')!r}")
        days = env.get("AGENT_LIVE_WINDOW_BUSINESS_DAYS")
        try:
            window = int(days) if days else 10
        except ValueError:
            raise ValueError(f"AGENT_LIVE_WINDOW_BUSINESS_DAYS must be an integer, got {days!r}") from None
        return cls(
            mode=mode,  # type: ignore[arg-type]
            live_drafter=live_drafter_name(dict(env)),
            send_enabled=_bool("AGENT_SEND_ENABLED", env.get("AGENT_SEND_ENABLED"), False),
            eval_results_path=Path(env["AGENT_EVAL_RESULTS"]) if env.get("AGENT_EVAL_RESULTS") else None,
            thresholds=GateThresholds(
                min_eval_pass_rate=_float("AGENT_LIVE_MIN_EVAL_PASS_RATE", env.get("AGENT_LIVE_MIN_EVAL_PASS_RATE"), 0.9),
                min_shadow_agreement=_float("AGENT_LIVE_MIN_SHADOW_AGREEMENT", env.get("AGENT_LIVE_MIN_SHADOW_AGREEMENT"), 0.9),
                window_business_days=window,
            ),
        )


def default_eval_results_path(home: Path | str) -> Path:
    return Path(home) / "evals" / "latest.json"


def eval_gate(ledger: Ledger, drafter: str, threshold: float) -> GateResult:
    """The eval stored in the ledger for exactly ``drafter`` (name and model)."""
    result = ledger.latest_eval(drafter)
    if result is None:
        return GateResult(
            "eval", False, None, threshold,
            f"no eval results in the ledger for drafter {drafter!r}; run `sales-supervisor eval` with the live drafter's settings",
        )
    value = float(result["pass_rate"])
    return GateResult(
        "eval", value >= threshold, value, threshold,
        f"pass_rate of {drafter} recorded {result.get('recorded_at')} by {result.get('recorded_by')}",
    )


def shadow_agreement_gate(ledger: Ledger, as_of: dt.date, thresholds: GateThresholds) -> GateResult:
    stats = ledger.shadow_agreement(as_of, business_days=thresholds.window_business_days, by="all").get("*")
    window = f"{thresholds.window_business_days} business days ending {as_of.isoformat()}"
    decided = stats.decided if stats else 0
    if decided < thresholds.min_shadow_decisions or stats is None or stats.agreement_rate is None:
        return GateResult(
            "shadow_agreement", False, None, thresholds.min_shadow_agreement,
            f"{decided} shadow decision(s) over the last {window}; at least {thresholds.min_shadow_decisions} needed",
        )
    rate = stats.agreement_rate
    return GateResult(
        "shadow_agreement", rate >= thresholds.min_shadow_agreement, rate, thresholds.min_shadow_agreement,
        f"{stats.approved} approved of {decided} shadow decisions over the last {window}",
    )


def evaluate_live_gates(ledger: Ledger, as_of: dt.date, *, home: Path | str, settings: ModeSettings) -> list[GateResult]:
    return [
        eval_gate(ledger, settings.live_drafter, settings.thresholds.min_eval_pass_rate),
        shadow_agreement_gate(ledger, as_of, settings.thresholds),
    ]


def apply_startup_mode(
    ledger: Ledger, settings: ModeSettings, *, home: Path | str, as_of: dt.date | None = None, actor: str = "startup"
) -> str:
    """Bring the ledger's mode and kill switch in line with the configuration; returns the mode.

    Raises ``LiveModeRefused`` (naming each failed gate and its value) when
    live is asked for and a gate fails; the ledger audits the refusal and
    stays in its current mode. The kill switch follows AGENT_SEND_ENABLED,
    but one engaged by a person (any actor other than this configuration) is
    never released here.
    """
    as_of = as_of or dt.date.today()
    if not settings.send_enabled:
        if not ledger.kill_switch_engaged():
            ledger.engage_kill_switch(actor=KILL_SWITCH_ACTOR, reason="AGENT_SEND_ENABLED is false")
    else:
        _release_own_kill_switch(ledger)

    if settings.mode == "shadow":
        ledger.set_mode("shadow", actor=actor, reason="AGENT_MODE=shadow")
        return "shadow"

    gates = evaluate_live_gates(ledger, as_of, home=home, settings=settings)
    try:
        ledger.set_mode("live", actor=actor, reason="AGENT_MODE=live", gates={g.name: g.passed for g in gates})
    except GateNotPassed:
        failed = [g for g in gates if not g.passed]
        message = "live mode refused: " + "; ".join(g.describe() for g in failed)
        passed = [g for g in gates if g.passed]
        if passed:
            message += " (" + "; ".join(g.describe() for g in passed) + ")"
        raise LiveModeRefused(message, gates) from None
    return "live"


def _release_own_kill_switch(ledger: Ledger) -> None:
    if not ledger.kill_switch_engaged():
        return
    # Who engaged it, from the audit trail: only this configuration's own engagement is ours to release.
    rows = ledger.audit_rows(subject_type="ledger", subject_id="kill_switch")
    engaged = [r for r in rows if r.action == "kill_switch.engaged"]
    if engaged and engaged[-1].actor == KILL_SWITCH_ACTOR:
        ledger.release_kill_switch(actor=KILL_SWITCH_ACTOR, reason="AGENT_SEND_ENABLED is true")
