"""Manager review: digests, the Slack app, outbound channels and the publisher (plain Python, no Dagster).

    digests = build_digests(pairs, reps, managers, as_of, max_items_per_rep=5)
    for d in digests:
        post_digest(ledger, d, slack_client_or_None, home / "outbox")
    app = build_app(ledger, SlackAppSettings.from_env(approvers=approver_map(managers)))
    report = publish_approved(ledger, {"rep_slack": SlackDmChannel(ledger, client),
                                       "crm_note": LocalCrmNotesChannel.at_home(ledger, home)})

The Slack app and channels import slack_sdk / slack_bolt lazily through their
own modules; importing this package pulls in neither.
"""

from agents.review.blocks import apply_decision, digest_messages, edit_modal, escape_mrkdwn
from agents.review.digests import (
    Digest,
    DigestEntry,
    Link,
    RepSection,
    build_digests,
    coaching_text,
    route_items,
    semantic_link,
)
from agents.review.modes import (
    GateResult,
    GateThresholds,
    LiveModeRefused,
    ModeSettings,
    apply_startup_mode,
    evaluate_live_gates,
)
from agents.review.outbox import digest_html, digest_markdown, write_digest, write_message
from agents.review.posting import PostResult, post_digest, record_digest
from agents.review.publisher import PublishReport, publish_approved

__all__ = [
    "Digest",
    "DigestEntry",
    "GateResult",
    "GateThresholds",
    "Link",
    "LiveModeRefused",
    "ModeSettings",
    "PostResult",
    "PublishReport",
    "RepSection",
    "apply_decision",
    "apply_startup_mode",
    "build_digests",
    "coaching_text",
    "digest_html",
    "digest_markdown",
    "digest_messages",
    "edit_modal",
    "escape_mrkdwn",
    "evaluate_live_gates",
    "post_digest",
    "publish_approved",
    "record_digest",
    "route_items",
    "semantic_link",
    "write_digest",
    "write_message",
]
