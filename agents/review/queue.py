"""What the terminal review shows: the queue in priority order, one item explained, the held-back list.

Plain functions over the review ledger and the outbox files (never the warehouse), so the CLI, a
console or any other interface shows the same thing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from agents.review.digests import short_item_id
from agents.review.query_pages import read_query_page_data
from agents.review.recurrence import decision_history
from agents.risk.models import SEVERITY_RANK


def _flag(item: Any) -> dict[str, Any]:
    return dict((item.evidence or {}).get("flag") or {})


def severity_x_amount(item: Any) -> float:
    """The ranking key the digests use: severity x amount (amount floor 1, so rep-level items rank too)."""
    return SEVERITY_RANK.get(item.severity, 1) * max(float(_flag(item).get("amount") or 0.0), 1.0)


def order_queue(items: Sequence[Any], rank: Literal["rep", "team"] = "rep") -> list[Any]:
    """Highest priority first.

    ``rep``: per manager, reps in the order of their most urgent item, each rep's items most urgent first
    (the digest's order). ``team``: every item by severity x amount, whoever's it is.
    """
    if rank == "team":
        return sorted(items, key=lambda it: (-severity_x_amount(it), it.priority or 0, it.item_id))
    best: dict[tuple[str, str], float] = {}
    for it in items:
        key = (it.manager_id, it.rep_id or "")
        best[key] = min(best.get(key, float("inf")), it.priority or 0)
    return sorted(
        items,
        key=lambda it: (it.manager_id, best[(it.manager_id, it.rep_id or "")], it.rep_id or "", it.priority or 0, it.item_id),
    )


def held_back_items(outbox_dir: Path | str, manager_id: str | None = None) -> list[dict[str, Any]]:
    """The flagged deals each manager's latest digest held back (per-rep cap, standing decisions), with why."""
    root = Path(outbox_dir) / "digests"
    if not root.exists():
        return []
    latest: dict[str, dict[str, Any]] = {}
    for path in sorted(root.glob("*/*.held_back.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if manager_id and data.get("manager_id") != manager_id:
            continue
        if data["manager_id"] not in latest or data["as_of"] >= latest[data["manager_id"]]["as_of"]:
            latest[data["manager_id"]] = data
    out = []
    for data in latest.values():
        for h in data.get("held_back", []):
            out.append({**h, "manager_id": data["manager_id"], "as_of": data["as_of"]})
    return sorted(
        out,
        key=lambda h: (h["manager_id"], h.get("rep_name") or "", -SEVERITY_RANK.get(h.get("severity") or "low", 1) * max(h.get("amount") or 0, 1)),
    )


def explain_item(ledger: Any, item_id: str, outbox_dir: Path | str) -> dict[str, Any] | None:
    """Everything behind one item: the flag and its baseline, the action, the CRM rows, the semantic queries
    (definition, filters, SQL, rows, when the digest wrote their pages) and the decision history."""
    item = ledger.get_item(item_id)
    if item is None:
        return None
    evidence = item.evidence or {}
    flag = _flag(item)
    digest = ledger.get_digest(item.digest_id)
    as_of = digest.as_of.isoformat() if digest else str(flag.get("as_of"))
    queries = []
    for qid in flag.get("semantic_query_ids") or []:
        queries.append(read_query_page_data(outbox_dir, as_of, qid) or {"query_id": qid})
    return {
        "item_id": item.item_id,
        "short_id": short_item_id(item.item_id),
        "as_of": as_of,
        "manager_id": item.manager_id,
        "rep": evidence.get("rep") or {"rep_id": item.rep_id},
        "deal_name": evidence.get("deal_name"),
        "subject_label": evidence.get("subject_label") or item.opportunity_id,
        "number": evidence.get("number"),
        "note": evidence.get("note"),
        "flag": flag,
        "draft": item.draft or {},
        "links": evidence.get("links") or {},
        "queries": queries,
        "decision": ledger.get_decision(item.item_id),
        "history": decision_history(ledger, item.opportunity_id, item.rep_id, item.rule_id),
    }


def resolve_item_prefix(ledger: Any, prefix: str) -> list[str]:
    """Item ids starting with ``prefix`` (any digest, decided or not); the full id if it exists."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from agents.ledger.models import Item

    if ledger.get_item(prefix) is not None:
        return [prefix]
    safe = prefix.replace("\\", "").replace("%", "").replace("_", "\\_")
    with Session(ledger.engine) as s:
        return list(s.scalars(select(Item.item_id).where(Item.item_id.like(safe + "%", escape="\\")).limit(10)))
