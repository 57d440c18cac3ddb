"""Terminal rendering for `review list`, `review show`, `explain` and `risk explain` (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table

SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "dim"}


def print_queue(console: Console, items: list[Any], rank: str) -> None:
    """One block per item (readable at any terminal width): number, short id, severity, deal, amount, rule, action."""
    from agents.review.digests import short_item_id

    console.print(f"{len(items)} pending item(s), highest priority first ({'team-wide by severity x amount' if rank == 'team' else 'per rep, in digest order'}):\n")
    last, n = None, 0
    for i, it in enumerate(items, 1):
        evidence = it.evidence or {}
        flag = evidence.get("flag") or {}
        rep = (evidence.get("rep") or {}).get("rep_name") or it.rep_id or "-"
        if rank == "team":
            n = i
        else:
            if (it.manager_id, it.rep_id) != last:
                console.print(f"[bold]{escape(str(rep))}[/bold] (manager {escape(it.manager_id)})")
                last, n = (it.manager_id, it.rep_id), 0
            n += 1
        amount = flag.get("amount")
        deal = evidence.get("subject_label") or evidence.get("deal_name") or it.opportunity_id or "-"
        who = f"  rep {escape(str(rep))}, manager {escape(it.manager_id)}" if rank == "team" else ""
        console.print(
            f"  {n:>2}. [cyan]{short_item_id(it.item_id)}[/cyan] [{SEVERITY_STYLE.get(it.severity, '')}]{it.severity}[/] "
            f"{escape(str(deal))}" + (f"  ${amount:,.0f}" if amount else "") + f"  {it.rule_id}{who}",
            soft_wrap=True,
        )
        console.print(f"      {escape(str((it.draft or {}).get('action', '(no draft)')))}", soft_wrap=True)


def print_explanation(console: Console, data: dict[str, Any], *, show_sql: bool = True) -> None:
    flag, draft = data["flag"], data["draft"]
    rep = data.get("rep") or {}
    title = f"{data.get('subject_label') or '-'}  ·  item {data['short_id']}  ·  {data['as_of']}"
    lines = [
        f"[bold]{escape(str(draft.get('action', '(no draft)')))}[/bold]  ({escape(str(draft.get('actor', 'rep')))}, due {draft.get('due_date', '-')})",
        f"[b]Why:[/b] {escape(str(draft.get('rationale', '')))}",
        "",
        f"[b]Flag:[/b] {escape(str(flag.get('rule_id')))}  [{SEVERITY_STYLE.get(flag.get('severity'), '')}]{flag.get('severity')}[/] "
        f"confidence {float(flag.get('confidence') or 0):.0%}; {escape(str(flag.get('message', '')))}",
        f"[b]Observed[/b] {escape(str(flag.get('observed')))} against [b]threshold[/b] {escape(str(flag.get('threshold')))}",
        f"[b]Rep:[/b] {escape(str(rep.get('rep_name') or rep.get('rep_id') or '-'))}   [b]Manager:[/b] {escape(str(data['manager_id']))}",
    ]
    b = flag.get("baseline")
    if b:
        where = ", ".join(f"{k}={v}" for k, v in sorted((b.get("slice") or {}).items())) or "all deals"
        lines.append(
            f"[b]Baseline:[/b] {escape(str(b.get('metric')))} = {b.get('value')} ({escape(where)}; n={b.get('sample_size')}"
            + (f"; fallback: {escape(str(b['fallback']))}" if b.get("fallback") else "") + f") from query {b.get('semantic_query_id')}"
        )
    if data.get("note"):
        lines.append(f"[blue]{escape(data['note'])}[/blue]")
    console.print(Panel("\n".join(lines), title=escape(title), title_align="left"))

    rows = Table(title="CRM rows behind the flag")
    for col in ("object", "record", "what it shows", "link"):
        rows.add_column(col, overflow="fold")
    urls = {link.get("label"): link.get("url") for link in (data.get("links") or {}).get("crm", [])}
    for ref in flag.get("crm_records") or []:
        label = f"{ref.get('object')} {ref.get('record_id')}"
        rows.add_row(ref.get("object", ""), escape(str(ref.get("record_id"))), escape(str(ref.get("note") or "")), escape(str(ref.get("source_url") or urls.get(label) or "")))
    console.print(rows)

    for q in data.get("queries") or []:
        head = f"Semantic query {q['query_id']}" + (f" ({q['saved_query']})" if q.get("saved_query") else "")
        if "rows" not in q:
            console.print(f"{escape(head)}: no page stored beside the digest (re-run the pipeline to write it).")
            continue
        body = []
        for m in q.get("metrics") or []:
            body.append(f"[b]{escape(m['name'])}[/b]: {escape(str(m.get('description') or ''))}")
        body.append(f"[b]grouped by[/b] {escape(', '.join(q.get('group_by') or []) or '-')}; [b]filters[/b] {escape('; '.join(q.get('filters') or []) or 'none')}")
        console.print(Panel("\n".join(body), title=escape(head), title_align="left"))
        result = Table(show_header=True)
        cols = list((q.get("rows") or [{}])[0])
        for c in cols:
            result.add_column(c, overflow="fold")
        for r in (q.get("rows") or [])[:30]:
            result.add_row(*[("" if r.get(c) is None else (f"{r[c]:.4g}" if isinstance(r[c], float) else escape(str(r[c])))) for c in cols])
        console.print(result)
        if show_sql and q.get("sql"):
            console.print(Syntax(q["sql"], "sql", word_wrap=True))

    hist = Table(title="Decision history (this deal x rule)")
    for col in ("as of", "item", "decision", "by", "reason / edit"):
        hist.add_column(col, overflow="fold")
    for h in data.get("history") or []:
        hist.add_row(
            h.as_of.isoformat(), h.item_id[:8], h.action or "undecided", h.approver_id or "-",
            escape(h.reason or h.edited_text or ""),
        )
    console.print(hist)
