"""Chain-head anchors: the audit trail's head written outside the ledger after every run and publish.

A hash chain catches edits in the middle, but not rows cut from the end, nor
a chain recomputed from the first row on. An anchor (sequence, hash, time)
kept somewhere else catches both: ``audit verify`` checks the ledger against
the latest anchor and says which one it used.

Targets: the default append-only file ``<home>/anchors/audit-anchors.jsonl``
(one JSON line per anchor, opened with O_APPEND, never rewritten), and
optionally an external path (a mount the ledger's writers cannot rewrite)
and a Slack channel (a message per anchor). Limits: the default file sits
next to the ledger, so someone who can rewrite both can rewrite both; an
external path or a Slack channel is what survives that.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from agents.ledger.audit import format_timestamp

log = logging.getLogger(__name__)

ANCHOR_FILENAME = "audit-anchors.jsonl"


def default_anchor_path(home: Path | str) -> Path:
    return Path(home).expanduser().resolve() / "anchors" / ANCHOR_FILENAME


@dataclasses.dataclass(frozen=True)
class Anchor:
    seq: int
    hash: str
    at: str  # ISO UTC time the anchor was written
    reason: str
    source: str = ""  # where it was read from (a file path), for "checked against ..."

    @property
    def pair(self) -> tuple[int, str]:
        return self.seq, self.hash

    def describe(self) -> str:
        return f"anchor seq {self.seq} {self.hash[:12]} written {self.at} after {self.reason}" + (
            f" ({self.source})" if self.source else ""
        )


class AnchorTarget(Protocol):
    name: str

    def write(self, anchor: Anchor) -> None: ...


class AnchorFile:
    """An append-only JSON-lines file of anchors."""

    def __init__(self, path: Path | str):
        self.path = Path(path).expanduser()
        self.name = f"file:{self.path}"

    def write(self, anchor: Anchor) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"seq": anchor.seq, "hash": anchor.hash, "at": anchor.at, "reason": anchor.reason}, sort_keys=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def anchors(self) -> list[Anchor]:
        if not self.path.exists():
            return []
        out = []
        for n, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                out.append(Anchor(int(data["seq"]), str(data["hash"]), str(data["at"]), str(data.get("reason", "")), f"{self.path}:{n}"))
            except (ValueError, KeyError, TypeError):
                raise ValueError(f"{self.path} line {n} is not an anchor (seq, hash, at): {line[:80]!r}") from None
        return out

    def latest(self) -> Anchor | None:
        anchors = self.anchors()
        return anchors[-1] if anchors else None


class SlackAnchorChannel:
    """Posts each anchor to a Slack channel (any client with ``chat_postMessage``, e.g. slack_sdk's WebClient)."""

    def __init__(self, client: Any, channel: str):
        self.client, self.channel = client, channel
        self.name = f"slack:{channel}"

    def write(self, anchor: Anchor) -> None:
        self.client.chat_postMessage(
            channel=self.channel,
            text=f"sales-supervisor audit anchor: seq {anchor.seq} hash {anchor.hash} at {anchor.at} ({anchor.reason})",
            metadata={"event_type": "audit_anchor", "event_payload": {"seq": anchor.seq, "hash": anchor.hash, "at": anchor.at}},
        )


def anchor_targets(
    home: Path | str,
    *,
    anchor_file: Path | str | None = None,
    external_path: Path | str | None = None,
    slack_channel: str | None = None,
    slack_client: Any = None,
) -> list[AnchorTarget]:
    """The default file (or ``anchor_file``), then the optional external path and Slack channel."""
    targets: list[AnchorTarget] = [AnchorFile(anchor_file or default_anchor_path(home))]
    if external_path:
        targets.append(AnchorFile(external_path))
    if slack_channel:
        if slack_client is None:
            log.warning("an anchor Slack channel is configured but there is no Slack client (SLACK_BOT_TOKEN): not posted")
        else:
            targets.append(SlackAnchorChannel(slack_client, slack_channel))
    return targets


@dataclasses.dataclass(frozen=True)
class AnchorResult:
    anchor: Anchor | None
    written: tuple[str, ...]
    failed: tuple[tuple[str, str], ...]


def write_anchor(ledger: Any, targets: Sequence[AnchorTarget], *, reason: str, actor: str = "pipeline") -> AnchorResult:
    """Record the anchoring in the trail, then write the resulting head to every target.

    A target that fails is reported (and logged), not raised: the others still
    get the anchor, and the run's own result stands.
    """
    ledger.record_event(actor, "audit.anchored", "ledger", "audit", {"reason": reason, "targets": [t.name for t in targets]})
    head = ledger.audit_head()
    if head is None:  # pragma: no cover - record_event just wrote a row
        return AnchorResult(None, (), ())
    anchor = Anchor(head[0], head[1], format_timestamp(dt.datetime.now(dt.timezone.utc)), reason)
    written, failed = [], []
    for target in targets:
        try:
            target.write(anchor)
            written.append(target.name)
        except Exception as exc:  # a file system or Slack error: the other targets still count
            log.warning("audit anchor not written to %s: %s", target.name, exc)
            failed.append((target.name, f"{type(exc).__name__}: {exc}"))
    return AnchorResult(anchor, tuple(written), tuple(failed))


__all__ = [
    "ANCHOR_FILENAME",
    "Anchor",
    "AnchorFile",
    "AnchorResult",
    "SlackAnchorChannel",
    "anchor_targets",
    "default_anchor_path",
    "write_anchor",
]
