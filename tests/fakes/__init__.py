"""Local fakes of external services (no network, no keys)."""
