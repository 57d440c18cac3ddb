"""The one Pipedrive write: a note on a deal, posted by the publisher for an approved item only.

Implements the ``crm_note`` channel of ``agents.review.channels``. The note's
content carries the idempotency marker ``[sales-supervisor:<key>]``; before a
retry writes, the publisher calls :meth:`PipedriveNoteWriter.find_delivered`,
which lists the deal's notes and looks for the marker, so a crash or a lost
response never writes the note twice. The kill switch and the mode are
re-read (``guard(ledger)``) immediately before the POST.

Only 429 is retried in place (Pipedrive refused the request, nothing was
written). A 5xx or a lost connection is not: the note may exist, and the next
publisher run checks the marker before writing again.
"""

from __future__ import annotations

import datetime as dt
import html
import os
from collections.abc import Mapping
from typing import Any

import requests

from agents.review.channels import CannotCheck, OutboundMessage, PermanentSendError, guard
from connectors.pipedrive.client import PipedriveError, PipedriveReader, offset_paginator
from connectors.pipedrive.source import DEFAULT_BASE_URL

MARKER = "[sales-supervisor:{key}]"


class _NoteHttp(PipedriveReader):
    def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._rest.post(path, json=payload, hooks={"response": [self._raise_for_status]})
        except requests.RequestException as exc:
            raise self._fail(exc, f"POST {path}") from None
        return self._check_body(response, f"POST {path}")


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
        text = html.escape(message.text).replace("\n", "<br>")
        head = html.escape(f"{message.headline} (approved by {message.approver_id})")
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
            if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
                raise PermanentSendError(str(exc)) from None
            raise  # 5xx, 429 after retries, lost connection: the next run checks the marker first
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
