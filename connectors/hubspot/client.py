"""A small HubSpot HTTP client on dlt's REST client: bearer auth, paging, retries, clean errors.

Retries come from ``dlt.sources.helpers.requests.Client`` (tenacity underneath): 429 and 5xx
are retried with exponential backoff, honouring ``Retry-After``. Paging follows HubSpot's
``paging.next.after`` with ``JSONResponseCursorPaginator`` (query parameter for listings, body
field for search). Error messages name the endpoint, the status and HubSpot's own message;
they never carry the token (it lives only in the auth hook, which does not print it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import requests
from dlt.sources.helpers.requests import Client
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator, SinglePagePaginator
from requests.auth import AuthBase

from connectors.hubspot.config import RetrySettings

DEFAULT_BASE_URL = "https://api.hubapi.com"


class HubSpotError(RuntimeError):
    """A HubSpot call that failed after retries (or was refused); the message never holds the token."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class ReadOnlyViolation(HubSpotError):
    """The extract client was asked to write: only GET and POST .../search are allowed."""


class _Bearer(AuthBase):
    def __init__(self, token: str):
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:  # never print the token
        return "Bearer(***)"


def _is_read(method: str, url: str) -> bool:
    return method.upper() in ("GET", "HEAD") or (method.upper() == "POST" and urlsplit(url).path.endswith("/search"))


class HubSpotClient:
    """``read_only=True`` (the extract client) refuses, at the session, anything but GET and search."""

    def __init__(self, token: str, base_url: str = DEFAULT_BASE_URL, retry: RetrySettings | None = None, *,
                 read_only: bool = True, retry_statuses: tuple[int, ...] | None = None):
        if not token:
            raise HubSpotError("no HubSpot token (set HUBSPOT_TOKEN to a private-app or OAuth access token)")
        retry = retry or RetrySettings()
        self._token = token
        self.base_url = base_url.rstrip("/")
        self.read_only = read_only
        kwargs: dict[str, Any] = {}
        if retry_statuses is not None:
            kwargs["status_codes"] = retry_statuses
            kwargs["exceptions"] = ()  # a write that timed out may have landed: the caller decides
        session = Client(
            raise_for_status=False,
            request_timeout=retry.timeout_s,
            request_max_attempts=retry.max_attempts,
            request_backoff_factor=retry.backoff_factor,
            request_max_retry_delay=retry.max_delay_s,
            respect_retry_after_header=True,
            **kwargs,
        ).session
        if read_only:
            send = session.send

            def guarded_send(request, **kw):
                if not _is_read(request.method or "", request.url or ""):
                    raise ReadOnlyViolation(f"the HubSpot extract client is read-only: refused {request.method} {urlsplit(request.url or '').path}")
                return send(request, **kw)

            session.send = guarded_send  # type: ignore[method-assign]
        self.rest = RESTClient(
            base_url=self.base_url, auth=_Bearer(token), session=session, headers={"Accept": "application/json"}
        )
        self.calls = 0

    def __repr__(self) -> str:
        return f"HubSpotClient(base_url={self.base_url!r}, read_only={self.read_only})"

    # -- errors ----------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def _error(self, method: str, path: str, exc: BaseException) -> HubSpotError:
        response = getattr(exc, "response", None)
        if response is not None:
            detail = ""
            try:
                body = response.json()
                detail = str(body.get("message") or "")
                if body.get("category"):
                    detail = f"{body['category']}: {detail}"
                if body.get("correlationId"):
                    detail += f" (correlationId {body['correlationId']})"
            except ValueError:
                detail = (response.text or "")[:300]
            hint = {401: " - check HUBSPOT_TOKEN", 403: " - the private app lacks a scope"}.get(response.status_code, "")
            msg = f"HubSpot {method} {path} failed: HTTP {response.status_code} {detail}{hint}".rstrip()
            return HubSpotError(self._scrub(msg), response.status_code)
        return HubSpotError(self._scrub(f"HubSpot {method} {path} failed: {type(exc).__name__}: {exc}"))

    def _check(self, method: str, path: str, response: requests.Response) -> requests.Response:
        if response.status_code >= 400:
            raise self._error(method, path, requests.HTTPError(response=response))
        return response

    # -- reading ---------------------------------------------------------------------------
    def pages(self, path: str, params: dict[str, Any] | None = None, *, paged: bool = True) -> Iterator[list[dict]]:
        """GET a listing, following ``paging.next.after``; yields each page's ``results``."""
        paginator = (
            JSONResponseCursorPaginator(cursor_path="paging.next.after", cursor_param="after") if paged else SinglePagePaginator()
        )
        try:
            for page in self.rest.paginate(path, params=dict(params or {}), paginator=paginator, data_selector="results"):
                self.calls += 1
                yield list(page)
        except ReadOnlyViolation:
            raise
        except (requests.RequestException, ValueError) as exc:
            raise self._error("GET", path, exc) from None

    def search(self, object_type: str, body: dict[str, Any]) -> Iterator[list[dict]]:
        """POST /crm/v3/objects/<type>/search, following ``paging.next.after`` in the body."""
        path = f"/crm/v3/objects/{object_type}/search"
        paginator = JSONResponseCursorPaginator(cursor_path="paging.next.after", cursor_body_path="after")
        try:
            for page in self.rest.paginate(path, method="POST", json=json.loads(json.dumps(body)), paginator=paginator, data_selector="results"):
                self.calls += 1
                yield list(page)
        except ReadOnlyViolation:
            raise
        except (requests.RequestException, ValueError) as exc:
            raise self._error("POST", path, exc) from None

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = self.rest.get(path, params=params)
        except ReadOnlyViolation:
            raise
        except requests.RequestException as exc:
            raise self._error("GET", path, exc) from None
        self.calls += 1
        return self._check("GET", path, response).json()

    # -- writing (only when read_only=False: the note writer) -------------------------------
    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.rest.post(path, json=body)  # connection errors propagate: the caller classifies them
        self.calls += 1
        return self._check("POST", path, response).json()
