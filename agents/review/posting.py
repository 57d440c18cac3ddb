"""Put a digest's items in the review ledger, then post it to the manager (Slack DM or the local outbox).

The ledger comes first: a button in Slack must always find its item. Posting
is idempotent per run: the ledger returns the same digest and items for a
retried run, and a digest already marked posted is not posted again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from pathlib import Path
from typing import Any

from agents.ledger import Ledger
from agents.review.blocks import digest_messages
from agents.review.digests import Digest, entry_evidence
from agents.review.outbox import write_digest

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PostResult:
    digest_id: str
    manager_id: str
    channel: str  # "slack" or "outbox"
    item_ids: tuple[str, ...]
    external_ref: str | None  # "<channel id>:<ts>[,<ts>...]" in Slack, the .md path in the outbox
    outbox_paths: tuple[Path, ...]
    already_posted: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def record_digest(ledger: Ledger, digest: Digest, *, actor: str = "pipeline") -> str:
    """Create the ledger digest and one item per entry (idempotent); sets ``entry.item_id``. Returns the digest id.
    One transaction for the digest and its items (one commit, not one per item)."""
    with ledger.batch():
        return _record_digest(ledger, digest, actor)


def _record_digest(ledger: Ledger, digest: Digest, actor: str) -> str:
    row = ledger.create_digest(digest.run_id, digest.manager_id, digest.as_of, actor=actor)
    known = {it.flag_id for it in ledger.items_for_digest(row.digest_id)}
    digest.new_flags = [e.flag.flag_id for e in digest.entries if e.flag.flag_id not in known]
    placed = [(section, entry) for section in digest.reps for entry in section.entries]
    # the items in one statement batch (digest and existing items read once), their decisions in one read
    items = ledger.add_items(
        row.digest_id,
        [
            {"flag_id": entry.flag.flag_id, "rule_id": entry.flag.rule_id, "severity": entry.flag.severity,
             "draft": entry.draft, "evidence": entry_evidence(digest, section, entry),
             "opportunity_id": entry.flag.opportunity_id, "rep_id": section.rep_id, "priority": entry.rank}
            for section, entry in placed
        ],
        actor=actor,
    )
    decisions = ledger.decisions_for(item.item_id for item in items)
    for (_, entry), item in zip(placed, items, strict=True):
        entry.item_id = item.item_id
        decided = decisions.get(item.item_id)
        entry.decision = f"{decided.action} by {decided.approver_id}" if decided is not None else None
    return row.digest_id


def post_digest(
    ledger: Ledger,
    digest: Digest,
    slack_client: Any | None,
    outbox_dir: Path | str,
    *,
    actor: str = "pipeline",
) -> PostResult:
    """Record the digest's items, write the outbox copy, and DM the manager when Slack is configured.

    ``slack_client``: a ``slack_sdk.WebClient`` (None: outbox only). A
    manager without a Slack user id gets the outbox copy. A Slack error is
    recorded on the digest (``post_failed``) and returned, not raised, so one
    manager's failure does not stop the others.

    A digest for the outbox is one ledger transaction (its items, their audit rows and its posting: one
    commit); one for Slack commits its items before the Slack calls (a button must find its item, and no
    write lock is held while Slack answers) and its posting after them.
    """
    to_outbox = slack_client is None or not digest.slack_user_id
    with ledger.batch() if to_outbox else contextlib.nullcontext():
        return _post_digest(ledger, digest, slack_client, outbox_dir, actor)


def _post_digest(ledger: Ledger, digest: Digest, slack_client: Any | None, outbox_dir: Path | str, actor: str) -> PostResult:
    digest_id = record_digest(ledger, digest, actor=actor)
    from agents.autonomy.report import behalf_lines, previous_digest_time

    digest.on_your_behalf = behalf_lines(ledger, digest.manager_id, since=previous_digest_time(ledger, digest.manager_id, digest.run_id))
    item_ids = tuple(e.item_id for e in digest.entries if e.item_id)
    paths = write_digest(digest, outbox_dir)
    existing = ledger.get_digest(digest_id)
    # A re-run of the day that found nothing new is not posted again; one that added items is (so no item
    # waits unseen in the ledger), with the decided ones shown as decided.
    if existing is not None and existing.status == "posted" and not digest.new_flags:
        return PostResult(digest_id, digest.manager_id, existing.channel or "outbox", item_ids, existing.external_ref, paths, already_posted=True)

    if slack_client is None or not digest.slack_user_id:
        why = "Slack not configured" if slack_client is None else "manager has no Slack user id"
        ledger.mark_digest_posted(digest_id, channel="outbox", external_ref=str(paths[0]), actor=actor)
        log.info("digest %s for %s written to the outbox (%s)", digest_id, digest.manager_id, why)
        return PostResult(digest_id, digest.manager_id, "outbox", item_ids, str(paths[0]), paths)

    from slack_sdk.errors import SlackApiError

    try:
        opened = slack_client.conversations_open(users=digest.slack_user_id)
        channel = opened["channel"]["id"]
        stamps = []
        for message in digest_messages(digest):
            resp = slack_client.chat_postMessage(
                channel=channel,
                text=message["text"],
                blocks=message["blocks"],
                unfurl_links=False,
                metadata={"event_type": "sales_supervisor_digest", "event_payload": {"digest_id": digest_id, "run_id": digest.run_id}},
            )
            stamps.append(resp["ts"])
    except (SlackApiError, OSError) as exc:
        error = exc.response.get("error") if isinstance(exc, SlackApiError) else repr(exc)
        ledger.mark_digest_failed(digest_id, f"slack: {error}", channel="slack", actor=actor)
        log.warning("posting digest %s to %s failed: %s (the outbox copy is at %s)", digest_id, digest.manager_id, error, paths[0])
        return PostResult(digest_id, digest.manager_id, "slack", item_ids, None, paths, error=f"slack: {error}")
    ref = f"{channel}:{','.join(stamps)}"
    ledger.mark_digest_posted(digest_id, channel="slack", external_ref=ref, actor=actor)
    return PostResult(digest_id, digest.manager_id, "slack", item_ids, ref, paths)
