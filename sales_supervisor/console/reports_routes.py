"""The learning loop's reports in the console (issue 17): the charts `sales-supervisor backtest`,
`outcomes report` and `rule-lab` write under the home folder (lift per rule, action effectiveness
per rule and over time, the threshold sweep), shown on one page for ops admins.

Only files the commands wrote are served: a folder from a fixed list and a file name that is
listed in it (no path from the request is ever joined blindly)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from sales_supervisor.console.app import _state, render
from sales_supervisor.console.ops_routes import _admin

# folder under the home -> (title, the command that writes it)
REPORT_FOLDERS = {
    "backtest": ("Backtest: lift per rule", "sales-supervisor backtest"),
    "outcomes": ("Action effectiveness", "sales-supervisor outcomes check && sales-supervisor outcomes report"),
    "rule_lab": ("Rule lab: threshold sweep", "sales-supervisor rule-lab --csv FILE -e EXPRESSION"),
}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.png$")


def report_charts(home: Path) -> list[dict]:
    """One entry per report folder: its charts (PNG), newest first, with when they were written."""
    out = []
    for folder, (title, command) in REPORT_FOLDERS.items():
        where = home / folder
        charts = sorted((p for p in where.glob("*.png") if _SAFE_NAME.match(p.name)),
                        key=lambda p: p.stat().st_mtime, reverse=True) if where.is_dir() else []
        out.append({"folder": folder, "title": title, "command": command, "charts": [
            {"name": p.name, "written": dt.datetime.fromtimestamp(p.stat().st_mtime).strftime("%Y-%m-%d %H:%M")}
            for p in charts]})
    return out


async def reports_page(request: Request) -> Response:
    account, bad = _admin(request)
    if bad:
        return bad
    return render(request, "reports.html", {"reports": report_charts(_state(request).settings.home_dir)})


async def report_chart(request: Request) -> Response:
    account, bad = _admin(request)
    if bad:
        return bad
    folder, name = request.path_params["folder"], request.path_params["name"]
    home = _state(request).settings.home_dir
    if folder not in REPORT_FOLDERS or not _SAFE_NAME.match(name):
        return Response("no such chart", status_code=404)
    listed = {p.name: p for p in (home / folder).glob("*.png")} if (home / folder).is_dir() else {}
    if name not in listed:
        return Response("no such chart", status_code=404)
    return FileResponse(listed[name], media_type="image/png")


routes = [
    Route("/ops/reports", reports_page),
    Route("/ops/reports/{folder:str}/{name:str}", report_chart),
]
