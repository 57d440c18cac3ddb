"""The ladder's bottom rungs in the digest: an L1 rule's flags are answered when asked (counted as held back,
reachable with ``sales-supervisor explain``), an L2 rule's are shown as recommendations that nothing sends."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agents.autonomy.config import AutonomySettings

L1_KIND = "l1"
L1_WHY = "rule at L1 (answer when asked): not in the digest; `sales-supervisor explain <deal>` answers"
L2_NOTE = "L2 recommend: nothing is sent to the rep for this rule, approved or not; act on it yourself"


def apply_levels(
    shown: Sequence[tuple[Any, Any]], notes: Mapping[str, str], settings: AutonomySettings
) -> tuple[list[tuple[Any, Any]], dict[str, str], list[Any]]:
    """(pairs to show, notes, held back) after the rules' levels."""
    from agents.review.recurrence import HeldBack

    out, held, notes = [], [], dict(notes)
    for flag, draft in shown:
        level = settings.configured_level(flag.rule_id)
        if level == 1:
            held.append(HeldBack(
                flag_id=flag.flag_id, rule_id=flag.rule_id, opportunity_id=flag.opportunity_id, rep_id=flag.rep_id,
                severity=flag.severity, amount=flag.amount, kind=L1_KIND, why=L1_WHY,
            ))
            continue
        if level == 2:
            notes[flag.flag_id] = f"{notes[flag.flag_id]}; {L2_NOTE}" if flag.flag_id in notes else L2_NOTE
        out.append((flag, draft))
    return out, notes, held
