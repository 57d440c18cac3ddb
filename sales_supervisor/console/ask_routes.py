"""The Ask page: a question answered only through the semantic layer (agents/ask), with each query's id, SQL
and rows. A manager's questions are limited to their team(s), as in Slack and the CLI's --as; every question
is an audit row (ask.answered / ask.refused, written by agents/ask)."""

from __future__ import annotations

import contextlib
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sales_supervisor.console.app import _form, _login_redirect, _state, current_account, render

EXAMPLES = (
    "How did the enterprise team do last quarter?",
    "Show deals stuck in Negotiation for more than 30 days",
    "win rate by segment and quarter",
)


def ask_available() -> bool:
    try:
        import agents.ask  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def default_layer(settings: Any):
    """The semantic layer over the warehouse, opened for one question (the CLI's construction)."""
    from agents.semantic_layer import SemanticLayer
    from sales_supervisor.dbt import manifest_is_stale, parse_dbt_project
    from sales_supervisor.settings import DBT_PROJECT_DIR

    if not settings.warehouse_path.exists():
        raise FileNotFoundError(f"no warehouse at {settings.warehouse_path}: run `make demo` first")
    if manifest_is_stale():
        parse_dbt_project()
    layer = SemanticLayer(DBT_PROJECT_DIR, DBT_PROJECT_DIR, DBT_PROJECT_DIR / "target", settings.warehouse_path)
    if hasattr(layer, "__enter__"):
        with layer as opened:
            yield opened
    else:
        yield layer


async def ask_page(request: Request) -> Response:
    account = current_account(request)
    if account is None:
        return _login_redirect(request)
    if not ask_available():
        return render(request, "ask.html", {"available": False, "examples": EXAMPLES})
    if request.method == "GET":
        return render(request, "ask.html", {"available": True, "examples": EXAMPLES, "question": ""})
    form, bad = await _form(request)
    if bad:
        return bad
    from agents.ask import answer, make_asker, scope_for

    st = _state(request)
    question = (form.get("question") or "").strip()[:500]
    if not question:
        return render(request, "ask.html", {"available": True, "examples": EXAMPLES, "question": "", "error": "Type a question."})
    scope = None if account.is_admin else scope_for(account.approver_id or f"console:{account.login}", st.delegates,
                                                   is_manager=account.role == "manager")
    factory = getattr(st, "layer_factory", None) or default_layer
    try:
        with factory(st.settings) as layer:
            result = answer(question, layer=layer, settings=st.settings, scope=scope, asker=make_asker(st.settings), ledger=st.ledger)
    except Exception as exc:  # no warehouse yet, MetricFlow cannot start: say so plainly
        return render(request, "ask.html", {"available": True, "examples": EXAMPLES, "question": question,
                                            "error": f"The semantic layer could not answer: {type(exc).__name__}: {exc}"})
    return render(request, "ask.html", {"available": True, "examples": EXAMPLES, "question": question, "answer": result})


routes = [Route("/ask", ask_page, methods=["GET", "POST"])]
