"""A small Salesforce REST client over dlt's REST client: SOQL with queryMore, describe, one create.

* Auth: an OAuth bearer token (``Authorization: Bearer <access_token>``) applied by a requests
  auth object, so the token is never in a logged header dict, a repr or an exception message.
* Pagination: ``nextRecordsUrl`` (queryMore) through dlt's ``JSONLinkPaginator``.
* Retries: dlt's requests helper (tenacity underneath) on 429, 5xx and connection errors,
  honouring ``Retry-After``; a ``REQUEST_LIMIT_EXCEEDED`` for concurrent long requests is retried,
  the org's 24-hour API allocation being spent is not (it would not come back for hours).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import requests
from requests.auth import AuthBase

from dlt.sources.helpers.requests import Client as RetryingClient
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.paginators import JSONLinkPaginator

from connectors.salesforce.config import SalesforceConfig


DEFAULT_API_VERSION = "v61.0"
RETRY_STATUS = (429, 500, 502, 503, 504)


class SalesforceApiError(requests.HTTPError):
    """An error answer from Salesforce: status, errorCode and message (never the token).

    A subclass of ``requests.HTTPError`` carrying the response, so dlt's retry policy
    still sees the status code when this is raised from a response hook.
    """

    def __init__(self, status: int, error_code: str, message: str, *, url: str = "", response: requests.Response | None = None):
        self.status = status
        self.error_code = error_code
        self.sf_message = message
        super().__init__(f"Salesforce API {status} {error_code}: {message}" + (f" ({url})" if url else ""), response=response)

    @classmethod
    def from_response(cls, response: requests.Response, redact: str | None = None) -> SalesforceApiError:
        code, message = "UNKNOWN_ERROR", (response.text or response.reason or "")[:500]
        try:
            body = response.json()
        except ValueError:
            body = None
        # Salesforce answers errors as [{"message": ..., "errorCode": ...}]; OAuth as {"error", "error_description"}
        if isinstance(body, list) and body and isinstance(body[0], dict):
            code, message = str(body[0].get("errorCode") or code), str(body[0].get("message") or "")
        elif isinstance(body, dict) and ("error" in body or "errorCode" in body):
            code = str(body.get("errorCode") or body.get("error"))
            message = str(body.get("message") or body.get("error_description") or "")
        if redact:
            message = message.replace(redact, "***")
        url = _path_only(response.request.url if response.request is not None else response.url)
        kind = cls
        if response.status_code == 401:
            kind = SalesforceAuthError
        elif code == "REQUEST_LIMIT_EXCEEDED":
            kind = SalesforceLimitExceeded
        return kind(response.status_code, code, message, url=url, response=response)


class SalesforceAuthError(SalesforceApiError):
    """401 (INVALID_SESSION_ID and the like): the access token is missing, expired or revoked."""


class SalesforceLimitExceeded(SalesforceApiError):
    """REQUEST_LIMIT_EXCEEDED: the org's API allocation (or its concurrent-request limit) is spent."""


def _path_only(url: str | None) -> str:
    """The URL without its query string: SOQL can be long, and error text should stay readable."""
    return (url or "").split("?", 1)[0]


class BearerAuth(AuthBase):
    """Adds the bearer token at send time; its repr never shows it."""

    def __init__(self, token: str):
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "BearerAuth(***)"


def _retry_concurrent_limit(response: requests.Response | None, exc: BaseException | None) -> bool:
    """Retry 403 REQUEST_LIMIT_EXCEEDED only for the concurrent-request limit (it clears in seconds)."""
    if response is None and isinstance(exc, requests.HTTPError):
        response = exc.response
    if response is None or response.status_code != 403:
        return False
    text = response.text or ""
    return "REQUEST_LIMIT_EXCEEDED" in text and "oncurrent" in text


def retrying_session(config: SalesforceConfig, *, status_codes=RETRY_STATUS, exceptions=None) -> requests.Session:
    kwargs: dict[str, Any] = {}
    if exceptions is not None:
        kwargs["exceptions"] = exceptions
    return RetryingClient(
        request_timeout=config.timeout_seconds,
        raise_for_status=False,
        status_codes=status_codes,
        request_max_attempts=config.max_attempts,
        request_backoff_factor=config.backoff_factor,
        request_max_retry_delay=config.max_retry_delay,
        respect_retry_after_header=True,
        retry_condition=_retry_concurrent_limit,
        **kwargs,
    ).session


class SalesforceClient:
    """Read (SOQL, describe) and, for the note writer only, create records in one org."""

    def __init__(
        self,
        instance_url: str,
        access_token: str,
        api_version: str = DEFAULT_API_VERSION,
        config: SalesforceConfig | None = None,
    ):
        if not instance_url or not access_token:
            raise ValueError("Salesforce needs an instance URL and an access token")
        self.config = config or SalesforceConfig()
        self.instance_url = instance_url.rstrip("/")
        self.api_version = api_version if api_version.startswith("v") else f"v{api_version}"
        self.base_url = f"{self.instance_url}/services/data/{self.api_version}"
        self._token = access_token
        self._auth = BearerAuth(access_token)
        headers = {"Accept": "application/json"}
        if self.config.query_batch_size:
            headers["Sforce-Query-Options"] = f"batchSize={self.config.query_batch_size}"
        self._rest = RESTClient(
            base_url=self.base_url,
            headers=headers,
            auth=self._auth,
            session=retrying_session(self.config),
            data_selector="records",
        )
        self.requests_sent = 0

    def __repr__(self) -> str:
        return f"SalesforceClient({self.instance_url!r}, {self.api_version!r}, token=***)"

    # -- errors ------------------------------------------------------------------------------
    def _check(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.requests_sent += 1
        if response.status_code >= 400:
            raise SalesforceApiError.from_response(response, redact=self._token)

    # -- reading -----------------------------------------------------------------------------
    def query(self, soql: str, *, include_deleted: bool = False) -> Iterator[list[dict[str, Any]]]:
        """Pages of records for ``soql``, following nextRecordsUrl; ``include_deleted`` uses queryAll."""
        resource = "/queryAll" if include_deleted else "/query"
        for page in self._rest.paginate(
            resource,
            params={"q": soql},
            paginator=JSONLinkPaginator(next_url_path="nextRecordsUrl"),
            data_selector="records",
            hooks={"response": [self._check]},
        ):
            yield list(page)

    def describe_fields(self, sobject: str) -> list[str]:
        """The names of the sObject's fields the integration user can read."""
        response = self._rest.get(f"/sobjects/{sobject}/describe", hooks={"response": [self._check]})
        return [f["name"] for f in response.json().get("fields", [])]

    # -- the one write (used only by connectors.salesforce.notes) ------------------------------
    def create(self, sobject: str, fields: dict[str, Any], session: requests.Session) -> str:
        """POST /sobjects/<sobject>; returns the new record id."""
        response = session.post(
            f"{self.base_url}/sobjects/{sobject}",
            json=fields,
            auth=self._auth,
            hooks={"response": [self._check]},
        )
        body = response.json()
        if not body.get("success", True) or not body.get("id"):
            raise SalesforceApiError(response.status_code, "CREATE_FAILED", str(body.get("errors"))[:300], response=response)
        return str(body["id"])


def client_credentials_token(
    instance_url: str, client_id: str, client_secret: str, config: SalesforceConfig | None = None
) -> tuple[str, str]:
    """OAuth 2.0 client-credentials flow against ``<instance>/services/oauth2/token``: (instance_url, access_token).

    Needs a connected app (or External Client App) with the client-credentials flow enabled and
    a "Run As" integration user; the token carries that user's (read-only) permissions.
    """
    config = config or SalesforceConfig()
    session = retrying_session(config)
    response = session.post(
        f"{instance_url.rstrip('/')}/services/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret},
        headers={"Accept": "application/json"},
    )
    if response.status_code >= 400:
        err = SalesforceApiError.from_response(response, redact=client_secret)
        raise SalesforceAuthError(err.status, err.error_code, err.sf_message, url=_path_only(response.url)) from None
    body = response.json()
    return str(body.get("instance_url") or instance_url).rstrip("/"), str(body["access_token"])
