"""Recall an autonomous (L5) send where the channel allows it: a Slack DM is deleted (chat.delete); an
email cannot be taken back, and the refusal says so. Only the item's manager or a delegate may recall;
every recall (and every refused one) is audited, and a recall counts against the rule's agreement."""

from __future__ import annotations

from typing import Any

from agents.ledger import Ledger, LedgerError, NotAuthorised, UnknownDelivery
from agents.ledger import autonomy as _store


class RecallRefused(LedgerError):
    pass


RECALLABLE = {"rep_slack": "chat.delete removes the DM"}
NOT_RECALLABLE = {
    "rep_email": "an email cannot be taken back once the server accepted it; write to the rep",
    "rep_teams": "no Teams channel is configured to recall through",
    "crm_note": "L5 never writes CRM notes",
}


def recall_send(ledger: Ledger, ref: str, *, by: str, slack_client: Any | None = None, note: str | None = None) -> dict[str, Any]:
    """Recall the autonomous delivery ``ref`` (delivery id or idempotency key) as ``by``; returns what happened."""
    delivery = ledger.find_delivery(ref)
    if delivery is None:
        raise UnknownDelivery(ref)
    item, decision = ledger.get_item(delivery.item_id), ledger.get_decision(delivery.item_id)

    def refuse(exc: LedgerError, why: str) -> LedgerError:
        ledger.record_event(by or "unknown", "autonomy.recall_refused", "delivery", delivery.idempotency_key,
                            {"item_id": delivery.item_id, "channel": delivery.channel, "refusal": why})
        return exc

    if decision is None or decision.approver_channel != _store.AUTONOMY_CHANNEL:
        raise refuse(RecallRefused(
            f"delivery {delivery.delivery_id} was approved by {decision.approver_id if decision else 'nobody'}, not sent on "
            "your behalf at L5: only autonomous sends are recalled here"), "not_autonomous")
    if not ledger.is_authorised(by, item.manager_id):
        raise refuse(NotAuthorised(f"{by} may not recall a send made on behalf of {item.manager_id}"), "not_authorised")
    if delivery.status != "sent":
        raise refuse(RecallRefused(f"delivery {delivery.delivery_id} is {delivery.status}, not sent: nothing to recall"), "not_sent")
    if delivery.channel not in RECALLABLE:
        raise refuse(RecallRefused(f"cannot recall a {delivery.channel} send: {NOT_RECALLABLE.get(delivery.channel, 'not supported')}"),
                     "channel_cannot_recall")
    if slack_client is None:
        raise RecallRefused("recalling a Slack DM needs SLACK_BOT_TOKEN (the bot deletes its own message)")
    channel, _, ts = (delivery.external_ref or "").partition(":")
    if not channel or not ts:
        raise refuse(RecallRefused(f"delivery {delivery.delivery_id} has no Slack message reference ({delivery.external_ref!r})"), "no_ref")
    from slack_sdk.errors import SlackApiError

    try:
        slack_client.chat_delete(channel=channel, ts=ts)
        result = {"deleted": True, "slack_ref": delivery.external_ref}
    except SlackApiError as exc:
        error = (exc.response.data or {}).get("error") if isinstance(exc.response.data, dict) else str(exc)
        if error != "message_not_found":
            raise refuse(RecallRefused(f"Slack refused chat.delete: {error}"), f"slack:{error}") from None
        result = {"deleted": False, "slack_ref": delivery.external_ref, "slack": "message_not_found (already deleted)"}
    _store.record_recall(ledger.uow, delivery, by=by, note=note, result=result)
    return {"delivery_id": delivery.delivery_id, "item_id": delivery.item_id, "channel": delivery.channel, **result}
