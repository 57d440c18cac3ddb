"""Loss reasons for the demo CRM's lost deals (issue 16: the deal coach's likely objections).

Each lost deal gets the reason a rep would record, drawn from weights that depend on the segment
and on the stage the deal was lost from (early losses are about budget and priority, late ones about
price, competitors and security). About one lost deal in eight has no reason recorded, as in a real
CRM, so the brief's frequencies count only the deals that have one.

The draw hashes the deal id instead of using the generator's random streams, so adding loss reasons
changes no other row of the demo CRM (its planted risks and ground truth stay as they were).
"""

from __future__ import annotations

import zlib

from connectors.demo.params import CLOSED_LOST

# reason -> weight, per stage the deal was lost from; segments shift the weights below.
REASONS_BY_STAGE: dict[str, dict[str, int]] = {
    "Prospecting": {"No budget this year": 5, "Not a priority now": 6, "Went with a competitor": 1},
    "Qualification": {"No budget this year": 5, "Not a priority now": 4, "Went with a competitor": 2, "Missing integration": 2},
    "Discovery": {"Not a priority now": 3, "Went with a competitor": 4, "Missing integration": 4, "No budget this year": 2},
    "Proposal": {"Price too high": 6, "Went with a competitor": 5, "No decision (status quo)": 3, "Missing integration": 2},
    "Negotiation": {"Price too high": 5, "No decision (status quo)": 4, "Failed security review": 3, "Went with a competitor": 3},
}
SEGMENT_BOOST: dict[str, dict[str, int]] = {
    "smb": {"Price too high": 3, "No budget this year": 2},
    "mid_market": {"Went with a competitor": 2},
    "enterprise": {"Failed security review": 4, "No decision (status quo)": 3},
}
UNRECORDED_SHARE = 1 / 8


def loss_reason(opportunity_id: str, segment: str, entries: list[tuple[str, int]], lost: bool) -> str:
    """The recorded loss reason of a lost deal ('' for won or open deals, and for the unrecorded share)."""
    if not lost or not entries or entries[-1][0] != CLOSED_LOST:
        return ""
    h = zlib.crc32(opportunity_id.encode())
    if (h % 1000) / 1000 < UNRECORDED_SHARE:
        return ""
    stage = entries[-2][0] if len(entries) >= 2 else "Prospecting"
    weights = dict(REASONS_BY_STAGE.get(stage, REASONS_BY_STAGE["Prospecting"]))
    for reason, extra in SEGMENT_BOOST.get(segment, {}).items():
        if reason in weights:
            weights[reason] += extra
    pick = (h // 1000) % sum(weights.values())
    for reason, w in sorted(weights.items()):
        if pick < w:
            return reason
        pick -= w
    return ""
