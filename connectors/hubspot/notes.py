"""The one CRM write: a note on a HubSpot deal, for an approved coaching item (publisher only).

Implements the ``crm_note`` channel of ``agents.review.channels``. The note body carries the
delivery's idempotency marker ``[sales-supervisor:<key>]``; before a retry writes again the
publisher calls ``find_delivered``, which searches the deal's notes for the marker. The kill
switch is re-read (``guard``) immediately before the POST. Needs the scope
``crm.objects.contacts.write`` (HubSpot files notes under it) besides the read scopes.
"""

from __future__ import annotations

import datetime as dt
import html
import os
from collections.abc import Mapping
from typing import Any

import requests

from agents.ledger import Ledger
from agents.review import escaping
from agents.review.channels import CannotCheck, NotSent, OutboundMessage, OutcomeUnknown, PermanentSendError, guard, never_connected
from connectors.hubspot.client import DEFAULT_BASE_URL, HubSpotClient, HubSpotError
from connectors.hubspot.config import RetrySettings

NOTE_TO_DEAL = 214  # HUBSPOT_DEFINED association type: note -> deal
NOTES_PATH = "/crm/v3/objects/notes"


class HubSpotNoteWriter:
    name = "crm_note"
    checkable = True
    MARKER = "[sales-supervisor:{key}]"

    def __init__(self, ledger: Ledger, token: str, base_url: str = DEFAULT_BASE_URL, *,
                 retry: RetrySettings | None = None, set_owner: bool = True):
        self.ledger = ledger
        self.set_owner = set_owner  # the note shows the manager (a HubSpot owner id) as its author
        # Reads (the marker search) retry 429 and 5xx; the create retries only 429 (refused, so never
        # written): after a 5xx or a lost connection the note may exist, and the publisher checks first.
        self._reader = HubSpotClient(token, base_url, retry, read_only=True)
        self._writer = HubSpotClient(token, base_url, retry, read_only=False, retry_statuses=(429,))

    @classmethod
    def from_env(cls, ledger: Ledger, environ: Mapping[str, str] | None = None) -> HubSpotNoteWriter:
        env = os.environ if environ is None else environ
        return cls(ledger, env.get("HUBSPOT_TOKEN", "").strip(), env.get("HUBSPOT_BASE_URL", "").strip() or DEFAULT_BASE_URL)

    def __repr__(self) -> str:
        return f"HubSpotNoteWriter(base_url={self._writer.base_url!r})"

    def marker(self, key: str) -> str:
        return self.MARKER.format(key=key)

    def body(self, message: OutboundMessage) -> str:
        """HTML (what hs_note_body holds): the headline, the coaching text (CRM text escaped and defanged), the marker."""
        text = escaping.html_text(message.text)
        head = escaping.html_text(f"{message.headline} (approved by {message.approver_id})")
        return f"<p><strong>{head}</strong></p><p>{text}</p><p>{html.escape(self.marker(message.idempotency_key))}</p>"

    def send(self, message: OutboundMessage) -> str:
        if not message.opportunity_id:
            raise PermanentSendError(f"item {message.item_id} has no deal to attach the note to")
        properties: dict[str, Any] = {
            "hs_note_body": self.body(message),
            "hs_timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        }
        if self.set_owner and str(message.manager_id).isdigit():
            properties["hubspot_owner_id"] = str(message.manager_id)
        payload = {
            "properties": properties,
            "associations": [
                {
                    "to": {"id": str(message.opportunity_id)},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": NOTE_TO_DEAL}],
                }
            ],
        }
        guard(self.ledger)  # the kill switch, read now, right before the write
        try:
            created = self._writer.post(NOTES_PATH, payload)
        except HubSpotError as exc:
            if exc.status is None or exc.status >= 500:  # the create may have landed before the error
                raise OutcomeUnknown(str(exc)) from None
            if exc.status in (400, 404, 409):
                raise PermanentSendError(str(exc)) from None
            raise NotSent(str(exc)) from None  # 401, 403, 429 after its retries: refused, nothing written
        except requests.RequestException as exc:
            if never_connected(exc):  # connection refused, no such host, connect timeout: nothing was sent
                raise NotSent(f"HubSpot POST {NOTES_PATH}: could not connect ({type(exc).__name__})") from None
            # a read timeout, a reset mid-response, an unreadable answer: the note may exist
            raise OutcomeUnknown(f"HubSpot POST {NOTES_PATH}: {type(exc).__name__} after sending") from None
        return f"note:{created.get('id')}"

    def find_delivered(self, message: OutboundMessage, since: dt.datetime | None = None) -> str | None:
        if not message.opportunity_id:
            raise CannotCheck("no deal id to search the notes of")
        return self.find(message.idempotency_key, str(message.opportunity_id), since)

    def find(self, key: str, deal_id: str, since: dt.datetime | None = None) -> str | None:
        """The note on ``deal_id`` carrying ``key``'s marker, else None; CannotCheck when HubSpot cannot say."""
        filters: list[dict[str, Any]] = [{"propertyName": "associations.deal", "operator": "EQ", "value": deal_id}]
        if since is not None:
            lower = (since if since.tzinfo else since.replace(tzinfo=dt.UTC)) - dt.timedelta(hours=1)  # clock skew
            filters.append({"propertyName": "hs_timestamp", "operator": "GTE", "value": str(int(lower.timestamp() * 1000))})
        body = {
            "filterGroups": [{"filters": filters}],
            "properties": ["hs_note_body", "hs_timestamp"],
            "sorts": [{"propertyName": "hs_timestamp", "direction": "DESCENDING"}],
            "limit": 100,
        }
        markers = {self.marker(key), html.escape(self.marker(key))}
        try:
            for page in self._reader.search("notes", body):
                for note in page:
                    text = str((note.get("properties") or {}).get("hs_note_body") or "")
                    if any(m in text for m in markers):
                        return f"note:{note.get('id')}"
        except HubSpotError as exc:
            raise CannotCheck(f"cannot search the deal's notes: {exc}") from None
        return None
