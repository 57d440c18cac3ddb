"""What the manager's next digest says about autonomy: sends made on their behalf and rules that lost L5."""

from __future__ import annotations

import datetime as dt
import json

from agents.ledger import Ledger
from agents.ledger import autonomy as _store

CHANNEL_WORDS = {"rep_slack": "Slack DM", "rep_email": "email", "rep_teams": "Teams"}


def behalf_lines(ledger: Ledger, manager_id: str, *, since: dt.datetime | None = None) -> list[str]:
    """Plain-text lines (renderers escape them): each L5 send since ``since`` and any demotion notice."""
    since = since or ledger.uow.now() - dt.timedelta(days=7)
    lines = []
    for row in reversed(_store.autonomous_sends(ledger.uow, manager_id, since=since)):
        d, item, recall = row["delivery"], row["item"], row["recall"]
        ev = item.evidence or {}
        rep = (ev.get("rep") or {}).get("rep_name") or item.rep_id
        what = ev.get("subject_label") or item.opportunity_id or item.item_id
        action = (item.draft or {}).get("action", "")
        line = (f"Sent on your behalf to {rep} by {CHANNEL_WORDS.get(d.channel, d.channel)} on {d.sent_at:%Y-%m-%d %H:%M} UTC "
                f"({what}, rule {item.rule_id} at L5): {action}")
        if recall is not None:
            line += f" [recalled by {recall.recalled_by} {recall.recalled_at:%Y-%m-%d %H:%M} UTC]"
        elif d.channel == "rep_slack":
            line += f" (recall: sales-supervisor autonomy recall {d.delivery_id})"
        else:
            line += " (email: cannot be recalled)"
        lines.append(line)
    for audit in ledger.audit_rows(subject_type="autonomy"):
        if audit.action == "autonomy.demoted" and audit.at >= since:
            notice = json.loads(audit.payload).get("notice")
            if notice:
                lines.append(notice)
    return lines


def previous_digest_time(ledger: Ledger, manager_id: str, run_id: str) -> dt.datetime | None:
    from sqlalchemy import select

    from agents.ledger.models import Digest

    with ledger.uow.read() as s:
        return s.scalar(
            select(Digest.created_at).where(Digest.manager_id == manager_id, Digest.run_id != run_id)
            .order_by(Digest.created_at.desc()).limit(1)
        )
