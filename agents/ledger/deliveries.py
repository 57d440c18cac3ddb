"""Deliveries (invariant 6): one delivery per item per channel, claimed under a unique idempotency key.

``claim_delivery`` inserts a pending row under the idempotency key (unique in
the database) with a lease; only the claimant that *acquired* the row sends.
A crash between claim and ``mark_sent`` leaves a pending row whose lease
expires; the next claim re-acquires it with ``Claim.resumed`` set, meaning "a
previous attempt may or may not have reached the far side". What the
publisher does then is the per-channel choice in ``DELIVERY_SEMANTICS``. The
lease (5 minutes by default) must be longer than a send's own timeout, or a
slow send could be re-claimed while still in flight.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence

from sqlalchemy import and_, exists, not_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from agents.ledger.audience import allowed_channels
from agents.ledger.errors import (
    DecisionNotVerified, DeliveryConflict, LedgerError, ManagerOnly, NotApproved, SendsHalted, UnknownDelivery,
)
from agents.ledger.integrity import check_sendable, delivery_record
from agents.ledger.models import APPROVING_ACTIONS, DELIVERY_CHANNELS, Decision, Delivery, Item
from agents.ledger.unit_of_work import UnitOfWork

DEFAULT_LEASE = dt.timedelta(minutes=5)
DEFAULT_MAX_ATTEMPTS = 5

DELIVERY_SEMANTICS: Mapping[str, str] = {
    "crm_note": (
        "exactly once by check-before-write: the note body carries the idempotency key as a marker. A crashed "
        "attempt (expired lease) is re-claimed and the deal's notes are searched for the marker first. An error "
        "after the request reached the CRM (timeout, reset mid-response, 5xx) marks the delivery 'unknown': it is "
        "never re-sent automatically; later runs look for the marker and mark it sent if found, else it waits for a "
        "person (publish resolve). Errors before the CRM accepted anything (no connection, 4xx, 429) are retried."
    ),
    "rep_slack": (
        "exactly once by check-before-write: the message carries the idempotency key in Slack message metadata; "
        "a crashed attempt is re-claimed and the DM's history since the claim is read first. An error after the "
        "post reached Slack (timeout, reset, 5xx, internal_error) marks the delivery 'unknown' (found later in the "
        "history: sent; else a person decides). Refusals (ok:false, 429) are retried; unreadable history is unknown."
    ),
    "rep_email": (
        "at most once: SMTP cannot be read back. 250 after DATA is sent, whatever happens at QUIT; a failure "
        "before the data was handed over is retried; data handed over with no answer, or a crashed attempt, is "
        "'unknown' for a person to check. The Message-ID is derived from the key so a receiving system can dedupe."
    ),
}


@dataclasses.dataclass(frozen=True)
class Claim:
    """The outcome of ``claim_delivery``: send only when ``acquired``."""

    delivery: Delivery
    acquired: bool
    previous_status: str | None  # None: a fresh claim; "pending": a crashed attempt; "failed"; "sent"

    @property
    def resumed(self) -> bool:
        """A previous attempt was claimed and never finished: it may have sent. Check before writing."""
        return self.acquired and self.previous_status == "pending"

    @property
    def already_sent(self) -> bool:
        return self.delivery.status == "sent"

    @property
    def needs_attention(self) -> bool:
        """An earlier attempt's outcome is unknown: only a person may decide it (``resolve_delivery``)."""
        return self.delivery.status == "unknown"


@dataclasses.dataclass(frozen=True)
class ApprovedItem:
    item: Item
    decision: Decision
    owed: tuple[str, ...]  # channels with no sent (and no dead-lettered) delivery yet

    @property
    def edited_text(self) -> str | None:
        return self.decision.edited_text


def audit_delivery(uow: UnitOfWork, s: Session, delivery: Delivery, action: str, *, actor: str, payload: Mapping) -> None:
    """The audit row for a change to ``delivery``, committing to its content after the change.

    Every change to a delivery row goes through here (a new status included), so
    ``audit verify`` can cross-check the row against its newest audit row.
    """
    s.flush()
    uow.audit(
        s, actor=actor, action=action, subject_type="delivery", subject_id=delivery.idempotency_key,
        payload={**payload, **delivery_record(delivery)},
    )


def delivery_key(item_id: str, channel: str) -> str:
    """The canonical idempotency key: one delivery per item per channel, ever."""
    return f"sales-supervisor/{channel}/{item_id}"


def sends_allowed_in(uow: UnitOfWork, s: Session) -> tuple[bool, str]:
    kill = uow.get_meta(s, "kill_switch", {})
    if kill.get("engaged"):
        return False, f"kill switch engaged by {kill.get('by')}: {kill.get('reason')}"
    if uow.get_meta(s, "mode", "shadow") != "live":
        return False, "shadow mode: nothing reaches reps or the CRM"
    return True, "live"


def approved_undelivered_items(
    uow: UnitOfWork, channels: Sequence[str] = ("rep_slack", "crm_note"), *, max_attempts: int = DEFAULT_MAX_ATTEMPTS
) -> list[ApprovedItem]:
    """Items approved (or edited) in live mode that still owe a delivery on one of ``channels``.

    A channel is owed until its delivery is sent; one that failed
    ``max_attempts`` times is dead-lettered (left for a person) and no
    longer owed. Shadow-mode approvals are never returned: going live does
    not flush the shadow backlog to reps.
    """
    unknown = set(channels) - set(DELIVERY_CHANNELS)
    if unknown or not channels:
        raise ValueError(f"channels must be a non-empty subset of {DELIVERY_CHANNELS}")

    def settled(channel: str):
        return exists().where(
            Delivery.item_id == Item.item_id,
            Delivery.channel == channel,
            or_(
                Delivery.status.in_(("sent", "unknown")),  # unknown: waits for a person, never retried
                and_(Delivery.status == "failed", Delivery.attempts >= max_attempts),
            ),
        )

    query = (
        select(Item, Decision)
        .join(Decision, Decision.item_id == Item.item_id)
        .where(Decision.action.in_(APPROVING_ACTIONS), Decision.mode == "live")
        .where(or_(*[not_(settled(c)) for c in channels]))
        .order_by(Decision.decision_id)
    )
    with uow.read() as s:
        pairs = [(item, decision) for item, decision in s.execute(query)]
        if not pairs:
            return []
        deliveries = s.scalars(select(Delivery).where(Delivery.item_id.in_([i.item_id for i, _ in pairs]))).all()
    done = {
        (d.item_id, d.channel)
        for d in deliveries
        if d.status in ("sent", "unknown") or (d.status == "failed" and d.attempts >= max_attempts)
    }
    out = []
    for item, decision in pairs:
        owed = tuple(c for c in allowed_channels(item, channels) if (item.item_id, c) not in done)
        if owed:
            out.append(ApprovedItem(item=item, decision=decision, owed=owed))
    return out


def claim_delivery(
    uow: UnitOfWork,
    item_id: str,
    channel: str,
    idempotency_key: str,
    *,
    lease: dt.timedelta = DEFAULT_LEASE,
    actor: str = "publisher",
) -> Claim:
    """Claim the right to send ``item_id`` on ``channel`` under ``idempotency_key``.

    - no row yet: a pending row is inserted (the key is unique in the
      database) and the claim is acquired;
    - sent: not acquired (``already_sent``) - do nothing;
    - pending with a live lease: not acquired - another worker is sending;
    - pending with an expired lease (a crash) or failed: re-acquired,
      ``attempts`` + 1; ``resumed`` tells a crash apart from a known failure.

    Refused (``SendsHalted``, audited) when the kill switch is engaged or in
    shadow mode, and (``NotApproved``, audited) unless the item has a live
    approval.
    """
    if channel not in DELIVERY_CHANNELS:
        raise ValueError(f"channel must be one of {DELIVERY_CHANNELS}, got {channel!r}")
    if not idempotency_key:
        raise ValueError("an idempotency key is required")
    try:
        return _claim(uow, item_id, channel, idempotency_key, lease, actor)
    except IntegrityError:
        # A concurrent claim won the unique key between our read and insert (possible only
        # without the write lock, e.g. a foreign writer): the row exists now, read it back.
        return _claim(uow, item_id, channel, idempotency_key, lease, actor)


def _claim(uow: UnitOfWork, item_id: str, channel: str, key: str, lease: dt.timedelta, actor: str) -> Claim:
    refusal: LedgerError | None = None
    with uow.write() as s:
        now = uow.now()
        existing = s.scalars(select(Delivery).where(Delivery.idempotency_key == key)).first()
        if existing is not None:
            if (existing.item_id, existing.channel) != (item_id, channel):
                raise DeliveryConflict(
                    f"key {key!r} belongs to item {existing.item_id} on {existing.channel}, not {item_id} on {channel}"
                )
            if existing.status == "sent":
                return Claim(existing, acquired=False, previous_status="sent")
            if existing.status == "unknown":  # never re-sent automatically: a person resolves it
                return Claim(existing, acquired=False, previous_status="unknown")
            if existing.status == "pending" and existing.lease_until is not None and existing.lease_until > now:
                return Claim(existing, acquired=False, previous_status="pending")
        else:
            other = s.scalars(select(Delivery).where(Delivery.item_id == item_id, Delivery.channel == channel)).first()
            if other is not None:
                raise DeliveryConflict(f"item {item_id} already has a {channel} delivery under key {other.idempotency_key!r}")
        allowed, why = sends_allowed_in(uow, s)
        decision = s.scalars(select(Decision).where(Decision.item_id == item_id)).first()
        base = {"item_id": item_id, "channel": channel, "idempotency_key": key}
        target = s.get(Item, item_id)
        if target is not None and channel not in allowed_channels(target, (channel,)):
            uow.audit(
                s, actor=actor, action="delivery.refused", subject_type="item", subject_id=item_id,
                payload={**base, "refusal": "not_for_this_channel", "rule_id": target.rule_id},
            )
            refusal = ManagerOnly(
                f"item {item_id} ({target.rule_id}) may not be sent on {channel}: "
                "a PIP or CRITICAL scorecard goes to the manager alone, and no scorecard becomes a CRM note"
            )
        elif not allowed:
            uow.audit(s, actor=actor, action="delivery.refused", subject_type="item", subject_id=item_id, payload={**base, "refusal": why})
            refusal = SendsHalted(why)
        elif decision is None or decision.action not in APPROVING_ACTIONS or decision.mode != "live":
            found = "no decision" if decision is None else f"{decision.action} in {decision.mode} mode"
            uow.audit(
                s, actor=actor, action="delivery.refused", subject_type="item", subject_id=item_id,
                payload={**base, "refusal": "not_approved", "decision": found},
            )
            refusal = NotApproved(f"item {item_id} has no live approval ({found}): nothing is sent without one")
        elif problems := check_sendable(s, s.get(Item, item_id), decision):
            uow.audit(
                s, actor=actor, action="delivery.refused", subject_type="item", subject_id=item_id,
                payload={**base, "refusal": "not_verified", "problems": [p.message for p in problems]},
            )
            refusal = DecisionNotVerified(
                f"item {item_id} is not sent: its decision or draft does not match the audit trail ("
                + "; ".join(p.message for p in problems) + ")"
            )
        elif existing is None:
            delivery = Delivery(
                item_id=item_id, channel=channel, idempotency_key=key, status="pending", attempts=1,
                created_at=now, claimed_at=now, lease_until=now + lease,
            )
            s.add(delivery)
            s.flush()
            audit_delivery(uow, s, delivery, "delivery.claimed", actor=actor, payload={**base, "attempt": 1, "decision_id": decision.decision_id})
            return Claim(delivery, acquired=True, previous_status=None)
        else:
            previous = existing.status
            existing.status, existing.attempts = "pending", existing.attempts + 1
            existing.claimed_at, existing.lease_until = now, now + lease
            s.flush()
            audit_delivery(
                uow, s, existing, "delivery.reclaimed", actor=actor,
                payload={**base, "attempt": existing.attempts, "previous_status": previous, "previous_error": existing.error},
            )
            return Claim(existing, acquired=True, previous_status=previous)
    assert refusal is not None
    raise refusal


def mark_sent(uow: UnitOfWork, idempotency_key: str, external_ref: str | None = None, *, actor: str = "publisher") -> Delivery:
    """Record a delivery as sent (idempotent: marking a sent delivery again changes nothing)."""
    with uow.write() as s:
        delivery = s.scalars(select(Delivery).where(Delivery.idempotency_key == idempotency_key)).first()
        if delivery is None:
            raise UnknownDelivery(idempotency_key)
        if delivery.status == "sent":
            return delivery
        delivery.status, delivery.external_ref, delivery.sent_at = "sent", external_ref, uow.now()
        delivery.lease_until, delivery.error = None, None
        s.flush()
        audit_delivery(
            uow, s, delivery, "delivery.sent", actor=actor,
            payload={"item_id": delivery.item_id, "channel": delivery.channel, "external_ref": external_ref, "attempts": delivery.attempts},
        )
        return delivery


def _close_unsent(
    uow: UnitOfWork, idempotency_key: str, status: str, error: str, event: str, already_sent: str, actor: str
) -> Delivery:
    """A delivery that did not (knowingly) arrive: record its status and error with the audit row; a sent one stays sent."""
    with uow.write() as s:
        delivery = s.scalars(select(Delivery).where(Delivery.idempotency_key == idempotency_key)).first()
        if delivery is None:
            raise UnknownDelivery(idempotency_key)
        if delivery.status == "sent":
            raise LedgerError(f"delivery {idempotency_key!r} was already sent; {already_sent}")
        delivery.status, delivery.error, delivery.lease_until = status, error, None
        s.flush()
        audit_delivery(
            uow, s, delivery, event, actor=actor,
            payload={"item_id": delivery.item_id, "channel": delivery.channel, "error": error, "attempts": delivery.attempts},
        )
        return delivery


def mark_failed(uow: UnitOfWork, idempotency_key: str, error: str, *, actor: str = "publisher") -> Delivery:
    return _close_unsent(uow, idempotency_key, "failed", error, "delivery.failed", "it cannot fail now", actor)


# -- deliveries whose outcome is unknown (the needs-attention list)


def mark_unknown(uow: UnitOfWork, idempotency_key: str, error: str, *, actor: str = "publisher") -> Delivery:
    """The send may or may not have arrived: park the delivery for a person; it is never retried automatically."""
    return _close_unsent(
        uow, idempotency_key, "unknown", error, "delivery.outcome_unknown", "its outcome is known", actor
    )


def deliveries_needing_attention(uow: UnitOfWork, channels: Sequence[str] | None = None) -> list[Delivery]:
    """Deliveries whose outcome is unknown, oldest first (what ``publish attention`` lists)."""
    query = select(Delivery).where(Delivery.status == "unknown").order_by(Delivery.delivery_id)
    if channels is not None:
        query = query.where(Delivery.channel.in_(tuple(channels)))
    with uow.read() as s:
        return list(s.scalars(query))


def _find(s: Session, ref: str) -> Delivery | None:
    found = s.get(Delivery, int(ref)) if ref.isdigit() else None
    return found or s.scalars(select(Delivery).where(Delivery.idempotency_key == ref)).first()


def find_delivery(uow: UnitOfWork, ref: str) -> Delivery | None:
    """A delivery by its id (``delivery_id``) or its idempotency key."""
    with uow.read() as s:
        return _find(s, ref)


def resolve_delivery(uow: UnitOfWork, ref: str, *, sent: bool, resolver: str, note: str | None = None) -> Delivery:
    """A person's verdict on a delivery whose outcome was unknown (audited with who and why).

    ``sent=True``: it arrived (the rep has it, the note exists): recorded as sent, never sent again.
    ``sent=False``: it did not arrive: recorded as failed with its attempts reset, so the next
    publish run sends it once more. Only a delivery in the ``unknown`` state can be resolved.
    """
    resolver = (resolver or "").strip()
    if not resolver:
        raise LedgerError("say who resolves the delivery (--as YOUR_ID)")
    with uow.write() as s:
        delivery = _find(s, ref)
        if delivery is None:
            raise UnknownDelivery(ref)
        if delivery.status != "unknown":
            raise LedgerError(
                f"delivery {delivery.delivery_id} ({delivery.idempotency_key}) is {delivery.status}, not waiting for a "
                "person: only deliveries with an unknown outcome can be resolved"
            )
        previous_error, previous_attempts = delivery.error, delivery.attempts
        if sent:
            delivery.status, delivery.sent_at = "sent", uow.now()
            delivery.external_ref = f"confirmed by {resolver}"[:255]
            delivery.error = None
        else:
            delivery.status, delivery.attempts = "failed", 0
            delivery.error = f"resolved as not sent by {resolver}" + (f": {note}" if note else "")
        audit_delivery(
            uow, s, delivery, "delivery.resolved", actor=resolver,
            payload={
                "item_id": delivery.item_id, "channel": delivery.channel, "verdict": "sent" if sent else "not_sent",
                "note": note, "previous_error": previous_error, "previous_attempts": previous_attempts,
            },
        )
        return delivery


def get_delivery(uow: UnitOfWork, idempotency_key: str) -> Delivery | None:
    with uow.read() as s:
        return s.scalars(select(Delivery).where(Delivery.idempotency_key == idempotency_key)).first()


def deliveries_for(uow: UnitOfWork, item_id: str) -> list[Delivery]:
    with uow.read() as s:
        return list(s.scalars(select(Delivery).where(Delivery.item_id == item_id).order_by(Delivery.delivery_id)))
