"""Pipedrive connector: an incremental, read-only CRM source (``PipedriveSource``).

The one write, a note on a deal for an approved coaching item, is
``connectors.pipedrive.notes.PipedriveNoteWriter``; it is deliberately not
imported here, so extract code never loads a write path.
"""

from connectors.pipedrive.client import PipedriveError
from connectors.pipedrive.config import PipedriveConfig
from connectors.pipedrive.source import PipedriveSource

__all__ = ["PipedriveConfig", "PipedriveError", "PipedriveSource"]
