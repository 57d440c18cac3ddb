"""HubSpot CRM connector: a read-only incremental source (``source``) and, separately, the note
writer used only by the publisher for approved items (``notes``; not imported here, so extract
code has no write path)."""

from connectors.hubspot.client import HubSpotError
from connectors.hubspot.config import HubSpotConfig
from connectors.hubspot.source import HubSpotSource

__all__ = ["HubSpotConfig", "HubSpotError", "HubSpotSource"]
