"""Audit rows commit to the content of the rows they record; the current rows are checked against them.

The hash chain proves the audit trail was not edited, but on its own it says
nothing about the ``items``, ``decisions`` and ``deliveries`` tables: someone
who edits ``decisions.approver_id`` or ``edited_text`` in the database leaves
the chain intact. So every audit row that creates or changes such a row
carries ``record_sha256``, the sha256 of the row's canonical content after the
change (the fields below), and since the payload is hashed into the chain, the
chain commits to the rows. ``cross_check`` recomputes each current row's
digest and compares it with the newest audit row that records it:

- item:     ``item.added`` (the item as drafted: draft, evidence, manager, rule...)
- decision: ``decision.recorded`` (action, approver, edited text, mode...)
- delivery: the newest audit row about it (``deliveries.audit_delivery`` writes every one: status, attempts, external ref...)

A row whose digest differs is reported ``row_mismatch`` (naming the fields
that differ from the audited payload when it holds them); a row no audit row
records is ``unrecorded`` (inserted behind the ledger's back).
``check_sendable`` is the same check for one item before a delivery is claimed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agents.ledger.audit import AuditProblem, canonical_json, compute_row_hash
from agents.ledger.models import AuditRow, Decision, Delivery, Item, Meta

ITEM_FIELDS = (
    "item_id", "digest_id", "opportunity_id", "rep_id", "manager_id", "rule_id", "severity", "priority",
    "draft", "evidence", "flag_id", "created_at",
)
DECISION_FIELDS = (
    "decision_id", "item_id", "action", "approver_id", "approver_channel", "decided_at", "edited_text", "reason", "mode",
)
DELIVERY_FIELDS = (
    "delivery_id", "item_id", "channel", "idempotency_key", "status", "attempts", "external_ref",
    "created_at", "claimed_at", "lease_until", "sent_at", "error",
)


def _content(row: Any, fields: Iterable[str]) -> dict[str, Any]:
    return {f: getattr(row, f) for f in fields}


def _sha(content: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


def item_record(item: Item) -> dict[str, str]:
    """The payload key that commits an ``item.added`` audit row to the item as drafted."""
    return {"record_sha256": _sha(_content(item, ITEM_FIELDS))}


def decision_record(decision: Decision) -> dict[str, Any]:
    """The decision as recorded (small, so kept whole) and its digest."""
    content = _content(decision, DECISION_FIELDS)
    return {"record": content, "record_sha256": _sha(content)}


def delivery_record(delivery: Delivery) -> dict[str, Any]:
    content = _content(delivery, DELIVERY_FIELDS)
    return {"record": content, "record_sha256": _sha(content)}


def eval_record(value: dict[str, Any]) -> dict[str, str]:
    """Commits an ``eval.recorded`` audit row to the stored eval result (a row of ``meta``)."""
    return {"record_sha256": _sha(dict(value))}


def _differing_fields(row: Any, fields: Iterable[str], payload: dict[str, Any]) -> list[str]:
    """Fields whose current value differs from the audited one (from ``record``, else the payload's own keys)."""
    audited = payload.get("record") if isinstance(payload.get("record"), dict) else payload
    current = _content(row, fields)
    out = []
    for name in fields:
        if name in audited and canonical_json(current[name]) != canonical_json(audited[name]):
            out.append(name)
    if "approver_channel" in fields and "record" not in payload and "channel" in payload:
        if payload["channel"] != current["approver_channel"]:
            out.append("approver_channel")
    return out


def _mismatch(label: str, row: Any, fields: tuple[str, ...], audit: AuditRow | Any) -> AuditProblem | None:
    """None when ``row`` matches what ``audit`` recorded; else the problem."""
    try:
        payload = json.loads(audit.payload)
    except ValueError:
        payload = {}
    recomputed = compute_row_hash(
        at=audit.at, actor=audit.actor, action=audit.action, subject_type=audit.subject_type,
        subject_id=audit.subject_id, payload=audit.payload, prev_hash=audit.prev_hash,
    )
    if recomputed != audit.row_hash:
        return AuditProblem(audit.seq, "altered", f"seq {audit.seq}: row altered (the audit row recording {label} does not hash to its row_hash)")
    differing = _differing_fields(row, fields, payload)
    committed = payload.get("record_sha256")
    if committed is not None and committed != _sha(_content(row, fields)):
        what = ", ".join(differing) if differing else "its content"
        return AuditProblem(
            audit.seq, "row_mismatch",
            f"seq {audit.seq}: {label} differs from what the audit trail recorded ({what} changed outside the ledger)",
        )
    if committed is None and differing:
        return AuditProblem(
            audit.seq, "row_mismatch",
            f"seq {audit.seq}: {label} differs from what the audit trail recorded ({', '.join(differing)} changed outside the ledger)",
        )
    return None


def _latest_audit(session: Session, subject_type: str, subject_id: str, actions: Iterable[str] | None) -> AuditRow | None:
    """The newest audit row about a subject (of one of ``actions``; ``None``: any action)."""
    query = select(AuditRow).where(AuditRow.subject_type == subject_type, AuditRow.subject_id == subject_id)
    if actions is not None:
        query = query.where(AuditRow.action.in_(tuple(actions)))
    return session.scalars(query.order_by(AuditRow.seq.desc()).limit(1)).first()


def _check_recorded(
    session: Session, item_id: str, action: str, row: Any, fields: tuple[str, ...], unrecorded: str, label: str
) -> AuditProblem | None:
    """The row recorded under ``action`` for an item: recorded once, and as it is now."""
    audit = _latest_audit(session, "item", item_id, (action,))
    recorded = session.scalar(
        select(func.count()).select_from(AuditRow).where(
            AuditRow.subject_type == "item", AuditRow.subject_id == item_id, AuditRow.action == action
        )
    )
    if recorded and recorded > 1:
        return _recorded_twice(audit.seq, action, item_id, recorded)
    if audit is None:
        return AuditProblem(0, "unrecorded", f"{unrecorded}: no audit row records it (inserted outside the ledger)")
    return _mismatch(label, row, fields, audit)


def _check_item(session: Session, item: Item) -> AuditProblem | None:
    return _check_recorded(
        session, item.item_id, "item.added", item, ITEM_FIELDS, f"item {item.item_id}", f"item {item.item_id} (as drafted)"
    )


def _check_decision(session: Session, decision: Decision) -> AuditProblem | None:
    return _check_recorded(
        session, decision.item_id, "decision.recorded", decision, DECISION_FIELDS,
        f"decision on item {decision.item_id}", f"the decision on item {decision.item_id}",
    )


def _with_latest_audit(model: Any, subject_type: str, subject_key: Any, actions: tuple[str, ...] | None, order_by: Any):
    """Each row of ``model`` with its newest recording audit row (or None), in one set-based query."""
    latest = select(func.max(AuditRow.seq)).where(AuditRow.subject_type == subject_type, AuditRow.subject_id == subject_key)
    if actions is not None:
        latest = latest.where(AuditRow.action.in_(actions))
    latest = latest.correlate(model).scalar_subquery()
    return (
        select(model, AuditRow)
        .outerjoin(AuditRow, AuditRow.seq == latest)
        .order_by(order_by)
        .execution_options(yield_per=1000)
    )


def _recorded_twice(seq: int, action: str, item_id: str, n: int) -> AuditProblem:
    return AuditProblem(
        seq, "inserted",
        f"seq {seq}: item {item_id} has {n} {action} audit rows; the ledger writes one, so the later ones were appended outside it",
    )


def cross_check(session: Session) -> Iterator[AuditProblem]:
    """Every current item, decision, delivery and eval result against the audit row that records it.

    An item is added once and decided once: a second ``item.added`` or
    ``decision.recorded`` row for the same item (a forged row appended to make
    a tampered row match) is reported as inserted.
    """
    for action in ("item.added", "decision.recorded"):
        twice = (
            select(AuditRow.subject_id, func.count(), func.max(AuditRow.seq))
            .where(AuditRow.subject_type == "item", AuditRow.action == action)
            .group_by(AuditRow.subject_id)
            .having(func.count() > 1)
            .order_by(AuditRow.subject_id)
        )
        for item_id, n, last in session.execute(twice):
            yield _recorded_twice(last, action, item_id, n)
    checks = (
        (Item, "item", Item.item_id, ("item.added",), Item.item_id, lambda r: f"item {r.item_id}", lambda r: f"item {r.item_id} (as drafted)", ITEM_FIELDS),
        (Decision, "item", Decision.item_id, ("decision.recorded",), Decision.decision_id,
         lambda r: f"decision on item {r.item_id}", lambda r: f"the decision on item {r.item_id}", DECISION_FIELDS),
        (Delivery, "delivery", Delivery.idempotency_key, None, Delivery.delivery_id,
         lambda r: f"delivery {r.idempotency_key}", lambda r: f"delivery {r.idempotency_key}", DELIVERY_FIELDS),
    )
    for model, subject_type, key, actions, order, name, label, fields in checks:
        for row, audit in session.execute(_with_latest_audit(model, subject_type, key, actions, order)):
            if audit is None:
                yield AuditProblem(0, "unrecorded", f"{name(row)}: no audit row records it (inserted outside the ledger)")
            elif (p := _mismatch(label(row), row, fields, audit)) is not None:
                yield p
    for meta in session.scalars(select(Meta).where(Meta.key.like("eval:%")).order_by(Meta.key)):
        if (p := _check_eval(session, meta)) is not None:
            yield p


def _check_eval(session: Session, meta: Meta) -> AuditProblem | None:
    drafter = meta.key.split(":", 1)[1]
    audit = _latest_audit(session, "eval", drafter, ("eval.recorded",))
    if audit is None:
        return AuditProblem(0, "unrecorded", f"eval result for {drafter}: no audit row records it (written outside the ledger)")
    payload = json.loads(audit.payload)
    if payload.get("record_sha256") != _sha(dict(meta.value or {})):
        return AuditProblem(
            audit.seq, "row_mismatch",
            f"seq {audit.seq}: the eval result for {drafter} differs from what the audit trail recorded (changed outside the ledger)",
        )
    return None


def check_sendable(session: Session, item: Item, decision: Decision) -> list[AuditProblem]:
    """What stops ``item`` from being sent: its item or decision row no longer matches its audit row."""
    return [p for p in (_check_item(session, item), _check_decision(session, decision)) if p is not None]
