"""The ops admin's policy panel: the risk policy per rule with its thresholds; an edit is proposed as a new
validated policy version (agents/risk/versions.py, the same store the CLI uses), shown as a diff against the
current one, applied with one click, and any earlier version is one click away (rollback). Audited by the store."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from sales_supervisor.console.app import _state, actor_of, flash, render
from sales_supervisor.console.ops_routes import _admin, _admin_form


def _store(request: Request):
    """The policy version store, or None while agents/risk/versions.py is not installed."""
    try:
        from agents.risk.versions import PolicyVersionStore
    except ImportError:
        return None
    return PolicyVersionStore(_state(request).ledger)


def rule_rows(policy: Any) -> list[dict[str, Any]]:
    """Each rule with what it compares: enabled, severity, its parameters, and the segment/stage overrides."""
    rows = []
    configs = policy.all_rule_configs()
    for rule_id in policy.rule_ids:
        cfg = configs[rule_id]
        resolved = policy.resolve(rule_id)
        params = resolved.params.model_dump() if hasattr(resolved.params, "model_dump") else dict(resolved.params)
        overrides = []
        for ov in getattr(cfg, "overrides", []) or []:
            scope = " / ".join(x for x in (getattr(ov, "segment", None), getattr(ov, "stage", None)) if x) or "all"
            bits = [f"{k} {v}" for k, v in (getattr(ov, "params", None) or {}).items()]
            overrides.append(f"{scope}: {', '.join(bits) or 'other settings'}")
        rows.append({
            "rule": rule_id, "enabled": resolved.enabled, "severity": resolved.severity,
            "description": getattr(cfg, "description", "") or "",
            "params": {k: v for k, v in params.items() if v is not None and not isinstance(v, (dict, list))},
            "overrides": overrides,
        })
    return rows


def _current(request: Request):
    from agents.risk.policy import DEFAULT_POLICY_PATH, load_policy

    st = _state(request)
    store = _store(request)
    if st.settings.risk_policy:  # an explicit file wins over the ledger's versions (and cannot be edited here)
        return load_policy(st.settings.risk_policy), st.settings.risk_policy.read_text(), None, store
    cur = store.current() if store else None
    if cur is not None:
        return cur.load(), cur.yaml_text, cur, store
    return load_policy(None), DEFAULT_POLICY_PATH.read_text(), None, store


async def config_page(request: Request) -> Response:
    account, bad = _admin(request)
    if bad:
        return bad
    st = _state(request)
    policy, text, current, store = _current(request)
    proposal = None
    pid = request.query_params.get("proposal")
    if store is not None and pid and pid.isdigit():
        try:
            v = store.get(int(pid))
            proposal = {"v": v, "diff": store.diff(current.version_id if current else None, v.version_id),
                        "changes": [str(c) for c in store.threshold_changes(current.version_id if current else None, v.version_id)]}
        except Exception as exc:  # UnknownPolicyVersion
            flash(request, str(exc), "error")
    return render(request, "config.html", {
        "policy": policy, "rules": rule_rows(policy), "text": request.session.pop("policy_draft", None) or text,
        "current": current, "versions": store.list() if store else [], "store": store is not None,
        "explicit_file": st.settings.risk_policy, "proposal": proposal,
    })


async def propose(request: Request) -> Response:
    account, form, bad = await _admin_form(request)
    if bad:
        return bad
    store = _store(request)
    if store is None:
        flash(request, "The policy version store (agents/risk/versions.py) is not installed in this build.", "error")
        return RedirectResponse("/ops/config", status_code=303)
    from agents.risk.policy import PolicyError

    text, reason = form.get("yaml_text") or "", (form.get("reason") or "").strip()
    try:
        version = store.propose(text, actor_of(account), reason)
    except (PolicyError, ValueError) as exc:
        request.session["policy_draft"] = text  # keep the admin's edit on the page
        flash(request, f"Not proposed: {exc}", "error")
        return RedirectResponse("/ops/config#edit", status_code=303)
    flash(request, f"Proposed as policy version {version.version_id}: review the diff, then apply it.")
    return RedirectResponse(f"/ops/config?proposal={version.version_id}#proposal", status_code=303)


async def apply_or_rollback(request: Request) -> Response:
    account, form, bad = await _admin_form(request)
    if bad:
        return bad
    store = _store(request)
    if store is None:
        return RedirectResponse("/ops/config", status_code=303)
    from agents.risk.versions import PolicyVersionError

    what = request.path_params["what"]
    try:
        vid = int(form.get("version_id") or 0)
        if what == "apply":
            v = store.apply(vid, actor_of(account))
            flash(request, f"Policy version {v.version_id} ({v.policy_version}) applied: the next run uses it.")
        elif what == "rollback":
            v = store.rollback(vid or None, actor=actor_of(account))
            flash(request, f"Rolled back to {'policy version ' + str(v.version_id) if v else 'the shipped default policy'}.")
        elif what == "reject":
            store.reject(vid, actor_of(account), (form.get("reason") or "").strip() or "rejected in the console")
            flash(request, f"Proposal {vid} rejected.")
        else:
            return Response("not found", status_code=404)
    except (PolicyVersionError, ValueError) as exc:
        flash(request, f"Refused: {exc}", "error")
    return RedirectResponse("/ops/config", status_code=303)


routes = [
    Route("/ops/config", config_page),
    Route("/ops/config/propose", propose, methods=["POST"]),
    Route("/ops/config/{what:str}", apply_or_rollback, methods=["POST"]),
]
