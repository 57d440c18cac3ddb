"""Digests and their items: what was put in front of a manager."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import exists, not_, select
from sqlalchemy.orm import aliased

from agents.ledger.errors import UnknownDigest
from agents.ledger.models import SEVERITIES, Decision, Digest, Item
from agents.ledger.unit_of_work import UnitOfWork, jsonable


def create_digest(
    uow: UnitOfWork,
    run_id: str,
    manager_id: str,
    as_of: dt.date,
    *,
    channel: str | None = None,
    digest_id: str | None = None,
    actor: str = "pipeline",
) -> Digest:
    """One digest per manager per run; a retried run gets the existing digest back."""
    with uow.write() as s:
        existing = s.scalars(select(Digest).where(Digest.run_id == run_id, Digest.manager_id == manager_id)).first()
        if existing is not None:
            return existing
        digest = Digest(
            digest_id=digest_id or uuid.uuid4().hex,
            run_id=run_id,
            manager_id=manager_id,
            as_of=as_of,
            created_at=uow.now(),
            channel=channel,
            status="created",
        )
        s.add(digest)
        s.flush()
        uow.audit(
            s,
            actor=actor,
            action="digest.created",
            subject_type="digest",
            subject_id=digest.digest_id,
            payload={"run_id": run_id, "manager_id": manager_id, "as_of": as_of, "channel": channel},
        )
        return digest


def mark_digest_posted(uow: UnitOfWork, digest_id: str, *, channel: str, external_ref: str | None, actor: str = "pipeline") -> Digest:
    with uow.write() as s:
        digest = s.get(Digest, digest_id)
        if digest is None:
            raise UnknownDigest(digest_id)
        digest.status, digest.channel, digest.external_ref = "posted", channel, external_ref
        digest.posted_at, digest.error = uow.now(), None
        uow.audit(
            s, actor=actor, action="digest.posted", subject_type="digest", subject_id=digest_id,
            payload={"channel": channel, "external_ref": external_ref},
        )
        return digest


def mark_digest_failed(uow: UnitOfWork, digest_id: str, error: str, *, channel: str | None = None, actor: str = "pipeline") -> Digest:
    with uow.write() as s:
        digest = s.get(Digest, digest_id)
        if digest is None:
            raise UnknownDigest(digest_id)
        digest.status, digest.error = "post_failed", error
        if channel is not None:
            digest.channel = channel
        uow.audit(
            s, actor=actor, action="digest.post_failed", subject_type="digest", subject_id=digest_id,
            payload={"channel": channel, "error": error},
        )
        return digest


def get_digest(uow: UnitOfWork, digest_id: str) -> Digest | None:
    with uow.read() as s:
        return s.get(Digest, digest_id)


def add_item(
    uow: UnitOfWork,
    digest_id: str,
    *,
    flag_id: str,
    rule_id: str,
    severity: str,
    draft: Any,
    evidence: Any,
    opportunity_id: str | None = None,
    rep_id: str | None = None,
    manager_id: str | None = None,
    priority: int = 0,
    item_id: str | None = None,
    actor: str = "pipeline",
) -> Item:
    """Put one flagged deal and its draft in a digest; the same flag in the same digest is added once.

    The item's manager is the digest's manager (passing another is an
    error): who may approve follows from it. ``priority``: lower sorts
    first (1 = top of the digest).
    """
    return add_items(uow, digest_id, [{
        "flag_id": flag_id, "rule_id": rule_id, "severity": severity, "draft": draft, "evidence": evidence,
        "opportunity_id": opportunity_id, "rep_id": rep_id, "manager_id": manager_id, "priority": priority,
        "item_id": item_id,
    }], actor=actor)[0]


def add_items(uow: UnitOfWork, digest_id: str, items: Sequence[Mapping[str, Any]], *, actor: str = "pipeline") -> list[Item]:
    """``add_item`` for a whole digest in one transaction: the digest and its existing items are read once
    (not once per item) and each new item is written with its ``item.added`` audit row, as add_item writes
    it. ``items``: add_item's keyword arguments (flag_id, rule_id, severity, draft, evidence, opportunity_id,
    rep_id, manager_id, priority, item_id). Returns the items in order (an existing one for a flag already in
    the digest)."""
    from agents.ledger.integrity import item_record

    for spec in items:
        if spec["severity"] not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {spec['severity']!r}")
    with uow.write() as s:
        digest = s.get(Digest, digest_id)
        if digest is None:
            raise UnknownDigest(digest_id)
        by_flag = {it.flag_id: it for it in s.scalars(select(Item).where(Item.digest_id == digest_id))}
        out = []
        for spec in items:
            manager_id = spec.get("manager_id")
            if manager_id is not None and manager_id != digest.manager_id:
                raise ValueError(f"item manager {manager_id!r} differs from the digest's manager {digest.manager_id!r}")
            existing = by_flag.get(spec["flag_id"])
            if existing is not None:
                out.append(existing)
                continue
            item = Item(
                item_id=spec.get("item_id") or uuid.uuid4().hex,
                digest_id=digest_id,
                opportunity_id=spec.get("opportunity_id"),
                rep_id=spec.get("rep_id"),
                manager_id=digest.manager_id,
                rule_id=spec["rule_id"],
                severity=spec["severity"],
                priority=spec.get("priority", 0),
                draft=jsonable(spec["draft"]),
                evidence=jsonable(spec["evidence"]),
                flag_id=spec["flag_id"],
                created_at=uow.now(),
            )
            s.add(item)
            uow.audit(
                s,
                actor=actor,
                action="item.added",
                subject_type="item",
                subject_id=item.item_id,
                payload={
                    "digest_id": digest_id, "flag_id": item.flag_id, "rule_id": item.rule_id, "severity": item.severity,
                    "opportunity_id": item.opportunity_id, "rep_id": item.rep_id, "manager_id": digest.manager_id,
                    "priority": item.priority, "draft": item.draft, "evidence": item.evidence,
                    **item_record(item),
                },
                flush=False,
            )
            by_flag[item.flag_id] = item
            out.append(item)
        s.flush()  # the items and their audit rows in one flush (batched INSERTs), not two per item
        return out


def get_item(uow: UnitOfWork, item_id: str) -> Item | None:
    with uow.read() as s:
        return s.get(Item, item_id)


def find_items(uow: UnitOfWork, id_or_prefix: str, *, limit: int = 10) -> list[Item]:
    """The item with this id, else every item (decided or not) whose id starts with it (at most ``limit``)."""
    if not id_or_prefix:
        return []
    with uow.read() as s:
        exact = s.get(Item, id_or_prefix)
        if exact is not None:
            return [exact]
        escaped = id_or_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = select(Item).where(Item.item_id.like(f"{escaped}%", escape="\\")).order_by(Item.item_id).limit(limit)
        return list(s.scalars(query))


def items_for_digest(uow: UnitOfWork, digest_id: str) -> list[Item]:
    with uow.read() as s:
        return list(s.scalars(select(Item).where(Item.digest_id == digest_id).order_by(Item.priority, Item.item_id)))


def pending_items(
    uow: UnitOfWork, manager_id: str | None = None, *, digest_id: str | None = None, latest_only: bool = False
) -> list[Item]:
    """Items with no decision yet, oldest digest first, then by priority.

    ``latest_only``: only items of each manager's most recent digest. An older digest's
    undecided item was superseded by the run after it (the deal is flagged again there if
    it still is), so a reviewer's queue does not fill with stale copies.
    """
    undecided = not_(exists().where(Decision.item_id == Item.item_id))
    query = (
        select(Item)
        .join(Digest, Digest.digest_id == Item.digest_id)
        .where(undecided)
        .order_by(Digest.as_of, Digest.created_at, Item.priority, Item.item_id)
    )
    if manager_id is not None:
        query = query.where(Item.manager_id == manager_id)
    if digest_id is not None:
        query = query.where(Item.digest_id == digest_id)
    if latest_only:
        newer = aliased(Digest)
        query = query.where(
            not_(exists().where(newer.manager_id == Digest.manager_id, newer.created_at > Digest.created_at))
        )
    with uow.read() as s:
        return list(s.scalars(query))


def latest_item_for(uow: UnitOfWork, opportunity_id: str) -> Item | None:
    """The most recent item raised for a deal (its manager decides on snoozes too); for a rep id, the
    rep's latest rep-level item (a rep-level trigger is snoozed with the rep id)."""
    with uow.read() as s:
        item = s.scalars(
            select(Item).where(Item.opportunity_id == opportunity_id).order_by(Item.created_at.desc())
        ).first()
        if item is None:
            item = s.scalars(
                select(Item).where(Item.opportunity_id.is_(None), Item.rep_id == opportunity_id).order_by(Item.created_at.desc())
            ).first()
        return item
