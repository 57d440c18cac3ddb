"""Dagster code location: thin wiring over the plain code in connectors/, agents/ and expectations/."""
