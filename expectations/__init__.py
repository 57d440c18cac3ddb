"""Great Expectations (1.x) suites as code for the landed and marts tables, and a validation function.

    from expectations import SUITES, validate_table
    result = validate_table("var/warehouse.duckdb", "raw.opportunities")
    result.success, result.describe()

Importing this package does not import Great Expectations; validation does.
"""

from expectations.suites import SUITES, Check, SuiteSpec
from expectations.validation import (
    ExpectationFailure,
    TableNotFoundError,
    TableValidation,
    WarehouseLockedError,
    validate_all,
    validate_table,
)

__all__ = [
    "SUITES",
    "Check",
    "ExpectationFailure",
    "SuiteSpec",
    "TableNotFoundError",
    "TableValidation",
    "WarehouseLockedError",
    "validate_all",
    "validate_table",
]
