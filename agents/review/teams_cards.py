"""A manager's digest as a Microsoft Teams Adaptive Card: approve / edit / dismiss on each item.

Built from the review ledger's items (the card never needs the warehouse). Each
item has its deal, rep, rule, the coaching the rep would receive, its evidence
links (CRM records, the semantic query pages), an edit box and a dismiss
reason, and three Action.Submit buttons whose data name the action and the
item id; Teams sends them back as a message activity with that data in
``value`` (agents.review.teams handles it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agents.review.digests import coaching_text
from agents.review.escaping import defang_urls, safe_link_url


def _safe(text: Any) -> str:
    """Untrusted CRM or model text in a TextBlock: no live links (Teams renders Markdown)."""
    return defang_urls(str(text or ""))

CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_VERSION = "1.4"
ADAPTIVE_CARD_TYPE = "application/vnd.microsoft.card.adaptive"
ACTIONS = ("approve", "edit", "dismiss")
EDIT_INPUT = "edited_text"
REASON_INPUT = "reason"
SUBMIT_KIND = "sales_supervisor_decision"


def _text(text: str, **kw: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **kw}


def _links(evidence: Mapping[str, Any]) -> list[str]:
    out = []
    links = evidence.get("links") or {}
    for group in ("crm", "semantic", "related"):
        for link in links.get(group) or []:
            label, url = _safe(link.get("label")).replace("[", "(").replace("]", ")"), safe_link_url(link.get("url"))
            out.append(f"[{label}]({url})" if url else label)
    return [x for x in out if x]


def item_container(item: Any, decision: Any | None = None) -> dict[str, Any]:
    """One digest item: what the manager reads, and (undecided) the inputs and buttons."""
    evidence = item.evidence or {}
    draft = item.draft or {}
    rep = (evidence.get("rep") or {}).get("rep_name") or item.rep_id or ""
    subject = evidence.get("subject_label") or evidence.get("deal_name") or item.opportunity_id or item.item_id
    flag = evidence.get("flag") or {}
    body: list[dict[str, Any]] = [
        _text(f"**{_safe(subject)}**", size="Medium"),
        _text(f"{_safe(rep)} · {item.rule_id} · {item.severity}", isSubtle=True, spacing="None"),
    ]
    if flag.get("message"):
        body.append(_text(_safe(flag["message"])))
    body.append(_text(_safe(coaching_text(draft))))
    links = _links(evidence)
    if links:
        body.append(_text("Evidence: " + " · ".join(links), size="Small"))
    container: dict[str, Any] = {"type": "Container", "id": f"item-{item.item_id}", "separator": True, "items": body}
    if decision is not None:
        body.append(_text(decision_line(decision), weight="Bolder", color="Good" if decision.action != "dismiss" else "Attention"))
        return container
    body.append({"type": "Input.Text", "id": f"{EDIT_INPUT}:{item.item_id}", "isMultiline": True,
                 "placeholder": "Edit the coaching before approving (optional)", "value": coaching_text(draft),
                 "label": "Edited coaching"})
    body.append({"type": "Input.Text", "id": f"{REASON_INPUT}:{item.item_id}", "placeholder": "Why dismiss (optional)",
                 "label": "Dismiss reason"})
    body.append({"type": "ActionSet", "actions": [
        {"type": "Action.Submit", "title": title, "style": style,
         "data": {"kind": SUBMIT_KIND, "action": action, "item_id": item.item_id}}
        for action, title, style in (("approve", "Approve", "positive"), ("edit", "Approve edited", "default"),
                                     ("dismiss", "Dismiss", "destructive"))
    ]})
    return container


def decision_line(decision: Any) -> str:
    verb = {"approve": "Approved", "edit": "Approved with edits", "dismiss": "Dismissed"}.get(decision.action, decision.action)
    at = decision.decided_at.strftime("%Y-%m-%d %H:%M") + "Z" if getattr(decision, "decided_at", None) else ""
    mode = f" ({decision.mode} mode: nothing reaches the rep)" if getattr(decision, "mode", None) == "shadow" and decision.action != "dismiss" else ""
    return f"{verb} by {decision.approver_id} {at}{mode}".strip()


def digest_card(
    manager_name: str, as_of: Any, items: Sequence[Any], decisions: Mapping[str, Any] | None = None,
    *, held_back: int = 0,
) -> dict[str, Any]:
    """The Adaptive Card for a digest: a header and one container per item (decided ones show the decision)."""
    decisions = decisions or {}
    pending = sum(1 for it in items if it.item_id not in decisions)
    header = [
        _text(f"Pipeline review for {_safe(manager_name)}, {as_of}", size="Large", weight="Bolder"),
        _text(f"{len(items)} item{'s' if len(items) != 1 else ''}, {pending} to decide. Nothing reaches a rep until you approve.",
              isSubtle=True, spacing="None"),
    ]
    if held_back:
        header.append(_text(f"{held_back} more held back by the per-rep cap (see the outbox copy).", size="Small"))
    return {
        "type": "AdaptiveCard", "$schema": CARD_SCHEMA, "version": CARD_VERSION,
        "body": header + [item_container(it, decisions.get(it.item_id)) for it in items],
    }


def card_attachment(card: Mapping[str, Any]) -> dict[str, Any]:
    return {"contentType": ADAPTIVE_CARD_TYPE, "content": dict(card)}


def submitted(value: Any) -> tuple[str, str, str | None, str | None] | None:
    """(action, item_id, edited_text, reason) from an Action.Submit's value, or None if it is not ours."""
    if not isinstance(value, Mapping) or value.get("kind") != SUBMIT_KIND:
        return None
    action, item_id = value.get("action"), value.get("item_id")
    if action not in ACTIONS or not isinstance(item_id, str) or not item_id:
        return None
    edited = value.get(f"{EDIT_INPUT}:{item_id}")
    reason = value.get(f"{REASON_INPUT}:{item_id}")
    return (action, item_id, edited if isinstance(edited, str) else None, reason.strip() if isinstance(reason, str) and reason.strip() else None)


def iter_item_ids(card: Mapping[str, Any]) -> Iterable[str]:
    for block in card.get("body") or []:
        if isinstance(block, Mapping) and str(block.get("id", "")).startswith("item-"):
            yield str(block["id"])[5:]
