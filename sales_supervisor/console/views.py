"""What the console's manager pages show, built from the review ledger and the outbox files (never the warehouse)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agents.ledger.models import Digest, Item
from agents.review.digests import format_amount, short_item_id
from agents.review.queue import held_back_items, order_queue, severity_x_amount

DECIDE_FIRST = 5
VERBS = {"approve": "approved", "edit": "edited and approved", "dismiss": "dismissed"}


def latest_digests(ledger: Any, managers: set[str] | None = None) -> list[Any]:
    """Each manager's newest digest (by as-of date, then creation), optionally only for ``managers``."""
    with Session(ledger.engine) as s:
        rows = list(s.scalars(select(Digest).order_by(Digest.manager_id, Digest.as_of.desc(), Digest.created_at.desc())))
        s.expunge_all()
    out, seen = [], set()
    for d in rows:
        if d.manager_id in seen or (managers is not None and d.manager_id not in managers):
            continue
        seen.add(d.manager_id)
        out.append(d)
    return out


def all_manager_ids(ledger: Any) -> set[str]:
    with Session(ledger.engine) as s:
        return set(s.scalars(select(Digest.manager_id).distinct()))


def manager_names(ledger: Any) -> dict[str, str]:
    """manager_id -> name, from what the digests recorded with their items."""
    names: dict[str, str] = {}
    with Session(ledger.engine) as s:
        for manager_id, evidence in s.execute(select(Item.manager_id, Item.evidence).group_by(Item.manager_id)):
            names[manager_id] = ((evidence or {}).get("manager") or {}).get("manager_name") or manager_id
    return names


def query_in_scope(ledger: Any, as_of: dt.date, query_id: str, managers: set[str]) -> bool:
    """Whether an item of one of ``managers``' digests of ``as_of`` cites ``query_id`` (its flag or its remedy)."""
    if not managers:
        return False
    with Session(ledger.engine) as s:
        rows = s.execute(
            select(Item.evidence).join(Digest, Digest.digest_id == Item.digest_id)
            .where(Digest.as_of == as_of, Digest.manager_id.in_(sorted(managers)))
        ).scalars()
        for ev in rows:
            ev = ev or {}
            if query_id in ((ev.get("flag") or {}).get("semantic_query_ids") or []):
                return True
            if any(query_id in str(link.get("url") or "") for link in (ev.get("links") or {}).get("semantic") or []):
                return True
    return False


def item_view(item: Any, decision: Any, as_of: str) -> dict[str, Any]:
    ev = item.evidence or {}
    flag = ev.get("flag") or {}
    draft = item.draft or {}
    links = ev.get("links") or {}
    crm = [link for link in links.get("crm") or [] if link.get("url") or link.get("label")]
    qids = flag.get("semantic_query_ids") or []
    labels = [link.get("label") for link in links.get("semantic") or []]
    queries = [{"id": q, "label": labels[i] if i < len(labels) and labels[i] else q, "href": f"/queries/{as_of}/{q}"}
               for i, q in enumerate(qids)]
    deal_url = next((link.get("url") for link in crm if link.get("url")), None)
    return {
        "item_id": item.item_id,
        "short_id": short_item_id(item.item_id),
        "deal": ev.get("deal_name") or ev.get("subject_label") or item.opportunity_id or f"rep {item.rep_id}",
        "deal_url": deal_url,
        "opportunity_id": item.opportunity_id,
        "rep_id": item.rep_id,
        "rep_name": (ev.get("rep") or {}).get("rep_name") or item.rep_id,
        "manager_id": item.manager_id,
        "severity": item.severity,
        "rule": item.rule_id,
        "amount": format_amount(flag.get("amount")) or "",
        "stage": flag.get("stage"),
        "confidence": flag.get("confidence"),
        "action": draft.get("action", ""),
        "actor": draft.get("actor", "rep"),
        "due": draft.get("due_date"),
        "rationale": draft.get("rationale"),
        "message": flag.get("message"),
        "note": ev.get("note"),
        "crm_links": crm,
        "related": links.get("related") or [],
        "queries": queries,
        "decision": None if decision is None else {
            "action": decision.action, "verb": VERBS.get(decision.action, decision.action), "by": decision.approver_id,
            "at": f"{decision.decided_at:%Y-%m-%d %H:%M} UTC", "channel": decision.approver_channel,
            "edited_text": decision.edited_text, "reason": decision.reason, "mode": decision.mode,
        },
        "rank_key": severity_x_amount(item),
    }


def digest_view(ledger: Any, digest: Any, outbox_dir: Path) -> dict[str, Any]:
    items = order_queue(ledger.items_for_digest(digest.digest_id), "rep")
    as_of = digest.as_of.isoformat()
    views = [item_view(it, ledger.get_decision(it.item_id), as_of) for it in items]
    reps: list[tuple[str, list[dict[str, Any]]]] = []
    for v in views:
        if not reps or reps[-1][0] != v["rep_name"]:
            reps.append((v["rep_name"], []))
        reps[-1][1].append(v)
    pending = [v for v in views if v["decision"] is None]
    decide_first = sorted(pending, key=lambda v: -v["rank_key"])[:DECIDE_FIRST]
    held = [h for h in held_back_items(outbox_dir, digest.manager_id) if h.get("as_of") == as_of]
    for h in held:
        h["amount_text"] = format_amount(h.get("amount")) or "-"
    manager = next(((it.evidence or {}).get("manager") or {} for it in items), {})
    return {
        "digest": digest,
        "as_of": as_of,
        "manager_id": digest.manager_id,
        "manager_name": manager.get("manager_name") or digest.manager_id,
        "entries": views,
        "reps": reps,
        "pending": len(pending),
        "decided": len(views) - len(pending),
        "decide_first": decide_first,
        "held_back": held,
        "review_time": ledger.review_time(digest.digest_id),
    }


def pending_older_than(ledger: Any, business_days: int, today: dt.date | None = None) -> list[dict[str, Any]]:
    """Pending items (latest digests) created at least ``business_days`` business days ago."""
    from agents.ledger.business_days import business_days_between

    today = today or dt.datetime.now(dt.timezone.utc).date()
    out = []
    for it in ledger.pending_items(latest_only=True):
        age = business_days_between(it.created_at.date(), today)
        if age >= business_days:
            ev = it.evidence or {}
            out.append({"item_id": it.item_id, "short_id": short_item_id(it.item_id), "manager_id": it.manager_id,
                        "deal": ev.get("deal_name") or it.opportunity_id, "rep": (ev.get("rep") or {}).get("rep_name") or it.rep_id,
                        "age": age, "severity": it.severity})
    return sorted(out, key=lambda r: -r["age"])


def decision_counts_by_day(ledger: Any, days: int = 30) -> list[tuple[dt.date, int]]:
    from agents.ledger.models import Decision

    with Session(ledger.engine) as s:
        rows = s.execute(select(Decision.decided_at)).scalars().all()
    counts: dict[dt.date, int] = {}
    for at in rows:
        counts[at.date()] = counts.get(at.date(), 0) + 1
    return sorted(counts.items())[-days:]


__all__ = ["all_manager_ids", "digest_view", "item_view", "latest_digests", "manager_names", "pending_older_than", "func"]
