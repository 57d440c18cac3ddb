"""The ops admin's pages and override controls: status, activity, exceptions, KPIs, kill switch, schedule,
sensor, run now, snapshots. Only the ops admin role may open them; every refusal is audited."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from sales_supervisor.console import ops
from sales_supervisor.console.app import _form, _login_redirect, _state, actor_of, current_account, flash, refuse, render
from sales_supervisor.console.dagster_control import DagsterUnavailable


def _admin(request: Request):
    account = current_account(request)
    if account is None:
        return None, _login_redirect(request)
    if not account.is_admin:
        return None, refuse(request, account, f"{account.label} ({account.role}) may not open the ops pages: ops admins only",
                            "console", request.url.path)
    return account, None


async def _admin_form(request: Request):
    """(account, form, None) for an ops admin's valid POST (CSRF checked), else (.., .., the refusal)."""
    account, bad = _admin(request)
    if bad:
        return account, None, bad
    form, bad = await _form(request)
    return account, form, bad


async def ops_page(request: Request) -> Response:
    account, bad = _admin(request)
    if bad:
        return bad
    st = _state(request)
    facts = ops.last_run_facts(st.settings.home_dir)
    return render(request, "ops.html", {
        "cards": ops.status_cards(st, facts), "feed": ops.activity_feed(st.ledger), "exc": ops.exceptions(st, facts),
        "kpis": ops.kpis(st, facts), "snapshots": ops.list_snapshots(st.settings.home_dir, 5),
        "now": {"policy_version": ops.current_policy_version(st.settings, st.ledger),
                "ledger_anchor": ":".join(map(str, st.ledger.audit_head() or ())) or None},
    })


async def chart(request: Request) -> Response:
    account = current_account(request)
    if account is None:
        return _login_redirect(request)
    if not account.is_admin:
        return refuse(request, account, "charts are on the ops pages: ops admins only", "console", request.url.path)
    kind = request.path_params["kind"]
    if kind not in ("dismissals", "agreement", "decisions"):
        return Response("no such chart", status_code=404)
    return Response(ops.chart_svg(kind, _state(request)), media_type="image/svg+xml")


async def sending(request: Request) -> Response:
    account, form, bad = await _admin_form(request)
    if bad:
        return bad
    st = _state(request)
    reason = (form.get("reason") or "").strip()
    if form.get("do") == "pause":
        st.ledger.engage_kill_switch(actor=actor_of(account), reason=reason or f"paused from the console by {account.login}")
        flash(request, "Sending paused: no message or CRM note goes out until you resume (the next publish sends nothing).")
    elif form.get("do") == "resume":
        from agents.review.modes import KILL_SWITCH_ACTOR

        engaged = [r for r in st.ledger.audit_rows(subject_type="ledger", subject_id="kill_switch") if r.action == "kill_switch.engaged"]
        st.ledger.release_kill_switch(actor=actor_of(account), reason=reason or f"resumed from the console by {account.login}")
        if engaged and engaged[-1].actor == KILL_SWITCH_ACTOR:
            flash(request, "Sending resumed. It had been paused by the configuration (AGENT_SEND_ENABLED is false): the next "
                           "publish or Slack app start applies that setting again, so set AGENT_SEND_ENABLED=true to keep it on.", "error")
        else:
            flash(request, "Sending resumed.")
    return RedirectResponse("/ops", status_code=303)


async def instigator(request: Request) -> Response:
    account, form, bad = await _admin_form(request)
    if bad:
        return bad
    st = _state(request)
    what = request.path_params["what"]  # schedule | sensor
    if what not in ("schedule", "sensor"):
        return Response("not found", status_code=404)
    running = form.get("do") == "resume"
    name = "the weekday schedule" if what == "schedule" else "the approval sensor"
    try:
        status = st.dagster.set_schedule(running) if what == "schedule" else st.dagster.set_sensor(running)
    except DagsterUnavailable as exc:
        st.ledger.record_event(actor_of(account), f"console.{what}_change_failed", "dagster", what, {"wanted": "RUNNING" if running else "STOPPED", "error": str(exc)[:300]})
        flash(request, f"Could not {'resume' if running else 'pause'} {name}: {exc}. Is `make dev` running?", "error")
    else:
        st.ledger.record_event(actor_of(account), f"console.{what}_{'resumed' if running else 'paused'}", "dagster", what, {"status": status})
        flash(request, f"{name.capitalize()} is now {status.lower()}.")
    return RedirectResponse("/ops", status_code=303)


async def run_now(request: Request) -> Response:
    account, form, bad = await _admin_form(request)
    if bad:
        return bad
    st = _state(request)
    try:
        run_id = st.dagster.run_now()
    except DagsterUnavailable as exc:
        st.ledger.record_event(actor_of(account), "console.run_failed", "dagster", "daily_supervisor_job", {"error": str(exc)[:300]})
        flash(request, f"No run started: {exc}. Is `make dev` running?", "error")
    else:
        st.ledger.record_event(actor_of(account), "console.run_requested", "dagster", "daily_supervisor_job", {"run_id": run_id})
        flash(request, f"Run {run_id[:8]} of daily_supervisor_job submitted to Dagster.")
    return RedirectResponse("/ops", status_code=303)


async def snapshot(request: Request) -> Response:
    account, form, bad = await _admin_form(request)
    if bad:
        return bad
    snap = ops.take_snapshot(_state(request), actor_of(account), form.get("note"))
    flash(request, f"Snapshot {snap['file']} taken (policy {snap['policy_version']}, ledger anchor {str(snap['ledger_anchor'])[:18]}...).")
    return RedirectResponse("/ops#snapshots", status_code=303)


routes = [
    Route("/ops", ops_page),
    Route("/ops/charts/{kind:str}.svg", chart),
    Route("/ops/sending", sending, methods=["POST"]),
    Route("/ops/{what:str}/toggle", instigator, methods=["POST"]),
    Route("/ops/run", run_now, methods=["POST"]),
    Route("/ops/snapshot", snapshot, methods=["POST"]),
]
