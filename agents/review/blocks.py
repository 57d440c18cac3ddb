"""Block Kit rendering of a digest, of a decision, and of the edit modal.

Slack's limits are enforced here rather than discovered as ``invalid_blocks``:
at most 50 blocks per message (a long digest is split into several
messages, never cutting an item in half), section text up to 3,000
characters, header text up to 150, button text up to 75, plain-text input up
to 3,000. CRM free text (deal names) is escaped, so it cannot inject a link
or a mention.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from agents.review.digests import Digest, DigestEntry, Link, RepSection, format_amount

ACTION_APPROVE = "ss_approve"
ACTION_EDIT = "ss_edit"
ACTION_DISMISS = "ss_dismiss"
ACTION_APPROVE_CONFIRMED = "ss_approve_confirmed"  # a manager-only scorecard: approved after Slack's confirm dialog
ACTION_SNOOZE = "ss_snooze"  # snooze the deal's flag for SlackAppSettings.snooze_days (rules in Ledger.snooze)
ITEM_ACTIONS = {ACTION_APPROVE: "approve", ACTION_EDIT: "edit", ACTION_DISMISS: "dismiss"}
EDIT_CALLBACK_ID = "ss_edit_submit"
EDIT_BLOCK_ID = "edited"
EDIT_INPUT_ACTION_ID = "text"

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_BUTTON_TEXT = 75
MAX_CONTEXT_TEXT = 2000
MAX_INPUT_TEXT = 3000
MAX_FALLBACK_TEXT = 4000

SEVERITY_EMOJI = {"critical": ":red_circle:", "high": ":large_orange_circle:", "medium": ":large_yellow_circle:", "low": ":white_circle:"}
DECISION_LABEL = {"approve": ":white_check_mark: Approved", "edit": ":pencil2: Edited and approved", "dismiss": ":no_entry_sign: Dismissed"}


def escape_mrkdwn(text: Any) -> str:
    """Slack's three control characters; makes CRM text inert (no links, mentions or @channel)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mrkdwn_link(link: Link, *, bold: bool = False) -> str:
    label = escape_mrkdwn(link.label).replace("|", "¦")
    if bold and not link.is_web:
        return label
    if link.is_web and not any(c in link.url for c in "<>| "):
        return f"<{link.url}|{label}>"
    return f"`{label}`" if not link.url else f"{label} `{escape_mrkdwn(link.url)}`"


def _section(text: str, block_id: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, MAX_SECTION_TEXT)}}
    if block_id:
        block["block_id"] = block_id
    return block


def _context(texts: Sequence[str], block_id: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": truncate(t, MAX_CONTEXT_TEXT)} for t in texts[:10]],
    }
    if block_id:
        block["block_id"] = block_id
    return block


def _button(text: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": truncate(text, MAX_BUTTON_TEXT), "emoji": True},
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def entry_blocks(entry: DigestEntry, *, buttons: bool = True) -> list[dict[str, Any]]:
    """An item's blocks: the flag with its baseline, the proposed action, the evidence links, the buttons."""
    flag, draft = entry.flag, entry.draft
    key = entry.item_id or entry.flag.flag_id
    head = (
        f"*{entry.number or entry.rank}. {_mrkdwn_link(entry.deal_link, bold=True)}*  "
        f"{SEVERITY_EMOJI.get(flag.severity, '')} {flag.severity} · confidence {flag.confidence:.0%}"
    )
    amount = format_amount(flag.amount)
    if amount:
        head += f" · {amount}"
    if flag.stage:
        head += f" · {escape_mrkdwn(flag.stage)}"
    lines = [head]
    if entry.note:
        lines.append(f":leftwards_arrow_with_hook: _{escape_mrkdwn(entry.note)}_")
    lines.append(escape_mrkdwn(flag.message))
    if entry.baseline_text:
        lines.append(f"_Baseline:_ {escape_mrkdwn(entry.baseline_text)}")
    blocks = [_section("\n".join(lines), f"flag:{key}")]
    who = draft.get("actor") or "rep"
    due = draft.get("due_date")
    proposed = f"*Proposed action* ({escape_mrkdwn(who)}{', due ' + escape_mrkdwn(due) if due else ''}): {escape_mrkdwn(draft.get('action', ''))}"
    if draft.get("rationale"):
        proposed += f"\n_Why:_ {escape_mrkdwn(draft['rationale'])}"
    blocks.append(_section(proposed, f"draft:{key}"))
    crm = "CRM: " + " · ".join(_mrkdwn_link(link) for link in entry.shown_crm_links)
    if entry.hidden_crm_links:
        crm += f" (+{entry.hidden_crm_links} more)"
    if entry.related_links:
        crm = "Deals named: " + " · ".join(_mrkdwn_link(link) for link in entry.related_links) + "\n" + crm
    queries = "Semantic layer: " + " · ".join(_mrkdwn_link(link) for link in entry.query_links)
    ref = [f"item `{escape_mrkdwn(entry.short_id)}`"] if entry.short_id else []
    blocks.append(_context([crm, queries, *ref], f"links:{key}"))
    if entry.decision:
        blocks.append(_context([f"Decided: {escape_mrkdwn(entry.decision)}"], f"decision:{entry.item_id}"))
    elif buttons and entry.item_id and str(entry.flag.observed) in ("BELOW_FLOOR_PIP", "CRITICAL") \
            and entry.flag.rule_id == "weekly_scorecard":
        approve = _button("Record verdict", ACTION_APPROVE_CONFIRMED, entry.item_id, "primary")
        approve["confirm"] = {
            "title": {"type": "plain_text", "text": "Record this verdict?"},
            "text": {"type": "plain_text", "text": (
                f"{str(entry.flag.observed)} for {entry.rep_name or 'this rep'}: recorded in the rep's history and "
                "audited. It is never sent to the rep.")[:300]},
            "confirm": {"type": "plain_text", "text": "Yes, record it"},
            "deny": {"type": "plain_text", "text": "Cancel"},
            "style": "danger",
        }
        blocks.append({"type": "actions", "block_id": f"actions:{entry.item_id}", "elements": [
            approve, _button("Dismiss", ACTION_DISMISS, entry.item_id, "danger")]})
    elif buttons and entry.item_id:
        blocks.append(
            {
                "type": "actions",
                "block_id": f"actions:{entry.item_id}",
                "elements": [
                    _button("Approve", ACTION_APPROVE, entry.item_id, "primary"),
                    _button("Edit", ACTION_EDIT, entry.item_id),
                    _button("Dismiss", ACTION_DISMISS, entry.item_id, "danger"),
                    _button("Snooze 2 weeks", ACTION_SNOOZE, entry.item_id),
                ],
            }
        )
    return blocks


def _rep_heading(section: RepSection) -> dict[str, Any]:
    text = f"*{escape_mrkdwn(section.rep_name)}* — {section.flagged} deal{'s' if section.flagged != 1 else ''} flagged"
    if section.held_back_summary:
        text += f": {escape_mrkdwn(section.held_back_summary)} (`sales-supervisor review list --held-back`)"
    if not section.is_active:
        text += " _(inactive rep)_"
    return _section(text, f"rep:{section.rep_id}"[:255])


def fallback_text(digest: Digest) -> str:
    return (
        f"Pipeline review for {digest.as_of.isoformat()}: {digest.item_count} item(s) to review, "
        f"{digest.deals_flagged} deal(s) flagged across {digest.reps_reviewed} rep(s)."
    )


def digest_messages(digest: Digest, *, max_blocks: int = MAX_BLOCKS, buttons: bool = True) -> list[dict[str, Any]]:
    """The digest as one or more chat.postMessage payloads (``text`` + ``blocks``), each within ``max_blocks``."""
    if max_blocks < 8:
        raise ValueError("max_blocks must leave room for at least one item")
    header = [
        {"type": "header", "text": {"type": "plain_text", "text": truncate(f"Pipeline review — {digest.as_of.isoformat()}", MAX_HEADER_TEXT)}},
        _section(
            f"Hi {escape_mrkdwn(digest.manager_name)}: *{digest.reps_reviewed}* reps reviewed, "
            f"*{digest.deals_flagged}* deals flagged, *{digest.item_count}* items for you "
            f"(at most {digest.max_items_per_rep} per rep, ranked by severity × amount). "
            + ("Nothing reaches a rep until you approve it, except the low-risk nudges sent on your behalf below."
               if digest.on_your_behalf else "Nothing reaches a rep until you approve it.")
            + (f"\n:eyes: {escape_mrkdwn(digest.held_back_summary)} (`sales-supervisor review list --held-back`)."
               if digest.held_back_summary else ""),
            "summary",
        ),
    ]
    if digest.scorecards:
        rows = [
            f"• *{escape_mrkdwn(e.rep_name or '')}: {escape_mrkdwn(str(e.flag.observed))}*"
            + (" (manager only: never sent to the rep)" if str(e.flag.observed) in ("BELOW_FLOOR_PIP", "CRITICAL") else "")
            for e in digest.scorecards
        ]
        header.append(_section(truncate("*Weekly scorecards* (details under each rep)\n" + "\n".join(rows), 2900), "scorecards"))
    if digest.on_your_behalf:
        header.append(_section(truncate("*Sent on your behalf*\n" + "\n".join(f"• {escape_mrkdwn(x)}" for x in digest.on_your_behalf),
                                        MAX_SECTION_TEXT), "on_your_behalf"))
    if digest.decide_first:
        rows = [
            f"{i}. {_mrkdwn_link(e.deal_link, bold=True)} ({escape_mrkdwn(e.rep_name or '')}, {e.flag.severity}"
            f"{', ' + format_amount(e.flag.amount) if format_amount(e.flag.amount) else ''}): "
            f"{escape_mrkdwn(e.draft.get('action', ''))}"
            for i, e in enumerate(digest.decide_first, 1)
        ]
        header.append(_section("*Decide these first*\n" + "\n".join(rows), "decide_first"))
    # Units that must not be split across messages: a rep heading travels with its first item.
    units: list[list[dict[str, Any]]] = []
    quiet = []
    for section in digest.reps:
        if not section.entries:
            if section.held_back:
                units.append([_rep_heading(section)])
            else:
                quiet.append(section)
            continue
        for i, entry in enumerate(section.entries):
            unit = [_rep_heading(section)] if i == 0 else []
            unit += entry_blocks(entry, buttons=buttons) + [{"type": "divider"}]
            units.append(unit)
    if quiet:
        names = ", ".join(escape_mrkdwn(s.rep_name) for s in quiet)
        units.append([_context([f"Reviewed, nothing flagged: {names}"], "quiet_reps")])
    from agents.review.outbox import _demoted_footer

    footer = _demoted_footer(digest)
    if digest.informational:
        footer = f"{len(digest.informational)} informational flag(s) from demoted rules are in the outbox copy. " + footer
    units.append([_context([escape_mrkdwn(footer)], "demoted_rules")])

    messages: list[list[dict[str, Any]]] = [list(header)]
    budget = max_blocks - 1  # leave room for a "part k of n" context on continuation messages
    for unit in units:
        if len(messages[-1]) + len(unit) > budget:
            messages.append([])
        messages[-1].extend(unit)
    total = len(messages)
    out = []
    for k, blocks in enumerate(messages, 1):
        if total > 1:
            note = _context([f"Part {k} of {total} of the pipeline review for {digest.as_of.isoformat()}"], f"part:{k}")
            blocks = blocks + [note] if k == 1 else [note] + blocks
        text = fallback_text(digest) if k == 1 else f"Pipeline review {digest.as_of.isoformat()} (part {k} of {total})"
        out.append({"text": truncate(text, MAX_FALLBACK_TEXT), "blocks": blocks})
    return out


def decision_text(action: str, approver_slack_id: str | None, approver_id: str, decided_at: dt.datetime | None, mode: str) -> str:
    who = f"<@{approver_slack_id}>" if approver_slack_id else escape_mrkdwn(approver_id)
    when = f" at {decided_at.astimezone(dt.timezone.utc):%Y-%m-%d %H:%M} UTC" if decided_at else ""
    text = f"{DECISION_LABEL.get(action, action)} by {who}{when}"
    if action != "dismiss":
        text += " · shadow mode: logged, nothing sent to the rep" if mode == "shadow" else " · queued for the rep"
    return text


def apply_decision(
    blocks: Sequence[Mapping[str, Any]],
    item_id: str,
    *,
    text: str,
    edited_text: str | None = None,
) -> list[dict[str, Any]]:
    """The message's blocks with ``item_id``'s buttons replaced by the decision (and the edited text shown)."""
    out: list[dict[str, Any]] = []
    for block in blocks:
        block = dict(block)
        bid = block.get("block_id")
        if bid == f"actions:{item_id}" or bid == f"decision:{item_id}":
            out.append(_context([text], f"decision:{item_id}"))
            continue
        if edited_text is not None and bid == f"draft:{item_id}":
            out.append(_section(f"*Edited action:* {escape_mrkdwn(edited_text)}", bid))
            continue
        out.append(block)
    return out


def edit_modal(item_id: str, text: str, *, subject: str, channel: str | None, message_ts: str | None) -> dict[str, Any]:
    """The modal a manager edits the draft in; ``private_metadata`` says which message to update afterwards."""
    meta = json.dumps({"item_id": item_id, "channel": channel, "ts": message_ts})
    return {
        "type": "modal",
        "callback_id": EDIT_CALLBACK_ID,
        "private_metadata": meta,
        "title": {"type": "plain_text", "text": "Edit coaching action"},
        "submit": {"type": "plain_text", "text": "Approve edited"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            _context([f"*{escape_mrkdwn(subject)}*: the rep receives this text once you approve."]),
            {
                "type": "input",
                "block_id": EDIT_BLOCK_ID,
                "label": {"type": "plain_text", "text": "Coaching action"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": EDIT_INPUT_ACTION_ID,
                    "multiline": True,
                    "max_length": MAX_INPUT_TEXT,
                    "initial_value": truncate(text, MAX_INPUT_TEXT),
                },
            },
        ],
    }
