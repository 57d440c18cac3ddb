"""The local outbox: digests and outbound messages as files, for runs without Slack and for the record.

Layout (``outbox_dir`` is ``<home>/outbox``):

    digests/<run_id>/<manager_id>.md and .html   one digest per manager per run
    messages/<mode>/<channel>/<item_id>.json      what was sent (live) or would have been (shadow)
"""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path
from typing import Any

from agents.review.digests import Digest, DigestEntry, Link, format_amount

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


def safe_name(value: str) -> str:
    """A file-name-safe rendering of an id (ids come from the CRM)."""
    cleaned = _UNSAFE_NAME.sub("_", str(value)).strip("._") or "_"
    return cleaned[:120]


def _md(text: Any) -> str:
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def _md_link(link: Link) -> str:
    if link.url:
        return f"[{_md(link.label)}]({link.url.replace(')', '%29').replace(' ', '%20')})"
    return f"`{link.label}`"


def _html_link(link: Link) -> str:
    if link.url:
        return f'<a href="{html.escape(link.url, quote=True)}">{html.escape(link.label)}</a>'
    return f"<code>{html.escape(link.label)}</code>"


def _entry_md(entry: DigestEntry) -> list[str]:
    flag, draft = entry.flag, entry.draft
    bits = [flag.severity]
    if format_amount(flag.amount):
        bits.append(format_amount(flag.amount))
    if flag.stage:
        bits.append(_md(flag.stage))
    lines = [f"### {entry.rank}. {_md(entry.subject_label)} ({', '.join(bits)})", "", _md(flag.message), ""]
    if entry.baseline_text:
        lines += [f"- Baseline: {_md(entry.baseline_text)}"]
    lines += [
        f"- Proposed action ({_md(draft.get('actor', 'rep'))}, due {_md(draft.get('due_date', 'n/a'))}): {_md(draft.get('action', ''))}",
    ]
    if draft.get("rationale"):
        lines.append(f"- Why: {_md(draft['rationale'])}")
    lines.append("- CRM records: " + ", ".join(_md_link(link) for link in entry.crm_links))
    lines.append("- Semantic-layer queries: " + ", ".join(_md_link(link) for link in entry.query_links))
    if entry.item_id:
        lines.append(f"- Item: `{entry.item_id}` (decide with `sales-supervisor review`)")
    return lines + [""]


def digest_markdown(digest: Digest) -> str:
    lines = [
        f"# Pipeline review for {_md(digest.manager_name)} — {digest.as_of.isoformat()}",
        "",
        f"{digest.reps_reviewed} reps reviewed, {digest.deals_flagged} deals flagged, {digest.item_count} items "
        f"(at most {digest.max_items_per_rep} per rep, ranked by severity x amount). Run `{_md(digest.run_id)}`.",
        "",
    ]
    for section in digest.reps:
        title = f"## {_md(section.rep_name)}"
        if not section.is_active:
            title += " (inactive)"
        lines += [title, ""]
        if not section.entries:
            lines += ["Reviewed: nothing flagged.", ""]
            continue
        lines += [f"{section.flagged} deals flagged" + (f", top {len(section.entries)} shown." if section.omitted else "."), ""]
        for entry in section.entries:
            lines += _entry_md(entry)
    return "\n".join(lines).rstrip() + "\n"


def digest_html(digest: Digest) -> str:
    e = html.escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Pipeline review — {e(digest.manager_name)} — {digest.as_of.isoformat()}</title></head><body>",
        f"<h1>Pipeline review for {e(digest.manager_name)} — {digest.as_of.isoformat()}</h1>",
        f"<p>{digest.reps_reviewed} reps reviewed, {digest.deals_flagged} deals flagged, {digest.item_count} items "
        f"(at most {digest.max_items_per_rep} per rep, ranked by severity x amount).</p>",
    ]
    for section in digest.reps:
        parts.append(f"<h2>{e(section.rep_name)}{' (inactive)' if not section.is_active else ''}</h2>")
        if not section.entries:
            parts.append("<p>Reviewed: nothing flagged.</p>")
            continue
        parts.append("<ol>")
        for entry in section.entries:
            flag, draft = entry.flag, entry.draft
            amount = format_amount(flag.amount)
            parts.append(f'<li value="{entry.rank}"><h3>{e(entry.subject_label)} <small>{e(flag.severity)}{" · " + amount if amount else ""}</small></h3>')
            parts.append(f"<p>{e(flag.message)}</p><ul>")
            if entry.baseline_text:
                parts.append(f"<li>Baseline: {e(entry.baseline_text)}</li>")
            parts.append(
                f"<li>Proposed action ({e(str(draft.get('actor', 'rep')))}, due {e(str(draft.get('due_date', 'n/a')))}): "
                f"{e(str(draft.get('action', '')))}</li>"
            )
            if draft.get("rationale"):
                parts.append(f"<li>Why: {e(str(draft['rationale']))}</li>")
            parts.append("<li>CRM records: " + ", ".join(_html_link(link) for link in entry.crm_links) + "</li>")
            parts.append("<li>Semantic-layer queries: " + ", ".join(_html_link(link) for link in entry.query_links) + "</li>")
            if entry.item_id:
                parts.append(f"<li>Item: <code>{e(entry.item_id)}</code></li>")
            parts.append("</ul></li>")
        parts.append("</ol>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_digest(digest: Digest, outbox_dir: Path | str) -> tuple[Path, Path]:
    """Write ``digests/<as-of date>/<manager_id>.md`` and ``.html``; returns both paths.

    People look for a day's digest by its date; a later run for the same date replaces the files
    (the review ledger keeps every digest and its run).
    """
    folder = Path(outbox_dir) / "digests" / digest.as_of.isoformat()
    md, htm = folder / f"{safe_name(digest.manager_id)}.md", folder / f"{safe_name(digest.manager_id)}.html"
    _write_atomic(md, digest_markdown(digest))
    _write_atomic(htm, digest_html(digest))
    return md, htm


def message_path(outbox_dir: Path | str, mode: str, channel: str, item_id: str) -> Path:
    return Path(outbox_dir) / "messages" / safe_name(mode) / safe_name(channel) / f"{safe_name(item_id)}.json"


def write_message(outbox_dir: Path | str, *, mode: str, channel: str, item_id: str, record: dict[str, Any]) -> tuple[Path, bool]:
    """Record an outbound message; returns (path, created) - created is False when it was already there."""
    path = message_path(outbox_dir, mode, channel, item_id)
    existed = path.exists()
    _write_atomic(path, json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    return path, not existed
