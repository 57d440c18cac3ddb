"""Pipedrive's HTTP layer: dlt's RESTClient with retries, paginators and a token that never leaks.

Retries (429 honouring Retry-After, 5xx, dropped connections) come from
``dlt.sources.helpers.requests.Client`` (tenacity underneath). The token goes in
the ``x-api-token`` header by default, added to the prepared request by an auth
object so it is in no logged URL, parameter dict or header dict; with
``token_in="query"`` (``api_token=``, Pipedrive's older style) every URL we log
or put in an error is redacted, and so is urllib3's debug line.

:class:`PipedriveReader` can only GET: the extract path has no write method at all.
The one write (a note on a deal) lives in ``connectors.pipedrive.notes``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import requests
from dlt.sources.helpers.requests.retry import DEFAULT_RETRY_EXCEPTIONS, DEFAULT_RETRY_STATUS, Client
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.paginators import BasePaginator, JSONResponseCursorPaginator, OffsetPaginator

log = logging.getLogger("connectors.pipedrive")

_TOKEN_PARAM = re.compile(r"(?i)(api_token=)[^&\s'\"#]*")
_USER_AGENT = "sales-supervisor (read-only extract)"


class PipedriveError(RuntimeError):
    """A Pipedrive request that failed for good; the message never contains the API token."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class PipedriveHTTPError(requests.HTTPError):
    """An error status (raised inside the retry loop so 429/5xx are retried); message redacted."""


def redact(text: str, token: str | None = None) -> str:
    out = _TOKEN_PARAM.sub(r"\1***", str(text))
    if token:
        out = out.replace(token, "***")
    return out


class _TokenAuth(requests.auth.AuthBase):
    """Adds the token to the prepared request only, after anything that logs parameters or headers."""

    def __init__(self, token: str, in_query: bool):
        self._token = token
        self._in_query = in_query

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        if self._in_query:
            r.prepare_url(r.url, {"api_token": self._token})
        else:
            r.headers["x-api-token"] = self._token
        return r

    def __repr__(self) -> str:
        return "<pipedrive token ***>"


class _RedactingFilter(logging.Filter):
    """urllib3 logs each request line (query string included) at debug level: redact the token there."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)  # type: ignore[assignment]
        record.msg = redact(record.msg) if isinstance(record.msg, str) else record.msg
        return True


_URLLIB3_FILTER = _RedactingFilter()


class _RestClient(RESTClient):
    def _log_request(self, request: Any, prepared_url: str) -> None:  # dlt's debug log prints params and headers
        log.debug("%s %s", request.method.upper(), redact(prepared_url))


def company_from_base_url(base_url: str) -> str | None:
    host = urlsplit(base_url).hostname or ""
    if host.endswith(".pipedrive.com") and host not in ("api.pipedrive.com", "app.pipedrive.com"):
        return host[: -len(".pipedrive.com")]
    return None


class _Http:
    def __init__(
        self,
        api_token: str,
        base_url: str,
        *,
        token_in: str = "header",
        timeout_s: float = 60.0,
        max_attempts: int = 6,
        backoff_factor: float = 1.0,
        max_retry_delay_s: float = 120.0,
        retry_status: tuple[int, ...] = DEFAULT_RETRY_STATUS,
        retry_exceptions: tuple[type[Exception], ...] = DEFAULT_RETRY_EXCEPTIONS,
    ):
        if not api_token:
            raise PipedriveError("no Pipedrive API token (set PIPEDRIVE_API_TOKEN)")
        self._token = api_token
        self.base_url = base_url.rstrip("/")
        session = Client(
            request_timeout=timeout_s,
            raise_for_status=False,
            request_max_attempts=max_attempts,
            request_backoff_factor=backoff_factor,
            request_max_retry_delay=max_retry_delay_s,
            respect_retry_after_header=True,
            status_codes=retry_status,
            exceptions=retry_exceptions,
        ).session
        self._rest = _RestClient(
            base_url=self.base_url,
            headers={"Accept": "application/json", "User-Agent": _USER_AGENT},
            auth=_TokenAuth(api_token, token_in == "query"),
            session=session,
            data_selector="data",
        )
        if token_in == "query":
            logging.getLogger("urllib3.connectionpool").addFilter(_URLLIB3_FILTER)

    # Raised inside session.send, so the retry wrapper sees the status and retries 429/5xx.
    def _raise_for_status(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if response.status_code < 400:
            _empty_null_data(response)
        else:
            try:
                body = response.json()
                detail = body.get("error") or body.get("error_info") or ""
            except ValueError:
                detail = response.text[:200]
            method = response.request.method if response.request is not None else "GET"
            msg = f"Pipedrive {method} {redact(response.url, self._token)}: HTTP {response.status_code} {redact(str(detail), self._token)}".rstrip()
            raise PipedriveHTTPError(msg, response=response)

    def _fail(self, exc: Exception, what: str) -> PipedriveError:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if isinstance(exc, PipedriveHTTPError):
            return PipedriveError(str(exc), status)
        return PipedriveError(f"Pipedrive {what}: {type(exc).__name__}: {redact(str(exc), self._token)}", status)

    def _check_body(self, response: requests.Response, what: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            raise PipedriveError(f"Pipedrive {what}: not JSON (HTTP {response.status_code})", response.status_code) from None
        if isinstance(body, dict) and body.get("success") is False:
            raise PipedriveError(f"Pipedrive {what}: {redact(str(body.get('error')), self._token)}", response.status_code)
        return body


def _empty_null_data(response: requests.Response) -> None:
    """Pipedrive answers an empty list as ``"data": null``; make it ``[]`` so paginators see an empty page."""
    if b'"data":null' not in response.content.replace(b" ", b""):
        return
    try:
        body = response.json()
    except ValueError:
        return
    if isinstance(body, dict) and "data" in body and body["data"] is None:
        body["data"] = []
        response._content = json.dumps(body).encode()


class PipedriveReader(_Http):
    """GET only: what the extract uses."""

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = self._rest.get(path, params=params or {}, hooks={"response": [self._raise_for_status]})
        except requests.RequestException as exc:
            raise self._fail(exc, f"GET {path}") from None
        return self._check_body(response, f"GET {path}")

    def pages(self, path: str, params: dict[str, Any] | None, paginator: BasePaginator) -> Iterator[list[dict[str, Any]]]:
        """Each page's ``data`` list (``data: null`` is an empty page), following the paginator."""
        it = self._rest.paginate(
            path, params=dict(params or {}), paginator=paginator, hooks={"response": [self._raise_for_status]}
        )
        while True:
            try:
                page = next(it)
            except StopIteration:
                return
            except requests.RequestException as exc:
                raise self._fail(exc, f"GET {path}") from None
            self._check_body(page.response, f"GET {path}")
            records = list(page) if page is not None else []
            yield [r for r in records if isinstance(r, dict)]


def cursor_paginator() -> BasePaginator:
    """API v2 (and the v1 changelog): ``cursor`` in, ``additional_data.next_cursor`` out."""
    return JSONResponseCursorPaginator(cursor_path="additional_data.next_cursor", cursor_param="cursor")


def offset_paginator(limit: int) -> BasePaginator:
    """API v1: ``start``/``limit`` in, ``additional_data.pagination.more_items_in_collection`` out."""
    return OffsetPaginator(
        limit=limit,
        offset_param="start",
        limit_param="limit",
        total_path=None,
        has_more_path="additional_data.pagination.more_items_in_collection",
    )
