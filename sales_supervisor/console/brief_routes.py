"""The deal brief page (issue 16): `/brief?deal=OPP`, the same brief as `sales-supervisor brief` and Slack `/brief`.

Only the deal's rep, their manager or the manager's delegates see it (``agents.coach.service.serve_brief``
decides and audits, channel "console"); the page shows every line with its numbered sources."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sales_supervisor.console.app import _login_redirect, _state, actor_of, current_account, render


async def brief_page(request: Request) -> Response:
    account = current_account(request)
    if account is None:
        return _login_redirect(request)
    deal = (request.query_params.get("deal") or "").strip()[:64]
    if not deal:
        return render(request, "brief.html", {"deal": "", "brief": None})
    from agents.coach.facts import DealNotFound
    from agents.coach.render import SECTIONS, _next_action_rows, citation_index, describe_citation
    from agents.coach.service import BriefRefused, WarehouseBusy, serve_brief
    from agents.semantic_layer import SemanticLayer, manifest_hash
    from sales_supervisor.dbt import manifest_is_stale, parse_dbt_project
    from sales_supervisor.settings import DBT_PROJECT_DIR
    from agents.warehouse import Warehouse

    st = _state(request)
    settings = st.settings
    if manifest_is_stale():
        parse_dbt_project()
    target = DBT_PROJECT_DIR / "target"
    try:
        result = serve_brief(
            deal, actor_of(account), warehouse=Warehouse.from_settings(settings), ledger=st.ledger,
            as_of=settings.effective_as_of(), cache_dir=settings.home_dir / "coach",
            layer_factory=lambda: SemanticLayer(DBT_PROJECT_DIR, DBT_PROJECT_DIR, target, settings.warehouse_path),
            manifest_sha=manifest_hash(target / "semantic_manifest.json"), channel="console")
    except BriefRefused:
        return render(request, "brief.html", {"deal": deal, "brief": None, "error":
                      f"You may not see the brief of {deal}: only its rep, their manager or the manager's delegates may. "
                      "The attempt was logged."}, status_code=403)
    except DealNotFound:
        return render(request, "brief.html", {"deal": deal, "brief": None, "error": f"No deal {deal} in the warehouse."},
                      status_code=404)
    except (WarehouseBusy, FileNotFoundError) as exc:
        return render(request, "brief.html", {"deal": deal, "brief": None, "error": str(exc)}, status_code=503)
    b = result.brief
    idx = citation_index(b)
    sections = []
    for title, keys in SECTIONS:
        if title == "Next best action":
            sections.append((title, "table", _next_action_rows(b)))
        elif title == "Process adherence":
            sections.append((title, "criteria", b.adherence))
        else:
            sections.append((title, "lines", [x for k in keys for x in getattr(b, k)]))
    sources = [(n, describe_citation(b.citations[c]), b.citations[c]) for c, n in idx.items()]
    return render(request, "brief.html", {"deal": deal, "brief": b, "sections": sections, "idx": idx, "sources": sources,
                                          "latency_ms": round(result.latency_s * 1000)})


routes = [Route("/brief", brief_page)]
