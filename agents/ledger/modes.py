"""Mode (shadow or live) and the kill switch (invariant 5), held in the ledger so every process agrees."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

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
