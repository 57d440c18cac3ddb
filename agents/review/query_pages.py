"""Every semantic-layer query a digest cites opens a page: the metrics' definitions, the filters, the SQL
MetricFlow generated and the result rows, written as static HTML (and JSON for the terminal) beside the
digest: ``digests/<as-of>/queries/<query_id>.html|.json``.

The details come from ``semantic.semantic_queries`` (what the run stored for provenance) and the
metric definitions from dbt's ``semantic_manifest.json``, read as plain JSON.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

QUERY_PAGES_DIR = "queries"
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,120}$")


def query_page_href(query_id: str) -> str:
    """The link from a digest page to its query page (relative: both live under digests/<as-of>/)."""
    return f"{QUERY_PAGES_DIR}/{quote(query_id, safe='')}.html"


def load_query_details(con: Any, query_ids: Iterable[str], as_of: Any) -> dict[str, dict[str, Any]]:
    """The latest stored execution of each query id for ``as_of`` (a warehouse connection, agents/warehouse.py)."""
    ids = sorted(set(query_ids))
    if not ids:
        return {}
    rows = con.execute(
        """select query_id, saved_query, request_json, sql, row_count, rows_json, metricflow_version,
                  cast(executed_at as varchar), manifest_hash
           from semantic.semantic_queries
           where query_id = any(:ids) and as_of = :as_of
           order by executed_at""",
        {"ids": ids, "as_of": as_of},
    ).fetchall()
    out: dict[str, dict[str, Any]] = {}
    for qid, saved, request, sql, n, rows_json, mf_version, executed_at, manifest in rows:
        out[qid] = {
            "query_id": qid,
            "saved_query": saved,
            "request": json.loads(request or "{}"),
            "sql": sql,
            "row_count": n,
            "rows": json.loads(rows_json or "[]"),
            "metricflow_version": mf_version,
            "executed_at": executed_at,
            "manifest_hash": manifest,
        }
    return out


def metric_definitions(manifest_path: Path | str | None) -> dict[str, dict[str, Any]]:
    """name -> {label, description, type, inputs} from a semantic_manifest.json ({} if there is none)."""
    if manifest_path is None or not Path(manifest_path).exists():
        return {}
    data = json.loads(Path(manifest_path).read_text(encoding="utf-8"))
    measures = {
        m["name"]: {"agg": m.get("agg"), "expr": m.get("expr"), "model": sm.get("name")}
        for sm in data.get("semantic_models", [])
        for m in sm.get("measures", [])
    }
    out = {}
    for metric in data.get("metrics", []):
        tp = metric.get("type_params") or {}
        inputs = []
        if tp.get("measure"):
            m = measures.get(tp["measure"]["name"], {})
            inputs.append(f"{m.get('agg', '')}({m.get('expr') or tp['measure']['name']}) over {m.get('model', '?')}")
        for key in ("numerator", "denominator"):
            if tp.get(key):
                inputs.append(f"{key}: {tp[key].get('name')}")
        if tp.get("expr"):
            inputs.append(f"expr: {tp['expr']}")
        for m in tp.get("metrics") or []:
            inputs.append(f"metric: {m.get('name')}")
        out[metric["name"]] = {
            "label": metric.get("label") or metric["name"],
            "description": metric.get("description") or "",
            "type": metric.get("type"),
            "inputs": inputs,
            "filter": (metric.get("filter") or {}).get("where_filters") if isinstance(metric.get("filter"), dict) else None,
        }
    return out


def page_data(detail: Mapping[str, Any], definitions: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    request = detail.get("request") or {}
    return {
        **detail,
        "metrics": [{"name": m, **definitions.get(m, {"description": "(definition not found in the manifest)"})}
                    for m in request.get("metrics", [])],
        "group_by": request.get("group_by", []),
        "filters": request.get("where", []),
    }


def query_page_html(data: Mapping[str, Any]) -> str:
    e = html.escape
    title = data.get("saved_query") or "baseline query"
    rows = data.get("rows") or []
    cols = list(rows[0]) if rows else []
    cell = "border:1px solid #e5e7eb;padding:3px 6px;text-align:left;font-size:12px"
    parts = [
        "<!doctype html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>{e(title)} ({e(data["query_id"])})</title></head>',
        '<body style="font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;color:#111827;max-width:1000px;'
        'margin:0 auto;padding:16px;font-size:14px">',
        f'<h1 style="font-size:18px">{e(title)} <code style="font-size:13px">{e(data["query_id"])}</code></h1>',
        f'<p style="color:#4b5563">Semantic-layer query (MetricFlow {e(str(data.get("metricflow_version") or "?"))}), '
        f'executed {e(str(data.get("executed_at") or "?"))}; {data.get("row_count", len(rows))} rows.</p>',
        '<h2 style="font-size:15px">Metrics</h2><ul>',
    ]
    for m in data.get("metrics", []):
        inputs = "; ".join(m.get("inputs") or [])
        parts.append(
            f"<li><b>{e(m['name'])}</b> ({e(str(m.get('type') or '?'))}): {e(m.get('description') or '')}"
            + (f' <span style="color:#6b7280">[{e(inputs)}]</span>' if inputs else "")
            + "</li>"
        )
    parts.append("</ul>")
    parts.append('<h2 style="font-size:15px">Grouped by</h2><p>' + (e(", ".join(data.get("group_by") or [])) or "(nothing: one row)") + "</p>")
    parts.append('<h2 style="font-size:15px">Filters</h2><p>' + (e("; ".join(data.get("filters") or [])) or "(none)") + "</p>")
    parts.append('<h2 style="font-size:15px">Result rows</h2><table style="border-collapse:collapse"><tr>')
    parts += [f'<th style="{cell};background:#f3f4f6">{e(c)}</th>' for c in cols]
    parts.append("</tr>")
    for row in rows:
        parts.append("<tr>" + "".join(f'<td style="{cell}">{e(_fmt(row.get(c)))}</td>' for c in cols) + "</tr>")
    parts.append("</table>")
    parts.append('<h2 style="font-size:15px">SQL generated by MetricFlow</h2>')
    parts.append(f'<pre style="background:#f3f4f6;padding:8px;overflow:auto;font-size:12px">{e(data.get("sql") or "")}</pre>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _write_if_changed(path: Path, text: str) -> None:
    """Every digest of a day cites the same query pages: a page already there with this text is left as is
    (one write per page and day, not one per manager)."""
    try:
        if path.stat().st_size == len(text.encode("utf-8")) and path.read_text(encoding="utf-8") == text:
            return
    except FileNotFoundError:
        pass
    path.write_text(text, encoding="utf-8")


# (page path, page data object) -> written in this process. The digests of a run share one page-data object
# per query (digests.build_digests), so a page every digest cites is rendered once per run, not once per
# manager (at scale 100: 300 digests, a baseline query of thousands of rows). The data object is kept
# (not its id) so an id is never reused; a new run builds new objects and writes again.
_RENDERED: dict[Path, Mapping[str, Any]] = {}


def write_query_pages(folder: Path | str, pages: Mapping[str, Mapping[str, Any]]) -> list[Path]:
    """Write ``<folder>/queries/<id>.html`` and ``.json`` for each query's page data; returns the HTML paths."""
    out_dir = Path(folder) / QUERY_PAGES_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for qid, data in pages.items():
        if not _SAFE_ID.match(qid):
            continue
        page = out_dir / f"{qid}.html"
        if _RENDERED.get(page) is data and page.exists() and (out_dir / f"{qid}.json").exists():
            paths.append(page)
            continue
        _write_if_changed(page, query_page_html(data))
        _write_if_changed(out_dir / f"{qid}.json", json.dumps(data, indent=1, default=str))
        if len(_RENDERED) > 10_000:
            _RENDERED.clear()
        _RENDERED[page] = data
        paths.append(page)
    return paths


def read_query_page_data(outbox_dir: Path | str, as_of: str, query_id: str) -> dict[str, Any] | None:
    path = Path(outbox_dir) / "digests" / as_of / QUERY_PAGES_DIR / f"{query_id}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
