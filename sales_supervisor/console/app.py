"""The supervisor console: a Starlette app with server-rendered Jinja2 pages.

Every action goes through the same domain layer as the CLI and Slack (agents/ledger: decisions,
snoozes, kill switch, audit). The console only establishes who is signed in (local accounts with
argon2 hashes, or a trusted reverse-proxy header), keeps each person to their own team's digests,
and audits every refusal.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from agents.ledger import AlreadyDecided, EditTooLong, LedgerError, NotAuthorised, SnoozeRefused, UnknownItem
from agents.ledger.accounts import ROLE_LABELS, Account, AccountsFile
from sales_supervisor.console import views
from sales_supervisor.console.security import CSRF_FIELD, SecureHeadersMiddleware, csrf_ok, csrf_token
from sales_supervisor.console.settings import ConsoleSettings
from sales_supervisor.settings import Settings

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
SNOOZE_DAYS = (7, 14, 30)


class ConsoleState:
    """What every request needs: the settings, the ledger, the accounts file, the Dagster control."""

    def __init__(self, settings: Settings, console: ConsoleSettings, ledger: Any, dagster: Any | None = None):
        from sales_supervisor.console.dagster_control import DagsterControl

        self.settings = settings
        self.console = console
        self.ledger = ledger
        self.accounts = AccountsFile(console.users_path(settings.home_dir))
        self.outbox_dir = settings.home_dir / "outbox"
        self.delegates = settings.delegates()
        self.dagster = dagster or DagsterControl(console.dagster_url, console.dagster_location)
        self.layer_factory = None  # the Ask page's semantic layer (None: opened per question from the settings)


# -- helpers


def _state(request: Request) -> ConsoleState:
    return request.app.state.console


def actor_of(account: Account) -> str:
    """Who the audit trail names for a console action: the approver id, else console:<login>."""
    return account.approver_id or f"console:{account.login}"


def current_account(request: Request) -> Account | None:
    st = _state(request)
    header = st.console.trusted_header
    if header:
        client = request.client.host if request.client else None
        login = request.headers.get(header)
        if login and client in st.console.trusted_proxies:
            return st.accounts.get(login.strip())
    login = request.session.get("login")
    return st.accounts.get(login) if login else None


def flash(request: Request, text: str, kind: str = "ok") -> None:
    request.session.setdefault("flash", []).append({"text": text, "kind": kind})


def render(request: Request, template: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    st = _state(request)
    account = context.pop("account", None) or current_account(request)
    base = {
        "account": account,
        "role_label": ROLE_LABELS.get(account.role, account.role) if account else None,
        "csrf_field": CSRF_FIELD,
        "csrf_token": csrf_token(request.session),
        "flashes": request.session.pop("flash", []),
        "mode": st.ledger.mode(),
        "kill_switch": st.ledger.kill_switch_engaged(),
        "sso": bool(st.console.trusted_header),
    }
    return request.app.state.templates.TemplateResponse(request, template, {**base, **context}, status_code=status_code)


def refuse(request: Request, account: Account | None, why: str, subject_type: str = "console", subject_id: str = "-") -> HTMLResponse:
    """403 page; the refusal is written to the audit trail."""
    st = _state(request)
    st.ledger.record_event(
        actor_of(account) if account else "console:anonymous", "console.refused", subject_type, subject_id,
        {"login": account.login if account else None, "role": account.role if account else None,
         "path": request.url.path, "method": request.method, "why": why},
    )
    return render(request, "error.html", {"title": "Not allowed", "message": why}, status_code=403)


def _login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)


async def _form(request: Request) -> tuple[dict[str, str] | None, Response | None]:
    """The posted form when its CSRF token matches; else a 403 (audited)."""
    form = await request.form()
    data = {k: str(v) for k, v in form.items()}
    if not csrf_ok(request.session, data.get(CSRF_FIELD)):
        return None, refuse(request, current_account(request), "the form's security token is missing or stale: reload the page and try again",
                            "console", "csrf")
    return data, None


def _scope(request: Request, account: Account) -> set[str]:
    st = _state(request)
    return account.managers_in_scope(st.delegates, views.all_manager_ids(st.ledger))


def _safe_next(target: str | None) -> str:
    return target if target and target.startswith("/") and not target.startswith("//") else "/"


# -- sign-in


async def login_page(request: Request) -> Response:
    if request.method == "GET":
        return render(request, "login.html", {"next": _safe_next(request.query_params.get("next")), "account": None})
    form, bad = await _form(request)
    if bad:
        return bad
    st = _state(request)
    login = (form.get("login") or "").strip()
    account = st.accounts.authenticate(login, form.get("password") or "")
    if account is None:
        st.ledger.record_event("console:anonymous", "console.signin_refused", "console", "signin", {"login": login[:64]})
        return render(request, "login.html", {"next": _safe_next(form.get("next")), "error": "Wrong login or password.", "login": login},
                      status_code=401)
    request.session.clear()  # a new session on sign-in (no fixation)
    request.session["login"] = account.login
    request.session["signed_in_at"] = dt.datetime.now(dt.timezone.utc).isoformat()
    st.ledger.record_event(actor_of(account), "console.signed_in", "console", account.login, {"role": account.role})
    default = "/ops" if account.is_admin else "/digest"
    target = _safe_next(form.get("next"))
    return RedirectResponse(default if target == "/" else target, status_code=303)


async def logout(request: Request) -> Response:
    form, bad = await _form(request)
    if bad:
        return bad
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


async def home(request: Request) -> Response:
    account = current_account(request)
    if account is None:
        return _login_redirect(request)
    return RedirectResponse("/ops" if account.is_admin else "/digest", status_code=303)


# -- manager pages


async def digest_page(request: Request) -> Response:
    account = current_account(request)
    if account is None:
        return _login_redirect(request)
    st = _state(request)
    scope = _scope(request, account)
    wanted = request.query_params.get("manager")
    if wanted and wanted not in scope:
        return refuse(request, account, f"{account.label} may not see the digest of {wanted}: not their team", "manager", wanted)
    digests = views.latest_digests(st.ledger, scope)
    if not digests:
        return render(request, "digest.html", {"view": None, "digests": [], "names": {}})
    digest = next((d for d in digests if d.manager_id == wanted), None) if wanted else None
    if digest is None:
        own = [d for d in digests if d.manager_id == account.approver_id]
        digest = (own or digests)[0]
    view = views.digest_view(st.ledger, digest, st.outbox_dir)
    can_decide = account.approver_id is not None and st.ledger.is_authorised(account.approver_id, digest.manager_id)
    if can_decide and view["entries"]:
        st.ledger.record_digest_view(digest.digest_id, account.approver_id)
        view["review_time"] = st.ledger.review_time(digest.digest_id)
    return render(request, "digest.html", {
        "view": view, "digests": digests, "names": views.manager_names(st.ledger), "can_decide": can_decide,
        "snooze_days": SNOOZE_DAYS, "kpi": st.ledger.review_time_kpi(manager_id=digest.manager_id),
    })


def _item_in_scope(request: Request, account: Account, item_id: str) -> tuple[Any, Response | None]:
    st = _state(request)
    item = st.ledger.get_item(item_id)
    if item is None:
        return None, render(request, "error.html", {"title": "No such item", "message": f"No item {item_id}."}, status_code=404)
    if item.manager_id not in _scope(request, account):
        return None, refuse(request, account, f"{account.label} may not open item {views.short_item_id(item_id)}: "
                            f"it belongs to another team ({item.manager_id})", "item", item_id)
    return item, None


def _back(item: Any, anchor: str | None = None) -> str:
    return f"/digest?manager={quote(item.manager_id)}" + (f"#item-{anchor}" if anchor else "")


async def _item_post(request: Request):
    """(account, form, item, None) for a signed-in POST about an item of the account's team (CSRF
    checked), else the login redirect or the refusal as the last element."""
    account = current_account(request)
    if account is None:
        return None, None, None, _login_redirect(request)
    form, bad = await _form(request)
    if bad:
        return account, None, None, bad
    item, bad = _item_in_scope(request, account, request.path_params["item_id"])
    return account, form, item, bad


async def decide(request: Request) -> Response:
    account, form, item, bad = await _item_post(request)
    if bad:
        return bad
    st, item_id = _state(request), item.item_id
    action = form.get("action")
    short = views.short_item_id(item_id)
    deal = (item.evidence or {}).get("deal_name") or item.opportunity_id or short
    if action not in ("approve", "edit", "dismiss"):
        flash(request, f"Unknown action {action!r}.", "error")
        return RedirectResponse(_back(item, short), status_code=303)
    if not account.approver_id:
        return refuse(request, account, f"{account.label} ({ROLE_LABELS[account.role]}) has no approver id and cannot decide items",
                      "item", item_id)
    text = (form.get("text") or "").strip() or None
    reason = (form.get("reason") or "").strip() or None
    if action == "dismiss" and not reason:
        flash(request, f"Say why you dismiss {deal}: the reason is kept and shown if it comes back.", "error")
        return RedirectResponse(_back(item, short), status_code=303)
    if action == "edit" and not text:
        flash(request, "An edit needs the action as it should be sent.", "error")
        return RedirectResponse(_back(item, short), status_code=303)
    try:
        decision = st.ledger.record_decision(
            item_id, action, account.approver_id, "console", edited_text=text if action == "edit" else None,
            reason=reason, operator=account.approver_id,
        )
    except NotAuthorised as exc:
        flash(request, f"Refused: {exc} (the attempt is in the audit trail).", "error")
    except AlreadyDecided as exc:
        d = exc.decision
        flash(request, f"Already decided: {views.VERBS.get(d.action, d.action)} by {d.approver_id} at {d.decided_at:%H:%M} UTC. "
                       "Decisions are final.", "error")
    except EditTooLong as exc:
        flash(request, f"Too long: {exc}", "error")
    except UnknownItem:
        flash(request, "That item no longer exists.", "error")
    else:
        flash(request, f"{views.VERBS[decision.action].capitalize()}: {deal}.")
    return RedirectResponse(_back(item, short), status_code=303)


async def snooze(request: Request) -> Response:
    account, form, item, bad = await _item_post(request)
    if bad:
        return bad
    st, item_id = _state(request), item.item_id
    short = views.short_item_id(item_id)
    if not account.approver_id:
        return refuse(request, account, f"{account.label} has no approver id and cannot snooze", "item", item_id)
    try:
        days = int(form.get("days") or 14)
    except ValueError:
        days = 14
    if days not in SNOOZE_DAYS:
        days = 14
    digest = st.ledger.get_digest(item.digest_id)
    until = (digest.as_of if digest else dt.date.today()) + dt.timedelta(days=days)
    reason = (form.get("reason") or "").strip() or f"snoozed in the console for {days} days"
    if not item.opportunity_id:
        flash(request, "A rep-level item cannot be snoozed (snoozes are per deal).", "error")
        return RedirectResponse(_back(item, short), status_code=303)
    try:
        st.ledger.snooze(item.opportunity_id, until, by=account.approver_id, reason=reason, rule_id=item.rule_id,
                         operator=account.approver_id, channel="console")
    except (NotAuthorised, SnoozeRefused, LedgerError) as exc:
        flash(request, f"Not snoozed: {exc}", "error")
    else:
        deal = (item.evidence or {}).get("deal_name") or item.opportunity_id
        flash(request, f"Snoozed {deal} ({item.rule_id.replace('_', ' ')}) through {until:%a %d %b %Y}.")
    return RedirectResponse(_back(item, short), status_code=303)


async def item_page(request: Request) -> Response:
    account = current_account(request)
    if account is None:
        return _login_redirect(request)
    st = _state(request)
    item, bad = _item_in_scope(request, account, request.path_params["item_id"])
    if bad:
        return bad
    from agents.review.queue import explain_item

    data = explain_item(st.ledger, item.item_id, st.outbox_dir)
    digest = st.ledger.get_digest(item.digest_id)
    view = views.item_view(item, st.ledger.get_decision(item.item_id), digest.as_of.isoformat() if digest else data["as_of"])
    return render(request, "item.html", {"data": data, "view": view})


async def query_page(request: Request) -> Response:
    account = current_account(request)
    if account is None:
        return _login_redirect(request)
    from agents.review.query_pages import read_query_page_data

    st = _state(request)
    as_of, query_id = request.path_params["as_of"], request.path_params["query_id"]
    try:
        day = dt.date.fromisoformat(as_of)
    except ValueError:
        return render(request, "error.html", {"title": "Not found", "message": "Not a date."}, status_code=404)
    if not account.is_admin and not views.query_in_scope(st.ledger, day, query_id, _scope(request, account)):
        return refuse(request, account, f"{account.label} may not open query {query_id}: no item of their team cites it",
                      "query", query_id)
    data = read_query_page_data(st.outbox_dir, as_of, query_id)
    if data is None:
        return render(request, "error.html", {"title": "Query page not found", "message":
                      f"No stored page for query {query_id} as of {as_of}: the digest of that day did not cite it."}, status_code=404)
    rows = data.get("rows") or []
    return render(request, "query.html", {"q": data, "cols": list(rows[0]) if rows else [], "rows": rows, "as_of": as_of})


def create_app(settings: Settings | None = None, console: ConsoleSettings | None = None, *, ledger: Any | None = None,
               dagster: Any | None = None) -> Starlette:
    """The console app. ``ledger``: an open Ledger (default: opened from the settings, closed on shutdown)."""
    from contextlib import asynccontextmanager

    from agents.ledger import open_ledger
    from sales_supervisor.console import ask_routes, config_routes, ops_routes
    from sales_supervisor.console import brief_routes  # the deal coach's brief page (issue 16)
    from sales_supervisor.console import reports_routes  # the learning loop's charts (issue 17)

    settings = settings or Settings()
    console = console or ConsoleSettings()
    settings.home_dir.mkdir(parents=True, exist_ok=True)
    own_ledger = ledger is None
    if ledger is None:
        ledger = open_ledger(settings.ledger_url, home=settings.home_dir, delegates=settings.delegates(),
                             max_edited_chars=settings.max_edited_chars)

    @asynccontextmanager
    async def lifespan(app):
        yield
        if own_ledger:
            ledger.close()

    routes = [
        Route("/", home),
        Route("/login", login_page, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/digest", digest_page),
        Route("/items/{item_id:str}", item_page),
        Route("/items/{item_id:str}/decide", decide, methods=["POST"]),
        Route("/items/{item_id:str}/snooze", snooze, methods=["POST"]),
        Route("/queries/{as_of:str}/{query_id:str}", query_page),
        *ops_routes.routes,
        *config_routes.routes,
        *ask_routes.routes,
        *brief_routes.routes,
        *reports_routes.routes,
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [
        Middleware(SecureHeadersMiddleware, hsts=console.https),
        Middleware(SessionMiddleware, secret_key=console.signing_key(settings.home_dir), session_cookie="ss_console",
                   max_age=console.session_hours * 3600, same_site="lax", https_only=console.https),
    ]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.console = ConsoleState(settings, console, ledger, dagster)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals["base_url"] = console.base_url()
    app.state.templates = templates
    return app
