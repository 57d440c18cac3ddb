"""Publish approved coaching: exactly once per item per channel, only in live mode, never past the kill switch.

For each item approved (or edited) in live mode that still owes a delivery:

1. claim the delivery in the ledger under ``Ledger.delivery_key(item, channel)``
   (the key is unique in the database; only the claimant sends);
2. on a re-claim (a crashed or failed earlier attempt) ask the channel
   whether the key already arrived, and if so only record it as sent;
   a channel that cannot be asked (email) is not resent after a crash;
3. send (the channel re-checks the kill switch first), then ``mark_sent``;
   a failure the channel proves left nothing at the far side (``NotSent``) is
   ``mark_failed`` and retried on a later run; any other failure
   (``OutcomeUnknown``, or an exception no channel classified) is
   ``mark_unknown``: never retried automatically. Such deliveries form the
   needs-attention list: each run looks for them at the far side (checkable
   channels) and records the ones it finds as sent; the rest wait for a person
   (``sales-supervisor publish attention`` / ``publish resolve``).

A crash between send and ``mark_sent`` leaves a pending claim; once its lease
expires the next run re-claims it, finds the key at the far side, and marks
it sent without sending again.

In shadow mode nothing is claimed or sent: the report counts the
shadow-approved items that would have gone out, and the outbox records them.

With an ``autonomy`` governor (agents/autonomy), each run first evaluates the
rules' levels (L5 only while its bar holds) and records L5 approvals for
low-risk nudges, and every send is first asked about: a rule at L1/L2 sends
nothing, an L5 approval is re-checked (bar and high-risk categories), the
rep's preferred channel wins, and a send in the rep's quiet hours is deferred
(it stays owed, so the first run after them sends it, once).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from agents.ledger import DecisionNotVerified, Ledger, NotApproved, SendsHalted
from agents.review.channels import CannotCheck, Channel, NotSent, OutboundMessage, OutcomeUnknown, PermanentSendError
from agents.review.outbox import write_message

if TYPE_CHECKING:
    from agents.autonomy.governor import AutonomyGovernor

log = logging.getLogger(__name__)

OUTCOME_UNKNOWN = "outcome unknown, not resent"


@dataclasses.dataclass
class PublishReport:
    mode: str
    sent: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)  # (item_id, channel, external ref)
    recovered: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)  # found already delivered on a re-claim
    already_sent: int = 0
    in_flight: int = 0  # claimed by another live worker
    failed: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)  # (item_id, channel, error)
    needs_attention: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)  # outcome unknown
    would_send: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # shadow: (item_id, channel)
    halted: str | None = None
    deferred: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)  # (item_id, channel, not before)
    held: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)  # (item_id, channel, why not sent)
    autonomous: list[str] = dataclasses.field(default_factory=list)  # items approved at L5 by this run

    @property
    def counts(self) -> dict[str, int | str | None]:
        return {
            "mode": self.mode,
            "sent": len(self.sent),
            "recovered": len(self.recovered),
            "already_sent": self.already_sent,
            "in_flight": self.in_flight,
            "failed": len(self.failed),
            "needs_attention": len(self.needs_attention),
            "would_send": len(self.would_send),
            "halted": self.halted,
            "deferred": len(self.deferred),
            "held": len(self.held),
            "autonomous": len(self.autonomous),
        }


def publish_approved(
    ledger: Ledger,
    channels: Mapping[str, Channel],
    mode: str | None = None,
    *,
    outbox_dir: Path | str | None = None,
    actor: str = "publisher",
    autonomy: AutonomyGovernor | None = None,
) -> PublishReport:
    """Deliver every owed approved item on each of ``channels`` (ledger channel name -> Channel).

    ``mode``: what the caller believes (AGENT_MODE); the ledger's own mode
    must agree for anything to be sent, so a stale "live" cannot override a
    ledger in shadow mode.
    """
    effective = "live" if (mode in (None, "live") and ledger.mode() == "live") else "shadow"
    report = PublishReport(mode=effective)
    if not channels:
        return report
    if effective == "shadow":
        _shadow(ledger, channels, report, outbox_dir)
        return report

    allowed, why = ledger.sends_allowed()
    if not allowed:
        report.halted = why
        return report

    if autonomy is not None:
        autonomy.start(ledger)
        report.autonomous, held = autonomy.approve_l5(ledger, channels)
        report.held.extend(held)
    for approved in ledger.approved_undelivered_items(tuple(channels)):
        for channel_name in approved.owed:
            channel = channels[channel_name]
            if autonomy is not None and (hold := autonomy.hold(ledger, approved, channel_name, channels)) is not None:
                if hold.kind == "deferred":
                    report.deferred.append((approved.item.item_id, channel_name, hold.not_before.isoformat()))
                else:
                    report.held.append((approved.item.item_id, channel_name, hold.reason))
                continue
            key = Ledger.delivery_key(approved.item.item_id, channel_name)
            message = OutboundMessage.from_approved(approved, key)
            try:
                sent_before = len(report.sent) + len(report.recovered)
                _deliver(ledger, channel, message, report, outbox_dir, actor)
                if autonomy is not None and len(report.sent) + len(report.recovered) > sent_before:
                    autonomy.sent(ledger, approved.item.item_id, channel_name)
            except SendsHalted as exc:
                report.halted = str(exc)
                return report
    _review_unknown(ledger, channels, report, actor)
    return report


def _review_unknown(ledger: Ledger, channels: Mapping[str, Channel], report: PublishReport, actor: str) -> None:
    """Deliveries with an unknown outcome: found at the far side -> sent; otherwise listed, never re-sent."""
    reported = {(item_id, name) for item_id, name, _ in report.needs_attention}
    for delivery in ledger.deliveries_needing_attention(tuple(channels)):
        if (delivery.item_id, delivery.channel) in reported:
            continue
        channel = channels[delivery.channel]
        if channel.checkable:
            item, decision = ledger.get_item(delivery.item_id), ledger.get_decision(delivery.item_id)
            if item is not None and decision is not None:
                from agents.ledger import ApprovedItem

                message = OutboundMessage.from_approved(ApprovedItem(item, decision, (delivery.channel,)), delivery.idempotency_key)
                try:
                    found = channel.find_delivered(message, since=delivery.created_at)
                except (CannotCheck, NotSent, PermanentSendError):
                    found = None
                except Exception as exc:  # noqa: BLE001 - a look-up failure leaves it for a person
                    log.warning("cannot look up %s: %s", delivery.idempotency_key, exc)
                    found = None
                if found:
                    ledger.mark_sent(delivery.idempotency_key, found, actor=actor)
                    report.recovered.append((delivery.item_id, delivery.channel, found))
                    continue
        report.needs_attention.append((delivery.item_id, delivery.channel, delivery.error or OUTCOME_UNKNOWN))


def _deliver(
    ledger: Ledger, channel: Channel, message: OutboundMessage, report: PublishReport, outbox_dir: Path | str | None, actor: str
) -> None:
    key, item_id, name = message.idempotency_key, message.item_id, channel.name
    previous = ledger.get_delivery(key)
    if previous is not None and previous.status == "failed" and (previous.error or "").startswith(OUTCOME_UNKNOWN):
        # Written by releases before the 'unknown' status: park it on the needs-attention list now.
        ledger.mark_unknown(key, previous.error or OUTCOME_UNKNOWN, actor=actor)
        return
    try:
        claim = ledger.claim_delivery(item_id, name, key, actor=actor)
    except DecisionNotVerified as exc:  # tampered decision or draft: refused (and audited) by the ledger
        report.needs_attention.append((item_id, name, str(exc)))
        return
    except NotApproved as exc:
        report.failed.append((item_id, name, str(exc)))
        return
    if not claim.acquired:
        if claim.already_sent:
            report.already_sent += 1
        else:
            report.in_flight += 1
        return

    if claim.previous_status in ("pending", "failed"):
        # An earlier attempt may have reached the far side: check before writing again.
        if channel.checkable:
            try:
                found = channel.find_delivered(message, since=claim.delivery.created_at)
            except CannotCheck as exc:
                error = f"{OUTCOME_UNKNOWN}: {exc}"
                ledger.mark_unknown(key, error, actor=actor)
                report.needs_attention.append((item_id, name, error))
                return
            if found:
                ledger.mark_sent(key, found, actor=actor)
                report.recovered.append((item_id, name, found))
                return
        elif claim.resumed:
            error = f"{OUTCOME_UNKNOWN}: a previous attempt crashed mid-send; check the recipient's inbox"
            ledger.mark_unknown(key, error, actor=actor)
            report.needs_attention.append((item_id, name, error))
            return

    try:
        ref = channel.send(message)
    except SendsHalted as exc:
        # Checked by the channel just before sending: nothing left, so a later run may retry.
        ledger.mark_failed(key, f"halted before send: {exc}", actor=actor)
        raise
    except PermanentSendError as exc:
        ledger.mark_failed(key, f"permanent: {exc}", actor=actor)
        report.failed.append((item_id, name, str(exc)))
        return
    except NotSent as exc:  # the channel proved nothing was delivered: a later run retries
        error = f"not sent: {exc}"
        ledger.mark_failed(key, error, actor=actor)
        report.failed.append((item_id, name, error))
        log.warning("delivery %s failed: %s", key, error)
        return
    except Exception as exc:  # OutcomeUnknown, or anything unclassified: it may have arrived, never resent blindly
        detail = str(exc) if isinstance(exc, OutcomeUnknown) else f"{type(exc).__name__}: {exc}"
        error = f"{OUTCOME_UNKNOWN}: {detail}"
        ledger.mark_unknown(key, error, actor=actor)
        report.needs_attention.append((item_id, name, error))
        log.warning("delivery %s needs attention: %s", key, error)
        return
    ledger.mark_sent(key, ref, actor=actor)
    report.sent.append((item_id, name, ref))
    if outbox_dir is not None:
        write_message(outbox_dir, mode="live", channel=name, item_id=item_id, record={**message.as_record(), "external_ref": ref})


def _shadow(ledger: Ledger, channels: Mapping[str, Channel], report: PublishReport, outbox_dir: Path | str | None) -> None:
    """Count (and record in the outbox) what live mode would have sent for shadow approvals."""
    from agents.ledger import ApprovedItem

    cursor = None
    while True:
        decisions, next_cursor = ledger.decisions_since(cursor)
        for decision in decisions:
            if decision.action not in ("approve", "edit") or decision.mode != "shadow":
                continue
            item = ledger.get_item(decision.item_id)
            if item is None:
                continue
            from agents.ledger.audience import allowed_channels

            owed = allowed_channels(item, tuple(channels))  # a PIP or CRITICAL scorecard: none, ever
            approved = ApprovedItem(item=item, decision=decision, owed=owed)
            for name in owed:
                report.would_send.append((item.item_id, name))
                if outbox_dir is not None:
                    message = OutboundMessage.from_approved(approved, Ledger.delivery_key(item.item_id, name))
                    write_message(outbox_dir, mode="shadow", channel=name, item_id=item.item_id, record={**message.as_record(), "sent": False})
        if next_cursor == cursor or not decisions:
            break
        cursor = next_cursor
