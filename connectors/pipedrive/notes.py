"""The one Pipedrive write: a note on a deal, posted by the publisher for an approved item only.

Implements the ``crm_note`` channel of ``agents.review.channels``. The note's
content carries the idempotency marker ``[sales-supervisor:<key>]``; before a
retry writes, the publisher calls :meth:`PipedriveNoteWriter.find_delivered`,
which lists the deal's notes and looks for the marker, so a crash or a lost
response never writes the note twice. The kill switch and the mode are
re-read (``guard(ledger)``) immediately before the POST.

Only 429 is retried in place (Pipedrive refused the request, nothing was
written). A 5xx, a timeout or a connection lost after sending is
``OutcomeUnknown``: the note may exist; the publisher never writes it again
blindly (it looks for the marker, else a person resolves it). No connection at
all is ``NotSent``.
"""

from __future__ import annotations

import datetime as dt
import html
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
from connectors.pipedrive.client import PipedriveError, PipedriveReader, offset_paginator
from connectors.pipedrive.source import DEFAULT_BASE_URL

MARKER = "[sales-supervisor:{key}]"


class _NoteHttp(PipedriveReader):
    def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._rest.post(path, json=payload, hooks={"response": [self._raise_for_status]})
        except requests.RequestException as exc:
            if getattr(exc, "response", None) is not None:  # an HTTP error answer: classified by its status
                raise self._fail(exc, f"POST {path}") from None
            if never_connected(exc):
                raise NotSent(f"Pipedrive POST {path}: could not connect ({type(exc).__name__})") from None
            raise OutcomeUnknown(f"Pipedrive POST {path}: {type(exc).__name__} after sending (the note may exist)") from None
        try:
            body = response.json()
        except ValueError:
            raise OutcomeUnknown(f"Pipedrive POST {path}: HTTP {response.status_code} with an unreadable answer") from None
        if isinstance(body, dict) and body.get("success") is False:
            raise NotSent(f"Pipedrive POST {path}: refused: {body.get('error')}")
        return body


class PipedriveNoteWriter:
    """``crm_note`` channel writing Pipedrive deal notes (``POST /v1/notes``)."""

    name = "crm_note"
    checkable = True

    def __init__(
        self,
        ledger: Any,
        api_token: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        token_in: str = "header",
        timeout_s: float = 30.0,
        max_attempts: int = 4,
        backoff_factor: float = 1.0,
        max_retry_delay_s: float = 60.0,
        page_size: int = 100,
    ):
        self.ledger = ledger
        self.page_size = page_size
        self._http = _NoteHttp(
            api_token, base_url, token_in=token_in, timeout_s=timeout_s, max_attempts=max_attempts,
            backoff_factor=backoff_factor, max_retry_delay_s=max_retry_delay_s,
            retry_status=(429,), retry_exceptions=(),
        )

    @classmethod
    def from_env(cls, ledger: Any, environ: Mapping[str, str] | None = None, **kwargs: Any) -> PipedriveNoteWriter:
        env = os.environ if environ is None else environ
        base = (env.get("PIPEDRIVE_BASE_URL") or "").strip() or DEFAULT_BASE_URL
        if "://" not in base:
            base = f"https://{base}" if "." in base else f"https://{base}.pipedrive.com"
        return cls(ledger, (env.get("PIPEDRIVE_API_TOKEN") or "").strip(), base, **kwargs)

    def __repr__(self) -> str:
        return f"PipedriveNoteWriter(base_url={self._http.base_url!r})"

    @staticmethod
    def marker(key: str) -> str:
        return MARKER.format(key=key)

    def content(self, message: OutboundMessage) -> str:
        """Note HTML: the coaching text (escaped: it may hold anything a manager typed) and the marker."""
        text = escaping.html_text(message.text)
        head = escaping.html_text(f"{message.headline} (approved by {message.approver_id})")
        return f"<p><b>{head}</b></p><p>{text}</p><p>{html.escape(self.marker(message.idempotency_key))}</p>"

    @staticmethod
    def _deal_id(message: OutboundMessage) -> int:
        raw = (message.opportunity_id or "").strip()
        if not raw.isdigit():
            raise PermanentSendError(f"item {message.item_id}: {raw or 'no'} Pipedrive deal id to attach the note to")
        return int(raw)

    def send(self, message: OutboundMessage) -> str:
        payload = {"content": self.content(message), "deal_id": self._deal_id(message)}
        guard(self.ledger)
        try:
            body = self._http.post("/v1/notes", payload)
        except PipedriveError as exc:
            if exc.status is None or exc.status >= 500:  # the note may have been written before the error
                raise OutcomeUnknown(str(exc)) from None
            if exc.status == 429 or exc.status in (401, 403):  # refused (after the in-place 429 retries)
                raise NotSent(str(exc)) from None
            raise PermanentSendError(str(exc)) from None
        note = body.get("data") or {}
        return f"pipedrive-note:{note.get('id')}"

    def find_delivered(self, message: OutboundMessage, since: dt.datetime | None = None) -> str | None:
        marker = self.marker(message.idempotency_key)
        escaped = html.escape(marker)
        deal_id = self._deal_id(message)
        params = {"deal_id": deal_id, "sort": "add_time DESC", "limit": self.page_size}
        try:
            for page in self._http.pages("/v1/notes", params, offset_paginator(self.page_size)):
                for note in page:
                    content = str(note.get("content") or "")
                    if marker in content or escaped in content or marker in html.unescape(content):
                        return f"pipedrive-note:{note.get('id')}"
        except PipedriveError as exc:
            raise CannotCheck(f"cannot list the notes of deal {deal_id}: {exc}") from None
        return None
