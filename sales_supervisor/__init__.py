"""sales-supervisor: a governed sales supervisor agent on Dagster and a dbt semantic layer."""

__version__ = "0.1.0"
