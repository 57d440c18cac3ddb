"""A brief as a person reads it: terminal (rich), Markdown, HTML (one self-contained page), Slack text.

CRM text (names, titles, stage names, loss reasons) is escaped for each format; citations are listed
under the brief with what each id is (the CRM row and its link, or the query with its SQL).
"""

from __future__ import annotations

import html
import re
from typing import Any

from agents.coach.models import Brief, Citation, Line

SECTIONS = (
    ("Stakeholder map", ("stakeholders", "missing_roles", "threading")),
    ("Next best action", ()),
    ("Process adherence", ()),
    ("Deal history", ("history",)),
    ("Open risks", ("risks",)),
    ("Questions to ask", ("questions",)),
    ("Likely objections (from the team's lost deals)", ("objections",)),
)


def _refs(line: Line, index: dict[str, int]) -> str:
    return "".join(f"[{index[c]}]" for c in line.cites if c in index)


def citation_index(brief: Brief) -> dict[str, int]:
    order: dict[str, int] = {}
    for _, ln in brief.lines():
        for c in ln.cites:
            if c in brief.citations and c not in order:
                order[c] = len(order) + 1
    return order


def describe_citation(c: Citation) -> str:
    if c.kind == "query":
        req = c.query.get("request") or {}
        return f"semantic-layer query {c.id} ({c.table}: {', '.join(req.get('metrics', [])[:3])}{' ...' if len(req.get('metrics', [])) > 3 else ''})"
    if c.kind == "risk":
        return f"{c.table} {c.id}"
    return f"{c.table} {c.id}"


def _next_action_rows(brief: Brief) -> list[tuple[str, Line]]:
    na = brief.next_action
    if na is None:
        return []
    rows = [("Do", na.action), ("Why", na.reason), ("When", na.timing), ("Who", na.who), ("Success", na.success)]
    if na.alternative is not None:
        rows.append(("If not feasible", na.alternative))
    return rows


def _md(text: str) -> str:
    """CRM text inert in Markdown: URLs defanged, markup characters backslash-escaped."""
    from agents.review.escaping import defang_urls

    return re.sub(r"([\\`*_\[\]<>#|])", r"\\\1", defang_urls(text))


def to_markdown(brief: Brief) -> str:
    from agents.review.escaping import safe_link_url

    idx = citation_index(brief)
    esc = _md

    def ln(line: Line) -> str:
        return esc(line.text) + (f" {_refs(line, idx)}" if line.cites else "")

    out = [f"# Deal brief: {esc(brief.headline.text)}", "",
           f"As of {brief.as_of} · drafter {brief.drafter} · playbook {esc(brief.playbook_version)} · read-only advice", ""]
    for title, keys in SECTIONS:
        out.append(f"## {title}")
        if title == "Next best action":
            out += [f"- **{k}:** {ln(v)}" for k, v in _next_action_rows(brief)]
        elif title == "Process adherence":
            out += [f"- {'✅' if c.met else '❌'} {esc(c.criterion)}: {ln(c.evidence)}" for c in brief.adherence] or ["- (no exit criteria for this stage)"]
        else:
            for k in keys:
                out += [f"- {ln(x)}" for x in getattr(brief, k)]
        out.append("")
    out.append("## Sources")
    for cid, n in idx.items():
        c = brief.citations[cid]
        url = safe_link_url(c.url)
        out.append(f"{n}. {esc(describe_citation(c))}" + (f" ([open in the CRM](<{url}>))" if url else ""))
    if brief.notes:
        out += ["", "Notes: " + esc("; ".join(brief.notes))]
    return "\n".join(out) + "\n"


_CSS = """body{font:15px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;max-width:860px;margin:24px auto;padding:0 16px;color:#1d2330}
h1{font-size:21px;margin:0 0 4px}h2{font-size:16px;margin:22px 0 6px;border-bottom:1px solid #e3e6ec;padding-bottom:3px}
.meta{color:#5b6475;font-size:13px}ul{margin:4px 0;padding-left:20px}li{margin:3px 0}sup a{color:#4b6bd6;text-decoration:none;font-size:11px}
table.na{border-collapse:collapse;width:100%}table.na td{padding:4px 8px;vertical-align:top;border-bottom:1px solid #f0f1f4}
table.na td:first-child{font-weight:600;width:130px;color:#39415a}.ok{color:#1a7f37;font-weight:700}.no{color:#c62828;font-weight:700}
.sources{font-size:12px;color:#5b6475}.sources code{font-size:11px}.do{background:#f3f6ff}"""


def to_html(brief: Brief) -> str:
    from agents.review.escaping import html_text, safe_link_url

    idx = citation_index(brief)
    e = html_text

    def ln(line: Line) -> str:
        refs = "".join(f'<sup><a href="#src-{idx[c]}">[{idx[c]}]</a></sup>' for c in line.cites if c in idx)
        return e(line.text) + refs

    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Deal brief {e(brief.opportunity_id)}</title>",
             f"<style>{_CSS}</style></head><body>",
             f"<h1>{ln(brief.headline)}</h1>",
             f"<div class='meta'>As of {e(str(brief.as_of))} · drafter {e(brief.drafter)} · playbook {e(brief.playbook_version)}"
             " · read-only advice: nothing is sent or written to the CRM</div>"]
    for title, keys in SECTIONS:
        parts.append(f"<h2>{e(title)}</h2>")
        if title == "Next best action":
            parts.append("<table class='na'>" + "".join(
                f"<tr class='{'do' if k == 'Do' else ''}'><td>{e(k)}</td><td>{ln(v)}</td></tr>" for k, v in _next_action_rows(brief)) + "</table>")
        elif title == "Process adherence":
            parts.append("<ul>" + "".join(
                f"<li><span class='{'ok' if c.met else 'no'}'>{'met' if c.met else 'not met'}</span> {e(c.criterion)}: {ln(c.evidence)}</li>"
                for c in brief.adherence) + "</ul>")
        else:
            items = [x for k in keys for x in getattr(brief, k)]
            parts.append("<ul>" + "".join(f"<li>{ln(x)}</li>" for x in items) + "</ul>")
    parts.append("<h2>Sources</h2><ol class='sources'>")
    for cid, n in idx.items():
        c = brief.citations[cid]
        url = safe_link_url(c.url)
        link = f" <a href='{html.escape(url, quote=True)}'>open in the CRM</a>" if url else ""
        sql = f"<details><summary>SQL</summary><code>{e(str(c.query.get('sql', '')))}</code></details>" if c.kind == "query" else ""
        parts.append(f"<li id='src-{n}'>{e(describe_citation(c))}{link}{sql}</li>")
    parts.append("</ol>")
    if brief.notes:
        parts.append(f"<p class='meta'>Notes: {e('; '.join(brief.notes))}</p>")
    parts.append("</body></html>")
    return "".join(parts)


def to_rich(brief: Brief) -> Any:
    """A rich renderable for the terminal."""
    from rich.console import Group
    from rich.markup import escape
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    idx = citation_index(brief)

    def ln(line: Line) -> str:
        refs = _refs(line, idx)
        return escape(line.text) + (f" [dim]{escape(refs)}[/dim]" if refs else "")

    blocks: list[Any] = [Text.from_markup(f"[bold]{escape(brief.headline.text)}[/bold]"),
                         Text.from_markup(f"[dim]as of {brief.as_of} · drafter {escape(brief.drafter)} · playbook "
                                          f"{escape(brief.playbook_version)} · read-only advice[/dim]")]
    for title, keys in SECTIONS:
        blocks.append(Text.from_markup(f"\n[bold cyan]{escape(title)}[/bold cyan]"))
        if title == "Next best action":
            t = Table(show_header=False, box=None, padding=(0, 1))
            t.add_column(style="bold", no_wrap=True)
            t.add_column()
            for k, v in _next_action_rows(brief):
                t.add_row(k, Text.from_markup(ln(v)))
            blocks.append(t)
        elif title == "Process adherence":
            for c in brief.adherence:
                mark = "[green]met[/green]    " if c.met else "[red]not met[/red]"
                blocks.append(Text.from_markup(f"  {mark} {escape(c.criterion)}: {ln(c.evidence)}"))
        else:
            for k in keys:
                for x in getattr(brief, k):
                    blocks.append(Text.from_markup(f"  • {ln(x)}"))
    src = Table(title="Sources", show_header=False, box=None, title_justify="left")
    for cid, n in idx.items():
        src.add_row(f"[{n}]", escape(describe_citation(brief.citations[cid])))
    blocks.append(src)
    if brief.notes:
        blocks.append(Text.from_markup(f"[yellow]Notes: {escape('; '.join(brief.notes))}[/yellow]"))
    return Panel(Group(*blocks), title=f"Deal brief {escape(brief.opportunity_id)}", expand=False)


def to_slack_text(brief: Brief) -> str:
    """mrkdwn for an ephemeral Slack reply (CRM text escaped)."""
    from agents.review.escaping import slack_mrkdwn

    s = slack_mrkdwn
    lines = [f"*Deal brief:* {s(brief.headline.text)}", f"_as of {brief.as_of}, read-only advice_"]
    if brief.next_action:
        lines.append(f"*Next best action:* {s(brief.next_action.action.text)} {s(brief.next_action.timing.text)}")
        lines.append(f"_Why:_ {s(brief.next_action.reason.text)}")
    lines.append("*Stakeholders:* " + " ".join(s(x.text) for x in brief.stakeholders[:4]))
    for x in brief.missing_roles[:2] + brief.threading[:2]:
        lines.append("• " + s(x.text))
    lines.append("*Not met:* " + "; ".join(s(c.criterion) for c in brief.adherence if not c.met) if any(not c.met for c in brief.adherence)
                 else "*Exit criteria:* all met")
    lines.append("*Objections:* " + " ".join(s(x.text) for x in brief.objections[:3]))
    lines.append(f"_{len(brief.citations)} sources cited; the full brief: `sales-supervisor brief {s(brief.opportunity_id)}`_")
    return "\n".join(lines)
