"""The one Salesforce write: an approved coaching item as a completed Task on the opportunity.

Used only by the publisher (``agents.review.publisher``) for items a manager approved in live
mode; the extract (``connectors.salesforce.source``) has no write path. The channel:

* re-checks the kill switch and mode (``agents.review.channels.guard``) immediately before the POST;
* writes ``POST /sobjects/Task`` with WhatId = the opportunity, Status = Completed, OwnerId = the
  manager's Salesforce user id when known, and the idempotency marker
  ``[sales-supervisor:<key>]`` in the Description;
* before a retry writes, ``find_delivered`` looks for a Task on that opportunity whose Description
  carries the marker (through ``queryAll``, so a note someone has since deleted still counts as
  delivered), and the publisher records that instead of writing twice.

Retries inside one ``send`` happen only where Salesforce refused the request (429, connect
timeouts). A 5xx (503 included: a proxy may answer it after the write), a read timeout or a
connection lost after sending is ``OutcomeUnknown``: never re-sent blindly (the publisher looks for
the marker, else a person resolves it). A 4xx is a refusal: ``NotSent`` or ``PermanentSendError``.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from typing import Any

import requests

from agents.review import escaping
from agents.review.channels import (
    CannotCheck,
    NotSent,
    OutboundMessage,
    OutcomeUnknown,
    PermanentSendError,
    guard,
    never_connected,
)
from connectors.salesforce.client import (
    DEFAULT_API_VERSION,
    SalesforceApiError,
    SalesforceAuthError,
    SalesforceClient,
    client_credentials_token,
    retrying_session,
)
from connectors.salesforce.config import SalesforceConfig
from connectors.salesforce.source import (
    ENV_ACCESS_TOKEN,
    ENV_API_VERSION,
    ENV_CLIENT_ID,
    ENV_CLIENT_SECRET,
    ENV_INSTANCE_URL,
    soql_datetime,
    soql_quote,
)

MARKER = "[sales-supervisor:{key}]"
_SUBJECT_MAX = 255


class SalesforceNoteWriter:
    """Channel ``crm_note`` for Salesforce (see ``agents.review.channels.Channel``)."""

    name = "crm_note"
    checkable = True

    def __init__(
        self,
        ledger: Any,
        instance_url: str,
        access_token: str,
        api_version: str = DEFAULT_API_VERSION,
        config: SalesforceConfig | None = None,
        owner_ids: Mapping[str, str] | None = None,
    ):
        self.ledger = ledger
        self.config = config or SalesforceConfig()
        self.client = SalesforceClient(instance_url, access_token, api_version, self.config)
        self.owner_ids = dict(owner_ids or {})  # manager_id -> Salesforce User id, when they differ
        # Only failures Salesforce did not act on are retried within a send.
        self._write_session = retrying_session(self.config, status_codes=(429,), exceptions=(requests.ConnectTimeout,))

    def __repr__(self) -> str:
        return f"SalesforceNoteWriter({self.client.instance_url!r}, token=***)"

    @classmethod
    def from_env(cls, ledger: Any, config: SalesforceConfig | None = None, env: Mapping[str, str] | None = None) -> SalesforceNoteWriter:
        env = os.environ if env is None else env
        instance = (env.get(ENV_INSTANCE_URL) or "").strip()
        if not instance:
            raise ValueError(f"{ENV_INSTANCE_URL} is not set")
        token = (env.get(ENV_ACCESS_TOKEN) or "").strip()
        if not token:
            client_id, secret = env.get(ENV_CLIENT_ID), env.get(ENV_CLIENT_SECRET)
            if not (client_id and secret):
                raise ValueError(f"set {ENV_ACCESS_TOKEN}, or {ENV_CLIENT_ID} and {ENV_CLIENT_SECRET}")
            instance, token = client_credentials_token(instance, client_id, secret, config)
        return cls(ledger, instance, token, env.get(ENV_API_VERSION) or DEFAULT_API_VERSION, config)

    # -- the note ----------------------------------------------------------------------------
    @staticmethod
    def marker(key: str) -> str:
        return MARKER.format(key=key)

    def owner_id(self, message: OutboundMessage) -> str | None:
        if message.manager_id in self.owner_ids:
            return self.owner_ids[message.manager_id]
        user_prefix = self.config.key_prefixes.get("User", "005")
        return message.manager_id if str(message.manager_id).startswith(user_prefix) else None

    def task_fields(self, message: OutboundMessage) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "WhatId": message.opportunity_id,
            "Subject": escaping.plain_text(message.headline.replace("\n", " "))[:_SUBJECT_MAX],
            "Description": (
                f"{escaping.plain_text(message.headline)} (approved by {message.approver_id}):\n"
                f"{escaping.plain_text(message.text)}\n\n{self.marker(message.idempotency_key)}"
            ),
            "Status": "Completed",
            "ActivityDate": dt.date.today().isoformat(),
        }
        owner = self.owner_id(message)
        if owner:
            fields["OwnerId"] = owner
        return fields

    def send(self, message: OutboundMessage) -> str:
        if not message.opportunity_id:
            raise PermanentSendError(f"item {message.item_id} has no opportunity to attach a Salesforce note to")
        fields = self.task_fields(message)
        guard(self.ledger)
        try:
            task_id = self.client.create("Task", fields, self._write_session)
        except SalesforceAuthError as exc:
            raise NotSent(str(exc)) from None  # an expired token: refused; a later run (with a fresh token) retries
        except SalesforceApiError as exc:
            if exc.status >= 500:
                raise OutcomeUnknown(f"{exc} (the Task may have been created)") from None
            if exc.status == 429 or exc.status < 400:  # rate limited, or answered success: false
                raise NotSent(str(exc)) from None
            # e.g. INSUFFICIENT_ACCESS_OR_READONLY, INVALID_CROSS_REFERENCE_KEY: retrying will not help
            raise PermanentSendError(str(exc)) from None
        except requests.RequestException as exc:
            if never_connected(exc):
                raise NotSent(f"Salesforce POST Task: could not connect ({type(exc).__name__})") from None
            raise OutcomeUnknown(f"Salesforce POST Task: {type(exc).__name__} after sending (the Task may exist)") from None
        except ValueError as exc:  # a 2xx whose body is not JSON: the Task was probably created
            raise OutcomeUnknown(f"Salesforce POST Task: unreadable answer ({exc})") from None
        return f"salesforce:Task/{task_id}"

    def find_delivered(self, message: OutboundMessage, since: dt.datetime | None = None) -> str | None:
        """The Task carrying ``message``'s marker on its opportunity, if an earlier attempt wrote one.

        Task.Description is a long text field SOQL cannot filter on, so the query narrows by
        WhatId (and CreatedDate since the first claim) and the marker is matched here.
        """
        if not message.opportunity_id:
            return None
        marker = self.marker(message.idempotency_key)
        conditions = [f"WhatId = {soql_quote(message.opportunity_id)}"]
        if since is not None:
            if since.tzinfo is not None:
                since = since.astimezone(dt.timezone.utc).replace(tzinfo=None)
            conditions.append(f"CreatedDate >= {soql_datetime(since - dt.timedelta(days=1))}")
        soql = f"SELECT Id, Description, CreatedDate FROM Task WHERE {' AND '.join(conditions)}"
        try:
            for page in self.client.query(soql, include_deleted=True):
                for record in page:
                    if marker in (record.get("Description") or ""):
                        return f"salesforce:Task/{record['Id']}"
        except (SalesforceApiError, requests.RequestException) as exc:
            raise CannotCheck(f"cannot query Salesforce Tasks on {message.opportunity_id}: {exc}") from None
        return None
