"""Outbound channels: the only code that reaches a rep or the CRM, and only for approved items.

Each channel maps to a ledger delivery channel (``rep_slack``, ``rep_email``,
``crm_note``), re-checks the kill switch (``ledger.sends_allowed()``)
immediately before sending, and carries the delivery's idempotency key to the
far side so a resumed claim can check before writing (see
``agents.ledger.DELIVERY_SEMANTICS``).

Every failure of ``send`` is one of three outcomes, and each channel decides which:

* it returns normally: **sent** (for email, also when the connection fails after
  the server accepted the message with 250 after DATA);
* ``NotSent`` / ``PermanentSendError``: the far side provably has nothing (the
  connection was never made, or it refused the request before accepting it,
  e.g. a 4xx or a 429 with Retry-After); a later run retries a ``NotSent``;
* ``OutcomeUnknown``: the request reached the far side and its answer was lost
  or was an error that may follow a write (a timeout after sending, a
  connection reset mid-response, a 5xx after a POST). Never retried
  automatically: the delivery waits on the needs-attention list for a person
  (``sales-supervisor publish attention`` / ``publish resolve``). The publisher
  treats any exception a channel did not classify the same way.
"""

from __future__ import annotations

import copy
import dataclasses
import email.policy
import datetime as dt
import hashlib
import smtplib
import socket
import sqlite3
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from collections.abc import Iterator
from typing import Any, Protocol

from agents.ledger import ApprovedItem, Ledger, SendsHalted
from agents.review import escaping
from agents.review.digests import coaching_text

SLACK_METADATA_EVENT = "sales_supervisor_coaching"
# Long header lines unfolded (RFC 5322 allows 998): the idempotency key header must read back exactly.
_EMAIL_POLICY = email.policy.default.clone(max_line_length=998)


class CannotCheck(Exception):
    """The channel cannot tell whether a message with this key was delivered."""


class OutcomeUnknown(Exception):
    """The send may or may not have reached the far side (e.g. a timeout after the data was handed over)."""


class NotSent(Exception):
    """Nothing reached the far side (no connection, or refused before acceptance): a later run may retry."""


class PermanentSendError(NotSent):
    """Nothing was delivered and retrying will not help (e.g. the rep has no Slack user id, a 400)."""


# Exceptions proving that a request never left: no connection was made.
_NEVER_CONNECTED: tuple[type[BaseException], ...] = (ConnectionRefusedError, socket.gaierror)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps (cause, context, exception args, urllib's ``reason``)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        nested = [e.__cause__, e.__context__, getattr(e, "reason", None), *getattr(e, "args", ())]
        todo.extend(n for n in nested if isinstance(n, BaseException))


def never_connected(exc: BaseException) -> bool:
    """True when a transport exception (requests, urllib3, urllib, socket) proves no connection was made,
    so the request cannot have reached the server: connection refused, no such host, a connect timeout."""
    import requests
    import urllib3.exceptions

    for e in _causes(exc):
        if isinstance(e, (*_NEVER_CONNECTED, requests.ConnectTimeout, urllib3.exceptions.NewConnectionError,
                          urllib3.exceptions.ConnectTimeoutError)):
            return True
    return False


@dataclasses.dataclass(frozen=True)
class OutboundMessage:
    item_id: str
    idempotency_key: str
    opportunity_id: str | None
    subject_label: str
    rep_id: str | None
    rep_name: str | None
    rep_slack_user_id: str | None
    rep_email: str | None
    manager_id: str
    manager_name: str | None
    manager_email: str | None
    approver_id: str
    text: str  # the coaching text: the manager's edited text, or the draft as approved
    edited: bool

    @classmethod
    def from_approved(cls, approved: ApprovedItem, key: str) -> OutboundMessage:
        item, decision = approved.item, approved.decision
        ev = item.evidence or {}
        rep, manager = ev.get("rep") or {}, ev.get("manager") or {}
        text = decision.edited_text if decision.action == "edit" and decision.edited_text else coaching_text(item.draft or {})
        return cls(
            item_id=item.item_id,
            idempotency_key=key,
            opportunity_id=item.opportunity_id,
            subject_label=str(ev.get("subject_label") or item.opportunity_id or item.rep_id or item.item_id),
            rep_id=item.rep_id,
            rep_name=rep.get("rep_name"),
            rep_slack_user_id=rep.get("slack_user_id"),
            rep_email=rep.get("email"),
            manager_id=item.manager_id,
            manager_name=manager.get("manager_name"),
            manager_email=manager.get("email"),
            approver_id=decision.approver_id,
            text=text,
            edited=decision.action == "edit",
        )

    @property
    def headline(self) -> str:
        return f"Coaching from {self.manager_name or self.manager_id} on {self.subject_label}"

    def as_record(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Channel(Protocol):
    name: str  # the ledger delivery channel
    checkable: bool  # can ``find`` tell whether a key was delivered?

    def send(self, message: OutboundMessage) -> str: ...

    def find_delivered(self, message: OutboundMessage, since: dt.datetime | None = None) -> str | None:
        """The external ref of an earlier delivery of ``message.idempotency_key``, None if none; CannotCheck if unknowable."""
        ...


def guard(ledger: Ledger) -> None:
    """The last check before anything leaves: the kill switch and the mode, read from the ledger now."""
    allowed, why = ledger.sends_allowed()
    if not allowed:
        raise SendsHalted(why)


# --------------------------------------------------------------------------- Slack DM to the rep


# Slack answers these with ok:false when "it's possible some aspect of the operation succeeded".
SLACK_UNKNOWN_ERRORS = frozenset({"internal_error", "fatal_error", "service_unavailable"})
# ok:false answers that will not change on a retry.
SLACK_PERMANENT_ERRORS = frozenset({
    "channel_not_found", "user_not_found", "users_not_found", "user_disabled", "cannot_dm_bot", "is_archived",
    "msg_too_long", "no_text", "invalid_metadata_format", "invalid_metadata_schema", "not_in_channel",
})


def classify_slack_failure(exc: BaseException, what: str) -> Exception:
    """The outcome of a failed Slack Web API write (a ``SlackApiError`` or a transport error)."""
    from slack_sdk.errors import SlackApiError

    if isinstance(exc, SlackApiError):
        status = getattr(exc.response, "status_code", None)
        data = getattr(exc.response, "data", None)
        error = data.get("error") if isinstance(data, dict) else None
        detail = f"Slack {what}: HTTP {status} {error or ''}".rstrip()
        if status is not None and status >= 500:
            return OutcomeUnknown(f"{detail} after the request was sent: the message may have been posted")
        if status == 200 and error in SLACK_UNKNOWN_ERRORS:
            return OutcomeUnknown(f"{detail}: Slack says part of the operation may have succeeded")
        if status == 429:
            retry_after = (getattr(exc.response, "headers", None) or {}).get("retry-after")
            return NotSent(f"{detail} (rate limited{f', retry after {retry_after} s' if retry_after else ''})")
        if error in SLACK_PERMANENT_ERRORS:
            return PermanentSendError(detail)
        return NotSent(detail)  # any other refusal (ok:false, 4xx): Slack posted nothing
    if never_connected(exc):
        return NotSent(f"Slack {what}: could not connect ({type(exc).__name__}: {exc})")
    return OutcomeUnknown(f"Slack {what}: {type(exc).__name__} after the request was sent ({exc})")


class SlackDmChannel:
    name = "rep_slack"
    checkable = True

    def __init__(self, ledger: Ledger, client: Any):
        self.ledger = ledger
        self.client = client
        # slack-sdk retries a lost connection by default, which for chat.postMessage would post again
        # blind. The post goes through a copy of the client with no automatic retries; reads keep them.
        self._post_client = copy.copy(client)
        self._post_client.retry_handlers = []

    def _dm(self, user: str) -> str:
        return self.client.conversations_open(users=user)["channel"]["id"]

    @staticmethod
    def text(message: OutboundMessage) -> str:
        """mrkdwn with every CRM- or model-supplied string escaped: no link, mention or broadcast survives."""
        return f"{escaping.slack_mrkdwn(message.headline)}:\n{escaping.slack_mrkdwn(message.text)}"

    def send(self, message: OutboundMessage) -> str:
        if not message.rep_slack_user_id:
            raise PermanentSendError(f"rep {message.rep_id} has no Slack user id")
        try:
            channel = self._dm(message.rep_slack_user_id)
        except Exception as exc:  # nothing was posted yet: opening the DM failed
            raise NotSent(f"Slack conversations.open: {type(exc).__name__}: {exc}") from None
        guard(self.ledger)
        try:
            resp = self._post_client.chat_postMessage(
                channel=channel,
                text=self.text(message),
                unfurl_links=False,
                unfurl_media=False,
                parse="none",
                link_names=False,
                metadata={
                    "event_type": SLACK_METADATA_EVENT,
                    "event_payload": {"idempotency_key": message.idempotency_key, "item_id": message.item_id},
                },
            )
        except Exception as exc:
            raise classify_slack_failure(exc, "chat.postMessage") from None
        return f"{resp['channel']}:{resp['ts']}"

    def find_delivered(self, message: OutboundMessage, since: dt.datetime | None = None) -> str | None:
        return self.find(message.idempotency_key, since, rep_slack_user_id=message.rep_slack_user_id)

    def find(self, key: str, since: dt.datetime | None = None, *, rep_slack_user_id: str | None = None) -> str | None:
        """Look for the key in the rep's DM history (since the first claim); CannotCheck if history is unreadable."""
        from slack_sdk.errors import SlackApiError

        if not rep_slack_user_id:
            raise CannotCheck("no rep Slack user id to look up the DM")
        try:
            channel = self._dm(rep_slack_user_id)
            oldest = f"{(since.timestamp() - 60) if since else 0:.6f}"
            cursor = None
            while True:
                resp = self.client.conversations_history(
                    channel=channel, oldest=oldest, include_all_metadata=True, limit=200, cursor=cursor
                )
                for msg in resp.get("messages", []):
                    meta = msg.get("metadata") or {}
                    if meta.get("event_type") == SLACK_METADATA_EVENT and (meta.get("event_payload") or {}).get("idempotency_key") == key:
                        return f"{channel}:{msg['ts']}"
                cursor = (resp.get("response_metadata") or {}).get("next_cursor")
                if not resp.get("has_more") or not cursor:
                    return None
        except (SlackApiError, OSError) as exc:
            raise CannotCheck(f"cannot read the rep's DM history: {exc}") from exc


# --------------------------------------------------------------------------- email to the rep


class _PhasedSMTP(smtplib.SMTP):
    """smtplib's client, noting when the message data (ending in CRLF.CRLF) has been handed to the server.

    Before that point the server cannot have accepted the message; after it, only its answer
    (250 = accepted) tells, and a lost answer means the outcome is unknown.
    """

    data_sent = False
    accepted = False

    def data(self, msg):  # type: ignore[override]
        self._in_data = True
        try:
            code, reply = super().data(msg)
        finally:
            self._in_data = False
        self.accepted = code == 250
        return code, reply

    def send(self, s):  # type: ignore[override]
        if getattr(self, "_in_data", False) and bytes(s if isinstance(s, bytes) else s.encode()).endswith(b"\r\n.\r\n"):
            self.data_sent = True
        return super().send(s)


class SmtpEmailChannel:
    """Email to the rep over SMTP: at most once.

    Outcomes (the server's answer decides, never a blind retry):

    * connection refused, TLS/login failure, a 4xx/5xx to MAIL, RCPT or DATA, or any error
      before the message data was handed over: not sent (``NotSent``; 5xx recipient or
      data refusals are ``PermanentSendError``);
    * 250 after the data: sent, whatever happens next (a 421 or a dropped connection at QUIT);
    * the data handed over and then no answer (timeout, disconnect): ``OutcomeUnknown``.
    """

    name = "rep_email"
    checkable = False  # SMTP cannot be read back: at-most-once

    def __init__(
        self,
        ledger: Ledger,
        host: str,
        port: int = 25,
        *,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 30.0,
    ):
        self.ledger = ledger
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password, self.starttls, self.timeout = username, password, starttls, timeout

    @staticmethod
    def message_id(key: str) -> str:
        return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@sales-supervisor>"

    def build(self, message: OutboundMessage) -> EmailMessage:
        if not message.rep_email:
            raise PermanentSendError(f"rep {message.rep_id} has no email address")
        msg = EmailMessage(policy=_EMAIL_POLICY)
        msg["From"] = self.sender
        msg["To"] = message.rep_email
        if message.manager_email:
            msg["Reply-To"] = message.manager_email
        msg["Subject"] = escaping.plain_text(message.headline.replace("\n", " ").replace("\r", " "))[:200]
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = self.message_id(message.idempotency_key)
        msg["X-Sales-Supervisor-Key"] = message.idempotency_key
        signature = message.manager_name or message.manager_id
        msg.set_content(f"{escaping.plain_text(message.text)}\n\n-- {escaping.plain_text(signature)}\n")
        msg.add_alternative(
            f"<html><body><p>{escaping.html_text(message.text)}</p><p>-- {escaping.html_text(signature)}</p></body></html>\n",
            subtype="html",
        )
        return msg

    def send(self, message: OutboundMessage) -> str:
        email = self.build(message)
        smtp = _PhasedSMTP(timeout=self.timeout)
        try:
            try:
                smtp.connect(self.host, self.port)
                if self.starttls:
                    smtp.starttls()
                if self.username:
                    smtp.login(self.username, self.password or "")
                guard(self.ledger)
                smtp.send_message(email)
            except SendsHalted:
                raise
            except smtplib.SMTPRecipientsRefused as exc:
                codes = [code for code, _ in exc.recipients.values()]
                error = NotSent if any(400 <= c < 500 for c in codes) else PermanentSendError
                raise error(f"SMTP refused the recipient before any data: {exc.recipients}") from None
            except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
                # An answer to MAIL, to DATA or to the data itself that is not 250: not accepted.
                error = PermanentSendError if 500 <= exc.smtp_code < 600 else NotSent
                raise error(f"SMTP refused the message: {exc.smtp_code} {exc.smtp_error!r}") from None
            except Exception as exc:
                if smtp.data_sent:
                    raise OutcomeUnknown(
                        f"SMTP: the message data was sent but no answer came back ({type(exc).__name__}: {exc}); "
                        "check the rep's inbox"
                    ) from None
                else:
                    raise NotSent(f"SMTP failed before the message data was sent: {type(exc).__name__}: {exc}") from None
            # 250 after DATA: the message is the server's now. Whatever QUIT answers (421, a drop) changes nothing.
            try:
                smtp.quit()
            except Exception:  # noqa: BLE001 - accepted is sent
                pass
        finally:
            smtp.close()
        return str(email["Message-ID"])

    def find_delivered(self, message: OutboundMessage, since: dt.datetime | None = None) -> str | None:
        raise CannotCheck("an SMTP server cannot be asked what it delivered")


# --------------------------------------------------------------------------- CRM notes (local)


class LocalCrmNotesChannel:
    """A local notes table standing in for the CRM (demo and CSV sources): ``<home>/crm_notes.sqlite``.

    The note body carries the idempotency key as a marker, and the key is
    unique in the table, so even a blind retry cannot write the note twice.
    """

    name = "crm_note"
    checkable = True
    MARKER = "[sales-supervisor:{key}]"

    def __init__(self, ledger: Ledger, path: Path | str):
        self.ledger = ledger
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute(
                """CREATE TABLE IF NOT EXISTS crm_notes (
                    note_id INTEGER PRIMARY KEY AUTOINCREMENT,
                    idempotency_key TEXT NOT NULL UNIQUE,
                    opportunity_id TEXT,
                    rep_id TEXT,
                    author TEXT NOT NULL,
                    body TEXT NOT NULL,
                    created_at TEXT NOT NULL
                )"""
            )

    @classmethod
    def at_home(cls, ledger: Ledger, home: Path | str) -> LocalCrmNotesChannel:
        return cls(ledger, Path(home) / "crm_notes.sqlite")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=15)
        conn.row_factory = sqlite3.Row
        return conn

    def send(self, message: OutboundMessage) -> str:
        body = (
            f"{escaping.plain_text(message.headline)} (approved by {message.approver_id}):\n"
            f"{escaping.plain_text(message.text)}\n\n{self.MARKER.format(key=message.idempotency_key)}"
        )
        guard(self.ledger)
        with self._connect() as conn:
            try:
                cur = conn.execute(
                    "INSERT INTO crm_notes (idempotency_key, opportunity_id, rep_id, author, body, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (message.idempotency_key, message.opportunity_id, message.rep_id, message.manager_id, body,
                     dt.datetime.now(dt.timezone.utc).isoformat()),
                )
                return f"note:{cur.lastrowid}"
            except sqlite3.IntegrityError:
                existing = self.find(message.idempotency_key)
                assert existing is not None
                return existing

    def find_delivered(self, message: OutboundMessage, since: dt.datetime | None = None) -> str | None:
        return self.find(message.idempotency_key)

    def find(self, key: str) -> str | None:
        """The note written under ``key`` (by the key column or the marker in a body), else None."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT note_id FROM crm_notes WHERE idempotency_key = ? OR body LIKE ? ESCAPE '\\' LIMIT 1",
                (key, "%" + self.MARKER.format(key=key).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"),
            ).fetchone()
        return f"note:{row['note_id']}" if row else None

    def notes(self, opportunity_id: str | None = None) -> list[dict[str, Any]]:
        with self._connect() as conn:
            if opportunity_id is None:
                rows = conn.execute("SELECT * FROM crm_notes ORDER BY note_id").fetchall()
            else:
                rows = conn.execute("SELECT * FROM crm_notes WHERE opportunity_id = ? ORDER BY note_id", (opportunity_id,)).fetchall()
        return [dict(r) for r in rows]
