"""Who an item may reach once approved. Enforced here, in the ledger, so no interface and no
publisher can send around it.

A weekly scorecard whose verdict could hurt someone (BELOW_FLOOR_PIP, CRITICAL) is for the manager
alone: it never reaches a rep channel or the CRM, whoever approves it and in whatever mode, and
approving it takes an explicit second confirmation (audited). Other scorecards (praise, warnings)
reach the rep's channels after approval like any item, but never the CRM (a scorecard is not a note
on a deal).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

SCORECARD_RULE = "weekly_scorecard"
MANAGER_ONLY_VERDICTS = frozenset({"BELOW_FLOOR_PIP", "CRITICAL"})
MANAGER_ONLY_HINT = "manager_only"
REP_CHANNELS = ("rep_slack", "rep_email")


def _flag(item: Any) -> dict[str, Any]:
    evidence = getattr(item, "evidence", None) or {}
    flag = evidence.get("flag") if isinstance(evidence, dict) else None
    return flag if isinstance(flag, dict) else {}


def is_manager_only(item: Any) -> bool:
    """True for an item that must never leave the manager: a PIP or CRITICAL scorecard, or any item
    whose flag says manager_only. Unknown or unreadable evidence on a scorecard counts as manager-only."""
    flag = _flag(item)
    if flag.get("action_hint") == MANAGER_ONLY_HINT:
        return True
    if getattr(item, "rule_id", None) == SCORECARD_RULE:
        verdict = flag.get("observed")
        return verdict is None or str(verdict) in MANAGER_ONLY_VERDICTS
    return False


def allowed_channels(item: Any, channels: Sequence[str]) -> tuple[str, ...]:
    """The delivery channels of ``channels`` this item may ever be sent on."""
    if is_manager_only(item):
        return ()
    if getattr(item, "rule_id", None) == SCORECARD_RULE:
        return tuple(c for c in channels if c in REP_CHANNELS)
    return tuple(channels)
