"""The local outbox: digests and outbound messages as files, for runs without Slack and for the record.

Layout (``outbox_dir`` is ``<home>/outbox``):

    digests/<run_id>/<manager_id>.md and .html   one digest per manager per run
    messages/<mode>/<channel>/<item_id>.json      what was sent (live) or would have been (shadow)
"""

from __future__ import annotations

import dataclasses
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


def _when(digest: Digest) -> str:
    return f"{digest.as_of:%a} {digest.as_of.day} {digest.as_of:%b %Y}"


def _meta_bits(entry: DigestEntry) -> list[str]:
    flag = entry.flag
    bits = [f"{flag.severity} severity", f"confidence {flag.confidence:.0%}"]
    if format_amount(flag.amount):
        bits.append(format_amount(flag.amount))
    if flag.stage:
        bits.append(flag.stage)
    bits.append(flag.rule_id.replace("_", " "))
    return bits


def _entry_md(entry: DigestEntry, digest: Digest) -> list[str]:
    flag, draft = entry.flag, entry.draft
    lines = [f"### {entry.number}. {_md_link(entry.deal_link)} ({_md(', '.join(_meta_bits(entry)))})", ""]
    if entry.note:
        lines += [f"> **{_md(entry.note)}**", ""]
    lines += [
        f"**{_md(draft.get('action', ''))}** ({_md(draft.get('actor', 'rep'))}, due {_md(draft.get('due_date', 'n/a'))})",
        "",
    ]
    if draft.get("rationale"):
        lines.append(f"- Why: {_md(draft['rationale'])}")
    lines.append(f"- Flag: {_md(flag.message)}")
    if entry.baseline_text:
        lines.append(f"- Baseline: {_md(entry.baseline_text)}")
    if entry.related_links:
        lines.append("- Deals named: " + ", ".join(_md_link(link) for link in entry.related_links))
    more = f" (+{entry.hidden_crm_links} more: `sales-supervisor explain {entry.short_id}`)" if entry.hidden_crm_links else ""
    lines.append("- CRM records: " + ", ".join(_md_link(link) for link in entry.shown_crm_links) + more)
    lines.append("- Semantic-layer queries: " + ", ".join(_md_link(link) for link in entry.query_links))
    if entry.decision:
        lines.append(f"- Decided: {_md(entry.decision)} (item `{entry.short_id}`)")
    elif entry.item_id:
        lines.append(f"- Decide: `sales-supervisor review approve|edit|dismiss {entry.short_id} --as {_md(digest.manager_id)}`")
    return lines + [""]


def _held_md(digest: Digest) -> list[str]:
    held = [(s, h) for s in digest.reps for h in s.held_back]
    if not held:
        return []
    lines = [
        "## Appendix: held back",
        "",
        f"Flagged but not shown above ({len(held)}); `sales-supervisor review list --held-back` lists them too.",
        "",
        "| rep | deal | rule | amount | why |",
        "|---|---|---|---|---|",
    ]
    for section, h in held:
        lines.append(
            f"| {_md(section.rep_name)} | {_md(h.deal_name or h.opportunity_id or 'rep ' + str(h.rep_id))} | {_md(h.rule_id)} "
            f"| {format_amount(h.amount) or '-'} | {_md(h.why)} |"
        )
    return lines + [""]


def digest_markdown(digest: Digest) -> str:
    lines = [
        f"# Pipeline review for {_md(digest.manager_name)} — {_when(digest)}",
        "",
        f"{digest.reps_reviewed} reps reviewed, {digest.deals_flagged} deals flagged, {digest.item_count} items to decide "
        f"(at most {digest.max_items_per_rep} per rep, ranked by severity x amount). Run `{_md(digest.run_id)}`.",
        "",
    ]
    if digest.console_link():
        lines += [f"Decide in the console: {digest.console_link()}", ""]
    if digest.held_back_summary:
        lines += [f"**{_md(digest.held_back_summary)}** (listed in the appendix).", ""]
    if digest.scorecards:
        lines += ["## Weekly scorecards", "",
                  "One per rep, verdict by the policy's rules. BELOW_FLOOR_PIP and CRITICAL stay with you: "
                  "they are never sent to the rep, and approving one asks you to confirm twice.", ""]
        for entry in digest.scorecards:
            verdict = str(entry.flag.observed)
            lines.append(f"- **{_md(entry.rep_name or '')}: {_md(verdict)}**"
                         f"{' (manager only)' if verdict in ('BELOW_FLOOR_PIP', 'CRITICAL') else ''} `{entry.short_id or ''}` "
                         f"{_md(entry.flag.message)}")
        lines.append("")
    if digest.on_your_behalf:
        lines += ["## Sent on your behalf", "", *[f"- {_md(line)}" for line in digest.on_your_behalf], ""]
    if digest.decide_first:
        lines += ["## Decide these first", ""]
        for i, entry in enumerate(digest.decide_first, 1):
            lines.append(
                f"{i}. {_md_link(entry.deal_link)} ({_md(entry.rep_name or '')}, {entry.flag.severity}"
                f"{', ' + format_amount(entry.flag.amount) if format_amount(entry.flag.amount) else ''}): "
                f"{_md(entry.draft.get('action', ''))} `{entry.short_id or ''}`"
            )
        lines.append("")
    for section in digest.reps:
        title = f"## {_md(section.rep_name)}"
        if not section.is_active:
            title += " (inactive)"
        lines += [title, ""]
        if not section.entries and not section.held_back:
            lines += ["Reviewed: nothing flagged.", ""]
            continue
        summary = section.held_back_summary or f"{len(section.entries)} of {len(section.entries)} shown"
        lines += [f"{section.flagged} deals flagged: {_md(summary)}.", ""]
        for entry in section.entries:
            lines += _entry_md(entry, digest)
    lines += _held_md(digest)
    if digest.informational:
        lines += ["## Informational (demoted rules, nothing to decide)", ""]
        for e in digest.informational:
            lines.append(f"- {_md_link(e.deal_link)} ({_md(e.rep_name or '')}, {e.flag.rule_id}): {_md(e.flag.message)}")
        lines.append("")
    lines += [_demoted_footer(digest), ""]
    return "\n".join(lines).rstrip() + "\n"


def _demoted_footer(digest: Digest) -> str:
    if digest.demoted:
        return (f"Demoted to informational (backtest lift below {digest.lift_floor:g}): "
                + ", ".join(f"{r} (lift {v:.2f})" if v == v else f"{r} (by policy)" for r, v in digest.demoted.items()) + ".")
    if digest.lift_floor is None:
        return "No rule demoted: no backtest lifts yet (run `sales-supervisor backtest`)."
    return f"No rule demoted: every backtested rule has a lift of at least {digest.lift_floor:g}."


# Inline styles only: email clients drop <style> blocks and external sheets.
_CSS = {
    "body": "margin:0;padding:0;background:#f3f4f6;font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#111827;font-size:14px;line-height:1.45",
    "wrap": "max-width:880px;margin:0 auto;padding:16px 20px",
    "h1": "font-size:20px;margin:0 0 4px",
    "sub": "color:#4b5563;margin:0 0 12px",
    "held": "background:#fff7ed;border:1px solid #fdba74;border-radius:6px;padding:6px 10px;margin:0 0 12px;color:#9a3412",
    "box": "background:#ffffff;border:1px solid #d1d5db;border-radius:8px;padding:10px 14px;margin:0 0 16px",
    "h2": "font-size:16px;margin:0 0 6px",
    "table": "border-collapse:collapse;width:100%;font-size:13px",
    "th": "text-align:left;border-bottom:1px solid #e5e7eb;padding:4px 6px;color:#6b7280;font-weight:600",
    "td": "border-bottom:1px solid #f3f4f6;padding:4px 6px;vertical-align:top",
    "rep": "background:#ffffff;border:1px solid #d1d5db;border-radius:8px;padding:10px 14px;margin:0 0 16px",
    "item": "border-top:1px solid #e5e7eb;padding:10px 0 6px",
    "title": "font-size:15px;font-weight:600;margin:0 0 4px",
    "meta": "color:#6b7280;font-size:12px;margin:0 0 6px",
    "note": "background:#eff6ff;border-left:3px solid #3b82f6;padding:4px 8px;margin:0 0 6px;font-size:13px",
    "action": "font-weight:600;margin:0 0 4px",
    "why": "margin:0 0 4px",
    "small": "color:#4b5563;font-size:12px;margin:0 0 2px",
    "code": "font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;background:#f3f4f6;padding:1px 4px;border-radius:3px",
    "a": "color:#1d4ed8;text-decoration:none",
    "foot": "color:#6b7280;font-size:12px;margin:16px 0",
}
SEVERITY_COLOURS = {"critical": "#b91c1c", "high": "#c2410c", "medium": "#a16207", "low": "#4b5563"}


def _badge(severity: str) -> str:
    colour = SEVERITY_COLOURS.get(severity, "#4b5563")
    return (
        f'<span style="display:inline-block;background:{colour};color:#fff;border-radius:10px;padding:0 8px;'
        f'font-size:11px;font-weight:600;text-transform:uppercase">{html.escape(severity)}</span>'
    )


def _a(link: Link) -> str:
    if link.url:
        return f'<a style="{_CSS["a"]}" href="{html.escape(link.url, quote=True)}">{html.escape(link.label)}</a>'
    return html.escape(link.label)


def _entry_html(entry: DigestEntry, digest: Digest) -> str:
    e, c = html.escape, _CSS
    flag, draft = entry.flag, entry.draft
    amount = format_amount(flag.amount)
    meta = " · ".join(
        [f"confidence {flag.confidence:.0%}"] + ([amount] if amount else []) + ([e(flag.stage)] if flag.stage else [])
        + [e(flag.rule_id.replace("_", " "))]
    )
    parts = [
        f'<li style="{c["item"]}" id="item-{e(entry.short_id or flag.flag_id)}">',
        f'<p style="{c["title"]}">{entry.number}. {_a(entry.deal_link)} {_badge(flag.severity)}</p>',
        f'<p style="{c["meta"]}">{meta}</p>',
    ]
    if entry.note:
        parts.append(f'<p style="{c["note"]}">{e(entry.note)}</p>')
    parts.append(
        f'<p style="{c["action"]}">{e(str(draft.get("action", "")))} '
        f'<span style="color:#6b7280;font-weight:400">({e(str(draft.get("actor", "rep")))})</span></p>'
    )
    if draft.get("rationale"):
        parts.append(f'<p style="{c["why"]}"><b>Why:</b> {e(str(draft["rationale"]))}</p>')
    parts.append(f'<p style="{c["small"]}">Flag: {e(flag.message)}</p>')
    if entry.baseline_text:
        parts.append(f'<p style="{c["small"]}">Baseline: {e(entry.baseline_text)}</p>')
    if entry.related_links:
        parts.append(f'<p style="{c["small"]}">Deals named: ' + ", ".join(_a(link) for link in entry.related_links) + "</p>")
    more = f" (+{entry.hidden_crm_links} more in <code style=\"{c['code']}\">explain</code>)" if entry.hidden_crm_links else ""
    parts.append(
        f'<p style="{c["small"]}">Evidence: ' + ", ".join(_a(link) for link in entry.shown_crm_links) + more
        + " · queries: " + ", ".join(_a(link) for link in entry.query_links) + "</p>"
    )
    if entry.decision:
        parts.append(f'<p style="{c["small"]}"><b>Decided:</b> {e(entry.decision)} (item {e(entry.short_id or "")})</p>')
    elif entry.item_id and digest.console_link(entry.short_id):
        parts.append(
            f'<p style="{c["small"]}"><a style="{c["a"]};font-weight:600" href="{e(digest.console_link(entry.short_id), quote=True)}">'
            f'Approve, edit, dismiss or snooze in the console</a> (or <code style="{c["code"]}">sales-supervisor review approve '
            f'{e(entry.short_id or "")}</code>)</p>'
        )
    elif entry.item_id:
        parts.append(
            f'<p style="{c["small"]}">Decide: <code style="{c["code"]}">sales-supervisor review approve {e(entry.short_id or "")} '
            f'--as {e(digest.manager_id)}</code> (or edit / dismiss)</p>'
        )
    parts.append("</li>")
    return "".join(parts)


def digest_html(digest: Digest) -> str:
    e, c = html.escape, _CSS
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Pipeline review — {e(digest.manager_name)} — {digest.as_of.isoformat()}</title></head>",
        f'<body style="{c["body"]}"><div style="{c["wrap"]}">',
        f'<h1 style="{c["h1"]}">Pipeline review for {e(digest.manager_name)} — {_when(digest)}</h1>',
        f'<p style="{c["sub"]}">{digest.reps_reviewed} reps reviewed · {digest.deals_flagged} deals flagged · '
        f"<b>{digest.item_count} items to decide</b> (at most {digest.max_items_per_rep} per rep, ranked by severity × amount). "
        + ("Nothing reaches a rep until you approve it, except the low-risk nudges sent on your behalf below.</p>"
           if digest.on_your_behalf else "Nothing reaches a rep until you approve it.</p>"),
    ]
    if digest.console_link():
        parts.append(f'<p style="{c["sub"]}" id="console-link"><a style="{c["a"]};font-weight:600" '
                     f'href="{e(digest.console_link(), quote=True)}">Open this digest in the console</a> to decide in place.</p>')
    if digest.held_back_summary:
        parts.append(f'<p style="{c["held"]}" id="held-back-summary">{e(digest.held_back_summary)} '
                     f'(<a style="{c["a"]}" href="#held-back">listed below</a>).</p>')
    if digest.scorecards:
        parts.append(f'<div style="{c["box"]}" id="scorecards"><h2 style="{c["h2"]}">Weekly scorecards</h2>'
                     f'<p style="{c["small"]}">One per rep, verdict by the policy\'s rules. BELOW_FLOOR_PIP and CRITICAL stay '
                     "with you: never sent to the rep; approving one asks you to confirm twice.</p>")
        parts.append(f'<table style="{c["table"]}"><tr>' + "".join(
            f'<th style="{c["th"]}">{h}</th>' for h in ("rep", "verdict", "the numbers (last weeks vs floors)", "item")
        ) + "</tr>")
        colours = {"EXCEEDS": "#1a7f37", "MEETS": "#57606a", "BELOW_FLOOR": "#9a6700", "BELOW_FLOOR_PIP": "#bc4c00",
                   "CRITICAL": "#cf222e"}
        for entry in digest.scorecards:
            verdict = str(entry.flag.observed)
            tag = "<br><small>manager only</small>" if verdict in ("BELOW_FLOOR_PIP", "CRITICAL") else ""
            numbers = entry.flag.message.split(f"{verdict} ", 1)[-1]  # the reason, then the numbers
            parts.append(
                "<tr>"
                f'<td style="{c["td"]}">{e(entry.rep_name or "")}</td>'
                f'<td style="{c["td"]};white-space:nowrap"><b style="color:{colours.get(verdict, "#57606a")}">{e(verdict)}</b>{tag}</td>'
                f'<td style="{c["td"]}">{e(numbers)}</td>'
                f'<td style="{c["td"]}"><a style="{c["a"]}" href="#item-{e(entry.short_id or entry.flag.flag_id)}">'
                f'<code style="{c["code"]}">{e(entry.short_id or "")}</code></a></td>'
                "</tr>"
            )
        parts.append("</table></div>")
    if digest.on_your_behalf:
        parts.append(f'<div style="{c["box"]}" id="on-your-behalf"><strong>Sent on your behalf</strong><ul>'
                     + "".join(f'<li style="{c["small"]}">{e(line)}</li>' for line in digest.on_your_behalf) + "</ul></div>")
    if digest.decide_first:
        parts.append(f'<div style="{c["box"]}" id="decide-first"><h2 style="{c["h2"]}">Decide these first</h2>')
        parts.append(f'<table style="{c["table"]}"><tr>' + "".join(
            f'<th style="{c["th"]}">{h}</th>' for h in ("", "deal", "rep", "severity", "amount", "action", "item")
        ) + "</tr>")
        for i, entry in enumerate(digest.decide_first, 1):
            amount = format_amount(entry.flag.amount) or ""
            parts.append(
                "<tr>"
                f'<td style="{c["td"]}">{i}</td>'
                f'<td style="{c["td"]}">{_a(entry.deal_link)}</td>'
                f'<td style="{c["td"]}">{e(entry.rep_name or "")}</td>'
                f'<td style="{c["td"]}">{_badge(entry.flag.severity)}</td>'
                f'<td style="{c["td"]};white-space:nowrap">{amount}</td>'
                f'<td style="{c["td"]}">{e(str(entry.draft.get("action", "")))}</td>'
                f'<td style="{c["td"]}"><a style="{c["a"]}" href="#item-{e(entry.short_id or entry.flag.flag_id)}">'
                f'<code style="{c["code"]}">{e(entry.short_id or "")}</code></a></td>'
                "</tr>"
            )
        parts.append("</table></div>")
    quiet = []
    for section in digest.reps:
        if not section.entries and not section.held_back:
            quiet.append(section)
            continue
        summary = section.held_back_summary or f"{len(section.entries)} of {len(section.entries)} shown"
        parts.append(
            f'<div style="{c["rep"]}"><h2 style="{c["h2"]}">{e(section.rep_name)}'
            f'{" (inactive)" if not section.is_active else ""}</h2>'
            f'<p style="{c["meta"]}">{section.flagged} deals flagged: {e(summary)}</p>'
            '<ol style="list-style:none;margin:0;padding:0">'
        )
        parts += [_entry_html(entry, digest) for entry in section.entries]
        parts.append("</ol></div>")
    if quiet:
        parts.append(f'<p style="{c["sub"]}">Reviewed, nothing flagged: {e(", ".join(s.rep_name for s in quiet))}.</p>')
    held = [(s, h) for s in digest.reps for h in s.held_back]
    if held:
        parts.append(
            f'<details style="{c["box"]}" id="held-back"><summary style="cursor:pointer;font-weight:600">'
            f"Appendix: {len(held)} held back</summary>"
            f'<p style="{c["small"]}">Flagged but not shown above; <code style="{c["code"]}">sales-supervisor review list '
            "--held-back</code> lists them too.</p>"
            f'<table style="{c["table"]}"><tr>'
            + "".join(f'<th style="{c["th"]}">{h}</th>' for h in ("rep", "deal", "rule", "amount", "why")) + "</tr>"
        )
        for section, h in held:
            parts.append(
                "<tr>" + "".join(
                    f'<td style="{c["td"]}">{e(str(v))}</td>'
                    for v in (section.rep_name, h.deal_name or h.opportunity_id or f"rep {h.rep_id}", h.rule_id,
                              format_amount(h.amount) or "-", h.why)
                ) + "</tr>"
            )
        parts.append("</table></details>")
    if digest.informational:
        parts.append(
            f'<details style="{c["box"]}" id="informational"><summary style="cursor:pointer;font-weight:600">'
            f"Informational: {len(digest.informational)} flag(s) from demoted rules (nothing to decide)</summary><ul>"
        )
        for entry in digest.informational:
            parts.append(f'<li style="{c["small"]}">{_a(entry.deal_link)} ({e(entry.rep_name or "")}, '
                         f'{e(entry.flag.rule_id)}): {e(entry.flag.message)}</li>')
        parts.append("</ul></details>")
    parts.append(f'<p style="{c["foot"]}" id="demoted">{e(_demoted_footer(digest))}</p>')
    parts.append(f'<p style="{c["foot"]}">Run {e(digest.run_id)} · decide in Slack or with <code style="{c["code"]}">'
                 "sales-supervisor review</code>.</p>")
    parts.append("</div></body></html>")
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
    if digest.query_pages:
        from agents.review.query_pages import write_query_pages

        write_query_pages(folder, digest.query_pages)
    _write_atomic(folder / f"{safe_name(digest.manager_id)}.held_back.json", json.dumps(
        {"manager_id": digest.manager_id, "as_of": digest.as_of.isoformat(), "run_id": digest.run_id,
         "held_back": [dict(dataclasses.asdict(h), rep_name=s.rep_name) for s in digest.reps for h in s.held_back]},
        indent=1, default=str,
    ) + "\n")
    return md, htm


def message_path(outbox_dir: Path | str, mode: str, channel: str, item_id: str) -> Path:
    return Path(outbox_dir) / "messages" / safe_name(mode) / safe_name(channel) / f"{safe_name(item_id)}.json"


def write_message(outbox_dir: Path | str, *, mode: str, channel: str, item_id: str, record: dict[str, Any]) -> tuple[Path, bool]:
    """Record an outbound message; returns (path, created) - created is False when it was already there."""
    path = message_path(outbox_dir, mode, channel, item_id)
    existed = path.exists()
    _write_atomic(path, json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    return path, not existed
