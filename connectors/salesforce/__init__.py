"""Salesforce connector: an incremental, read-only source over the REST API (``source``), and the
publisher's one write, a completed Task per approved coaching item (``notes``, imported explicitly)."""

from connectors.salesforce.client import SalesforceApiError, SalesforceAuthError, SalesforceLimitExceeded
from connectors.salesforce.config import SalesforceConfig
from connectors.salesforce.source import SalesforceSource

__all__ = ["SalesforceApiError", "SalesforceAuthError", "SalesforceConfig", "SalesforceLimitExceeded", "SalesforceSource"]
