"""The `/ask` Slack slash command: a question answered through the semantic layer, privately.

Registered on the review app by ``build_app(..., ask=...)``. ``ask(question, approver_id)`` returns an
agents.ask Answer (the caller builds it with the asker's team scope, so a manager's queries are limited to
their team). The command is acknowledged at once (Slack allows 3 s) and the answer follows through the
command's response_url as an ephemeral message: only the asker sees it, with each query's id, SQL and rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from agents.review.escaping import slack_mrkdwn

log = logging.getLogger(__name__)

ASK_COMMAND = "/ask"
_MAX_SECTION = 2900  # Slack caps a section's text at 3000 characters
_ROWS = 15


def _code(text: str) -> str:
    body = text.replace("```", "'''")
    if len(body) > _MAX_SECTION - 8:
        body = body[: _MAX_SECTION - 20] + "\n... (truncated)"
    return f"```{body}```"


def _table(columns: list[str], rows: list[Mapping[str, Any]]) -> str:
    from agents.ask.answer import format_value

    cells = [[str(c) for c in columns]] + [[format_value(c, r.get(c)) for c in columns] for r in rows[:_ROWS]]
    widths = [min(max(len(row[i]) for row in cells), 40) for i in range(len(columns))]
    lines = ["  ".join(v[:40].ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def answer_blocks(answer: Any) -> list[dict[str, Any]]:
    """The answer, then per query: its id and meaning, the SQL, the rows (first 15)."""
    head = ("" if answer.answered else ":warning: ") + slack_mrkdwn(answer.text)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{slack_mrkdwn(answer.question)}*\n{head}"[:_MAX_SECTION]}},
    ]
    for hint in answer.hints[:1]:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": slack_mrkdwn(hint)[:_MAX_SECTION]}]})
    for q in answer.queries[:3]:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": slack_mrkdwn(
            f"query {q.query_id}: {q.description}; {q.row_count} row{'s' if q.row_count != 1 else ''}")[:_MAX_SECTION]}]})
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _code(q.sql.strip())}})
        if q.rows:
            more = f"\n... {q.row_count - _ROWS} more rows (sales-supervisor ask --json shows all)" if q.row_count > _ROWS else ""
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _code(_table(q.columns, q.rows) + more)}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": slack_mrkdwn(
        f"{answer.engine}, as of {answer.as_of}" + (f", limited to {', '.join(answer.scope)}" if answer.scope else ""))}]})
    return blocks


def register_ask_command(app: Any, approvers: Mapping[str, str], ask: Callable[[str, str], Any], *,
                         command: str = ASK_COMMAND) -> None:
    from agents.review.slack_app import resolve_approver

    @app.command(command)
    def on_ask(ack, command, respond):  # noqa: ANN001 - bolt injects by name
        question = (command.get("text") or "").strip()
        if not question:
            ack(response_type="ephemeral", text=f"Ask a question about the pipeline, e.g. `{ASK_COMMAND} win rate by segment last quarter`.")
            return
        ack(response_type="ephemeral", text=f"Looking that up in the governed metrics: {slack_mrkdwn(question)}")
        approver = resolve_approver(approvers, str(command.get("user_id") or ""))
        try:
            result = ask(question, approver)
        except Exception as exc:  # noqa: BLE001 - the asker gets a reason, the log the detail
            log.exception("/ask failed")
            respond(response_type="ephemeral", replace_original=False,
                    text=f"Could not answer: {slack_mrkdwn(type(exc).__name__)} (the warehouse may be busy with a run; try again shortly).")
            return
        respond(response_type="ephemeral", replace_original=False, text=result.text[:2900], blocks=answer_blocks(result))
