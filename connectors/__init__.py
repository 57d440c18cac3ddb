"""CRM sources: read-only extractors that yield rows in the canonical landed shape."""
