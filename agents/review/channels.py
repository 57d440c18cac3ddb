"""Outbound channels: the only code that reaches a rep or the CRM, and only for approved items.

Each channel maps to a ledger delivery channel (``rep_slack``, ``rep_email``,
``crm_note``), re-checks the kill switch (``ledger.sends_allowed()``)
immediately before sending, and carries the delivery's idempotency key to the
far side so a resumed claim can check before writing (see
``agents.ledger.DELIVERY_SEMANTICS``).
"""

from __future__ import annotations

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
from typing import Any, Protocol

from agents.ledger import ApprovedItem, Ledger, SendsHalted
from agents.review.digests import coaching_text

SLACK_METADATA_EVENT = "sales_supervisor_coaching"
# Long header lines unfolded (RFC 5322 allows 998): the idempotency key header must read back exactly.
_EMAIL_POLICY = email.policy.default.clone(max_line_length=998)


class CannotCheck(Exception):
    """The channel cannot tell whether a message with this key was delivered."""


class OutcomeUnknown(Exception):
    """The send may or may not have reached the far side (e.g. a timeout after the data was handed over)."""


class PermanentSendError(Exception):
    """Retrying will not help (e.g. the rep has no Slack user id)."""


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


class SlackDmChannel:
    name = "rep_slack"
    checkable = True

    def __init__(self, ledger: Ledger, client: Any):
        self.ledger = ledger
        self.client = client

    def _dm(self, user: str) -> str:
        return self.client.conversations_open(users=user)["channel"]["id"]

    def send(self, message: OutboundMessage) -> str:
        if not message.rep_slack_user_id:
            raise PermanentSendError(f"rep {message.rep_id} has no Slack user id")
        channel = self._dm(message.rep_slack_user_id)
        guard(self.ledger)
        resp = self.client.chat_postMessage(
            channel=channel,
            text=f"{message.headline}:\n{message.text}",
            unfurl_links=False,
            metadata={
                "event_type": SLACK_METADATA_EVENT,
                "event_payload": {"idempotency_key": message.idempotency_key, "item_id": message.item_id},
            },
        )
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


class SmtpEmailChannel:
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
        msg["Subject"] = message.headline.replace("\n", " ")[:200]
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = self.message_id(message.idempotency_key)
        msg["X-Sales-Supervisor-Key"] = message.idempotency_key
        msg.set_content(f"{message.text}\n\n-- {message.manager_name or message.manager_id}\n")
        return msg

    def send(self, message: OutboundMessage) -> str:
        email = self.build(message)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username:
                smtp.login(self.username, self.password or "")
            guard(self.ledger)
            try:
                refused = smtp.send_message(email)
            except (socket.timeout, smtplib.SMTPServerDisconnected) as exc:
                # The server may already have accepted the data: do not retry blindly.
                raise OutcomeUnknown(f"SMTP connection lost during send: {exc!r}") from exc
        if refused:
            raise PermanentSendError(f"recipients refused: {refused}")
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
        body = f"{message.headline} (approved by {message.approver_id}):\n{message.text}\n\n{self.MARKER.format(key=message.idempotency_key)}"
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
