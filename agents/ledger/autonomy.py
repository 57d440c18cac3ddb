"""Ledger tables and functions for governed autonomy (agents/autonomy): deferred sends, recalls of
autonomous sends, LLM spend per draft, autonomous (L5) approvals and per-rule agreement.

Every change writes its audit row in the same transaction (``UnitOfWork``). An L5 send is an
ordinary live approval recorded by ``autonomy:L5`` through the ``autonomy`` approver channel, so
it goes through the same claim, idempotency key and audit cross-check as any approved item.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import func, select

from agents.ledger.errors import AlreadyDecided, UnknownItem
from agents.ledger.integrity import decision_record
from agents.ledger.autonomy_models import DeferredSend, LlmSpend, Recall
from agents.ledger.models import Decision, Delivery, Item
from agents.ledger.unit_of_work import UnitOfWork

AUTONOMY_APPROVER = "autonomy:L5"
AUTONOMY_CHANNEL = "autonomy"


# -- autonomous approvals and the agreement they are earned by


def record_autonomous_approval(uow: UnitOfWork, item_id: str, *, gate: Mapping[str, Any], reason: str) -> Decision:
    """The L5 approval of one item: a live decision by ``autonomy:L5``, audited with the gate it passed.

    Refused (``AlreadyDecided``) when a manager decided first: a person's decision always stands.
    """
    with uow.write() as s:
        item = s.get(Item, item_id)
        if item is None:
            raise UnknownItem(item_id)
        existing = s.scalars(select(Decision).where(Decision.item_id == item_id)).first()
        if existing is not None:
            raise AlreadyDecided(f"item {item_id} was already decided ({existing.action} by {existing.approver_id})", existing)
        decision = Decision(
            item_id=item_id, action="approve", approver_id=AUTONOMY_APPROVER, approver_channel=AUTONOMY_CHANNEL,
            decided_at=uow.now(), edited_text=None, reason=reason[:2000], mode=uow.get_meta(s, "mode", "shadow"),
        )
        s.add(decision)
        s.flush()
        uow.audit(
            s, actor=AUTONOMY_APPROVER, action="decision.recorded", subject_type="item", subject_id=item_id,
            payload={
                "action": "approve", "approver_id": AUTONOMY_APPROVER, "channel": AUTONOMY_CHANNEL, "edited_text": None,
                "reason": decision.reason, "operator": AUTONOMY_APPROVER, "decision_id": decision.decision_id,
                "manager_id": item.manager_id, "on_behalf_of": item.manager_id, "mode": decision.mode,
                "autonomy_level": 5, "gate": dict(gate), **decision_record(decision),
            },
        )
        return decision


def undecided_live_items(uow: UnitOfWork, rule_ids: Iterable[str]) -> list[Item]:
    """Items of ``rule_ids`` nobody has decided yet, oldest first (the L5 candidates)."""
    rule_ids = list(rule_ids)
    if not rule_ids:
        return []
    decided = select(Decision.item_id)
    query = (
        select(Item).where(Item.rule_id.in_(rule_ids), Item.item_id.not_in(decided)).order_by(Item.created_at, Item.item_id)
    )
    with uow.read() as s:
        return list(s.scalars(query))


def rule_agreement(uow: UnitOfWork, rule_id: str, since: dt.date, until: dt.date) -> tuple[int, int]:
    """(approved, decided) by managers on ``rule_id``'s items, decided in [since, until] (UTC days), any mode.

    Autonomous approvals are not evidence for themselves and are left out; each autonomous send the
    manager recalled in the window counts as a decision that was not an approval.
    """
    start = dt.datetime.combine(since, dt.time.min, tzinfo=dt.timezone.utc)
    end = dt.datetime.combine(until + dt.timedelta(days=1), dt.time.min, tzinfo=dt.timezone.utc)
    with uow.read() as s:
        rows = s.execute(
            select(Decision.action)
            .join(Item, Item.item_id == Decision.item_id)
            .where(Item.rule_id == rule_id, Decision.approver_channel != AUTONOMY_CHANNEL)
            .where(Decision.decided_at >= start, Decision.decided_at < end)
        ).scalars().all()
        recalled = s.scalar(
            select(func.count()).select_from(Recall).join(Item, Item.item_id == Recall.item_id)
            .where(Item.rule_id == rule_id, Recall.recalled_at >= start, Recall.recalled_at < end)
        ) or 0
    approved = sum(1 for a in rows if a == "approve")  # as the shadow-agreement gate: an edit is not agreement
    return approved, len(rows) + recalled


def autonomous_sends(uow: UnitOfWork, manager_id: str | None = None, *, since: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Deliveries sent under an autonomous approval (newest first), with their recall if any."""
    query = (
        select(Delivery, Item, Recall)
        .join(Decision, Decision.item_id == Delivery.item_id)
        .join(Item, Item.item_id == Delivery.item_id)
        .outerjoin(Recall, Recall.idempotency_key == Delivery.idempotency_key)
        .where(Decision.approver_channel == AUTONOMY_CHANNEL, Delivery.status == "sent")
        .order_by(Delivery.sent_at.desc())
    )
    if manager_id is not None:
        query = query.where(Item.manager_id == manager_id)
    if since is not None:
        query = query.where(Delivery.sent_at >= since)
    with uow.read() as s:
        return [
            {"delivery": d, "item": i, "recall": r}
            for d, i, r in s.execute(query)
        ]


def record_recall(uow: UnitOfWork, delivery: Delivery, *, by: str, note: str | None, result: Mapping[str, Any]) -> Recall:
    with uow.write() as s:
        existing = s.scalars(select(Recall).where(Recall.idempotency_key == delivery.idempotency_key)).first()
        if existing is not None:
            return existing
        recall = Recall(item_id=delivery.item_id, idempotency_key=delivery.idempotency_key, recalled_by=by, recalled_at=uow.now(), note=note)
        s.add(recall)
        s.flush()
        uow.audit(
            s, actor=by, action="autonomy.recalled", subject_type="delivery", subject_id=delivery.idempotency_key,
            payload={"item_id": delivery.item_id, "channel": delivery.channel, "note": note, **dict(result)},
        )
        return recall


# -- quiet hours: deferred sends


def defer_send(uow: UnitOfWork, item_id: str, channel: str, not_before: dt.datetime, reason: str, *, actor: str) -> tuple[DeferredSend, bool]:
    """Record that ``item_id`` on ``channel`` waits until ``not_before``; (row, created). Idempotent per item and channel."""
    with uow.write() as s:
        row = s.scalars(select(DeferredSend).where(DeferredSend.item_id == item_id, DeferredSend.channel == channel)).first()
        if row is not None and row.released_at is None:
            if row.not_before != not_before:  # the preferences changed (another zone or other hours)
                previous = row.not_before
                row.not_before, row.reason = not_before, reason
                s.flush()
                uow.audit(
                    s, actor=actor, action="delivery.deferral_moved", subject_type="item", subject_id=item_id,
                    payload={"item_id": item_id, "channel": channel, "from": previous.isoformat(),
                             "not_before": not_before.isoformat(), "reason": reason},
                )
            return row, False
        if row is not None:  # released earlier (e.g. a NotSent retry fell into quiet hours again): waits again
            row.not_before, row.reason, row.released_at = not_before, reason, None
        else:
            row = DeferredSend(item_id=item_id, channel=channel, not_before=not_before, reason=reason, created_at=uow.now())
            s.add(row)
        s.flush()
        uow.audit(
            s, actor=actor, action="delivery.deferred", subject_type="item", subject_id=item_id,
            payload={"item_id": item_id, "channel": channel, "not_before": not_before.isoformat(), "reason": reason},
        )
        return row, True


def release_deferred(uow: UnitOfWork, item_id: str, channel: str, *, actor: str) -> DeferredSend | None:
    with uow.write() as s:
        row = s.scalars(select(DeferredSend).where(DeferredSend.item_id == item_id, DeferredSend.channel == channel)).first()
        if row is None or row.released_at is not None:
            return row
        row.released_at = uow.now()
        s.flush()
        uow.audit(
            s, actor=actor, action="delivery.deferral_released", subject_type="item", subject_id=item_id,
            payload={"item_id": item_id, "channel": channel, "not_before": row.not_before.isoformat()},
        )
        return row


def waiting_sends(uow: UnitOfWork) -> list[DeferredSend]:
    with uow.read() as s:
        return list(s.scalars(select(DeferredSend).where(DeferredSend.released_at.is_(None)).order_by(DeferredSend.not_before)))


# -- LLM spend


def record_spend(uow: UnitOfWork, rows: Iterable[Mapping[str, Any]], *, run_id: str, actor: str = "pipeline") -> int:
    """One row per draft (``day``, ``packet_id``, ``rep_id``, ``manager_id``, ``drafter``, ``cost_usd``), one audit row per run."""
    rows = list(rows)
    if not rows:
        return 0
    with uow.write() as s:
        now = uow.now()
        for r in rows:
            s.add(LlmSpend(
                day=r["day"], run_id=run_id, packet_id=r["packet_id"], rep_id=r.get("rep_id"), manager_id=r.get("manager_id"),
                drafter=r["drafter"], cost_usd=float(r["cost_usd"]), recorded_at=now,
            ))
        s.flush()
        total = round(sum(float(r["cost_usd"]) for r in rows), 6)
        uow.audit(
            s, actor=actor, action="spend.recorded", subject_type="spend", subject_id=run_id,
            payload={"drafts": len(rows), "cost_usd": total, "days": sorted({str(r["day"]) for r in rows})},
        )
    return len(rows)


def spend_on(uow: UnitOfWork, day: dt.date) -> tuple[float, dict[str, float]]:
    """(total, per rep) LLM spend recorded for ``day``."""
    with uow.read() as s:
        rows = s.execute(select(LlmSpend.rep_id, func.sum(LlmSpend.cost_usd)).where(LlmSpend.day == day).group_by(LlmSpend.rep_id)).all()
    by_rep = {str(rep): float(total or 0.0) for rep, total in rows if rep is not None}
    return float(sum(float(t or 0.0) for _, t in rows)), by_rep


def spend_rows_on(uow: UnitOfWork, day: dt.date) -> list[Any]:
    """(drafter, packet_id, cost_usd) of each spend row of ``day``, in order: spend_drafts_on's figures
    without an ORM object per draft (the drafts step reads them after every run)."""
    with uow.read() as s:
        return list(s.execute(
            select(LlmSpend.drafter, LlmSpend.packet_id, LlmSpend.cost_usd).where(LlmSpend.day == day).order_by(LlmSpend.spend_id)
        ).all())


def spend_drafts_on(uow: UnitOfWork, day: dt.date) -> list[LlmSpend]:
    with uow.read() as s:
        return list(s.scalars(select(LlmSpend).where(LlmSpend.day == day).order_by(LlmSpend.spend_id)))


__all__ = [
    "AUTONOMY_APPROVER", "AUTONOMY_CHANNEL", "DeferredSend", "LlmSpend", "Recall", "autonomous_sends", "defer_send",
    "record_autonomous_approval", "record_recall", "record_spend", "release_deferred", "rule_agreement", "spend_drafts_on",
    "spend_on", "undecided_live_items", "waiting_sends",
]


# -- each rule's autonomy level as last evaluated (start-up and before every L5 send)

LEVEL_META_PREFIX = "autonomy:"


def rule_level_state(uow: UnitOfWork, rule_id: str) -> dict[str, Any] | None:
    with uow.read() as s:
        return uow.get_meta(s, LEVEL_META_PREFIX + rule_id, None)


def set_rule_level(uow: UnitOfWork, rule_id: str, level: int, *, action: str, payload: Mapping[str, Any], actor: str) -> dict[str, Any]:
    """Record a rule's effective level and the audit row of the change (``autonomy.l5_granted``, ``autonomy.demoted``...)."""
    key = LEVEL_META_PREFIX + rule_id
    if len(key) > 64:
        raise ValueError(f"rule id too long for the ledger: {rule_id!r}")
    with uow.write() as s:
        previous = uow.get_meta(s, key, None)
        value = {"level": level, "since": uow.now().isoformat(), "check": dict(payload)}
        uow.set_meta(s, key, value, actor)
        uow.audit(
            s, actor=actor, action=action, subject_type="autonomy", subject_id=rule_id,
            payload={"rule_id": rule_id, "from": (previous or {}).get("level"), "to": level, **dict(payload)},
        )
        return value
