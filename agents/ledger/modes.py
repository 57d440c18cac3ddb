"""Mode (shadow or live) and the kill switch (invariant 5), held in the ledger so every process agrees."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from agents.ledger.audit import format_timestamp

from agents.ledger.deliveries import sends_allowed_in
from agents.ledger.errors import GateNotPassed, LedgerError
from agents.ledger.models import MODES
from agents.ledger.unit_of_work import UnitOfWork

# Both must be recorded as passed before the ledger lets the mode become live (invariant 5).
REQUIRED_LIVE_GATES = ("eval", "shadow_agreement")


def mode(uow: UnitOfWork) -> str:
    with uow.read() as s:
        return uow.get_meta(s, "mode", "shadow")


def kill_switch_engaged(uow: UnitOfWork) -> bool:
    with uow.read() as s:
        return bool(uow.get_meta(s, "kill_switch", {}).get("engaged"))


def sends_allowed(uow: UnitOfWork) -> tuple[bool, str]:
    with uow.read() as s:
        return sends_allowed_in(uow, s)


def set_mode(
    uow: UnitOfWork, new_mode: Literal["shadow", "live"], *, actor: str, reason: str, gates: Mapping[str, bool] | None = None
) -> str:
    """Switch mode. Live needs every gate in ``REQUIRED_LIVE_GATES`` recorded as passed; shadow never does."""
    if new_mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {new_mode!r}")
    gates = dict(gates or {})
    refusal: LedgerError | None = None
    with uow.write() as s:
        current = uow.get_meta(s, "mode", "shadow")
        problems = [f"{g}: not recorded" for g in REQUIRED_LIVE_GATES if g not in gates]
        problems += [f"{g}: failed" for g, ok in gates.items() if not ok]
        if new_mode == "live" and problems:
            uow.audit(
                s, actor=actor, action="mode.refused", subject_type="ledger", subject_id="mode",
                payload={"from": current, "to": new_mode, "reason": reason, "gates": gates, "problems": problems},
            )
            refusal = GateNotPassed("live mode refused: " + "; ".join(problems))
        elif new_mode != current:
            uow.set_meta(s, "mode", new_mode, actor)
            uow.audit(
                s, actor=actor, action="mode.changed", subject_type="ledger", subject_id="mode",
                payload={"from": current, "to": new_mode, "reason": reason, "gates": gates},
            )
    if refusal is not None:
        raise refusal
    return new_mode


def engage_kill_switch(uow: UnitOfWork, *, actor: str, reason: str) -> None:
    """Stop all sends at once: every later claim is refused until released."""
    with uow.write() as s:
        uow.set_meta(s, "kill_switch", {"engaged": True, "by": actor, "reason": reason}, actor)
        uow.audit(s, actor=actor, action="kill_switch.engaged", subject_type="ledger", subject_id="kill_switch", payload={"reason": reason})


def release_kill_switch(uow: UnitOfWork, *, actor: str, reason: str) -> None:
    with uow.write() as s:
        uow.set_meta(s, "kill_switch", {"engaged": False, "by": actor, "reason": reason}, actor)
        uow.audit(s, actor=actor, action="kill_switch.released", subject_type="ledger", subject_id="kill_switch", payload={"reason": reason})


EVAL_META_PREFIX = "eval:"


def record_eval(uow: UnitOfWork, drafter: str, result: Mapping[str, Any], *, actor: str) -> dict[str, Any]:
    """Store an eval result for ``drafter`` (its ``Drafter.name``, model included), audited.

    ``result`` carries at least ``pass_rate``; cases, gate, golden_sha256 and
    run_at are kept when present. The live-mode gate reads only these.
    """
    from agents.ledger.integrity import eval_record

    key = EVAL_META_PREFIX + drafter
    if not drafter or len(key) > 64:
        raise ValueError(f"a drafter name of 1 to {64 - len(EVAL_META_PREFIX)} characters is required, got {drafter!r}")
    rate = result.get("pass_rate")
    if rate is None or not 0 <= float(rate) <= 1:
        raise ValueError(f"pass_rate must be between 0 and 1, got {rate!r}")
    value = {"drafter": drafter, "pass_rate": float(rate), "recorded_by": actor}
    for field in ("cases", "passed_cases", "gate", "gate_passed", "golden_sha256", "run_at"):
        if result.get(field) is not None:
            value[field] = result[field]
    with uow.write() as s:
        value["recorded_at"] = format_timestamp(uow.now())
        uow.set_meta(s, key, value, actor)
        uow.audit(s, actor=actor, action="eval.recorded", subject_type="eval", subject_id=drafter, payload={**value, **eval_record(value)})
    return value


def latest_eval(uow: UnitOfWork, drafter: str) -> dict[str, Any] | None:
    with uow.read() as s:
        return uow.get_meta(s, EVAL_META_PREFIX + drafter, None)
