"""Great Expectations suites, as code, for the landed (``raw``) tables and the marts.

A suite here is a plain, importable description (:class:`SuiteSpec` holding
:class:`Check` values), not a GX object: importing this module does not import
Great Expectations (a multi-second import), so the Dagster code location can
list the suites and declare its asset checks cheaply. :meth:`SuiteSpec.build`
turns a spec into a ``gx.ExpectationSuite`` when a validation actually runs.

Raw suites are derived from ``connectors.schema.RAW_OBJECTS`` (primary key,
required fields, amount types) plus a few hand-written rules; marts suites
follow the canonical schema in DESIGN.md. All are registered in :data:`SUITES`,
keyed ``"<schema>.<table>"``.

Row count: a suite whose table must not be empty adds
``expect_table_row_count_to_be_between(min_value=1)``. Objects a source may
legitimately lack (an export with no activity log, no field history, ...)
default to ``require_rows=False`` so an empty table passes; every call to
``validate_table`` can override the default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from connectors.schema import AMOUNT, RAW_OBJECTS, RawObject

if TYPE_CHECKING:  # pragma: no cover
    import great_expectations as gx

# Canonical enums of the marts. Staging maps each CRM's values into these.
# Segments are the team's own (tiers, regions, ...): a deal's segment must be one its accounts or
# reps carry, never a hard-coded list. (The demo CRM uses smb, mid_market and enterprise.)
SEGMENTS_SQL = "select segment from marts.dim_accounts union select segment from marts.dim_reps"
ACTIVITY_TYPES: tuple[str, ...] = ("meeting", "call", "email", "task")
BUYING_ROLES: tuple[str, ...] = (
    "decision_maker",
    "economic_buyer",
    "champion",
    "influencer",
    "technical_evaluator",
    "user",
    "blocker",
    "other",
    "unknown",
)
OUTCOMES: tuple[str, ...] = ("won", "lost", "open")

# Landed objects a source may lack entirely (the dependent rules then report
# "not applicable"), so their tables may be empty; the rest must have rows.
# An export without a users file has no reps or managers: the run summary names the missing file
# and what it disables (flags reach no manager), and a check on the digests warns. A deals-only export
# has no accounts: deals land without an account name, their segment comes from the rep, and the summary
# says so.
OPTIONAL_RAW_OBJECTS: frozenset[str] = frozenset(
    {"activities", "activity_contacts", "field_history", "stage_history", "quotas", "contacts", "reps", "managers",
     "accounts"}
)
OPTIONAL_MARTS: frozenset[str] = frozenset(
    {"fct_activities", "bridge_activity_contacts", "fct_field_history", "fct_stage_history", "dim_contacts",
     "dim_reps", "dim_managers", "dim_accounts"}
)

ROW_COUNT_EXPECTATION = "expect_table_row_count_to_be_between"


@dataclass(frozen=True)
class Check:
    """One expectation, by its GX type name (``expect_...``) and keyword arguments.

    ``value_set_sql`` makes the value set of an ``expect_column_values_to_be_in_set``
    come from the warehouse at validation time (e.g. the CRM's own stages in
    ``raw.stages``), so a CRM with custom stage names needs no code change.
    """

    expectation_type: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    value_set_sql: str | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        """Columns this check reads, in the order GX names them."""
        k = self.kwargs
        if "column" in k:
            return (k["column"],)
        if "column_list" in k:
            return tuple(k["column_list"])
        if "column_A" in k:
            return (k["column_A"], k["column_B"])
        return ()

    @property
    def column_label(self) -> str | None:
        cols = self.columns
        return ",".join(cols) if cols else None

    def to_gx(self, value_sets: Mapping[str, Sequence[Any]] | None = None) -> "gx.expectations.Expectation":
        import great_expectations as gx

        kwargs = dict(self.kwargs)
        if self.value_set_sql is not None:
            if value_sets is None or self.value_set_sql not in value_sets:
                raise ValueError(f"{self.expectation_type} on {self.column_label}: value set query not resolved")
            kwargs["value_set"] = list(value_sets[self.value_set_sql])
        try:
            cls = getattr(gx.expectations, _camel(self.expectation_type))
        except AttributeError:
            raise ValueError(f"unknown Great Expectations expectation {self.expectation_type!r}") from None
        return cls(**kwargs)


def _camel(snake: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in snake.split("_"))


# -- small constructors, so the suites below read like a contract ---------------------------


def not_null(*columns: str) -> list[Check]:
    return [Check("expect_column_values_to_not_be_null", {"column": c}) for c in columns]


def primary_key(*columns: str) -> list[Check]:
    """Not null and unique; a compound key is unique as a combination."""
    checks = not_null(*columns)
    if len(columns) == 1:
        checks.append(Check("expect_column_values_to_be_unique", {"column": columns[0]}))
    else:
        checks.append(Check("expect_compound_columns_to_be_unique", {"column_list": list(columns)}))
    return checks


def in_set(column: str, values: Iterable[Any]) -> Check:
    """Values in ``values``; nulls are not checked here (pair with :func:`not_null` when required)."""
    return Check("expect_column_values_to_be_in_set", {"column": column, "value_set": list(values)})


def in_query(column: str, sql: str) -> Check:
    """Values among the first column returned by ``sql`` (run read-only at validation time)."""
    return Check("expect_column_values_to_be_in_set", {"column": column}, value_set_sql=sql)


def at_least(column: str, minimum: float = 0) -> Check:
    return Check("expect_column_values_to_be_between", {"column": column, "min_value": minimum})


def not_before(later: str, earlier: str) -> Check:
    """``later >= earlier`` on every row where both are present (e.g. closed_at vs created_at)."""
    return Check(
        "expect_column_pair_values_a_to_be_greater_than_b",
        {"column_A": later, "column_B": earlier, "or_equal": True, "ignore_row_if": "either_value_is_missing"},
    )


@dataclass(frozen=True)
class SuiteSpec:
    """The expectations for one warehouse table."""

    table: str  # "<schema>.<name>", e.g. "raw.opportunities"
    checks: tuple[Check, ...]
    require_rows: bool = True
    description: str = ""

    @property
    def schema(self) -> str:
        return self.table.split(".", 1)[0]

    @property
    def name(self) -> str:
        return self.table.split(".", 1)[1]

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column the suite reads, first-seen order."""
        seen: dict[str, None] = {}
        for check in self.checks:
            for c in check.columns:
                seen.setdefault(c, None)
        return tuple(seen)

    @property
    def value_set_queries(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.value_set_sql for c in self.checks if c.value_set_sql))

    def row_count_check(self, require_rows: bool | None = None) -> Check | None:
        required = self.require_rows if require_rows is None else require_rows
        return Check(ROW_COUNT_EXPECTATION, {"min_value": 1}) if required else None

    def all_checks(self, require_rows: bool | None = None) -> list[Check]:
        row_count = self.row_count_check(require_rows)
        return ([row_count] if row_count else []) + list(self.checks)

    def build(
        self,
        *,
        require_rows: bool | None = None,
        value_sets: Mapping[str, Sequence[Any]] | None = None,
        checks: Sequence[Check] | None = None,
    ) -> "gx.ExpectationSuite":
        """The GX suite. Checks whose value set comes from the warehouse are left out
        unless ``value_sets`` (query -> values) resolves them; ``validate_table`` does."""
        import great_expectations as gx

        chosen = self.all_checks(require_rows) if checks is None else list(checks)
        expectations = [
            c.to_gx(value_sets)
            for c in chosen
            if c.value_set_sql is None or (value_sets is not None and c.value_set_sql in value_sets)
        ]
        return gx.ExpectationSuite(name=f"{self.table}.suite", expectations=expectations)


# -- raw (landed) tables ------------------------------------------------------------------------

_STAGES_SQL = "select stage from raw.stages"

# Rules beyond what the field types in connectors.schema imply.
_RAW_EXTRA: dict[str, list[Check]] = {
    "accounts": [at_least("employees", 0)],
    "opportunities": [in_query("stage", _STAGES_SQL)],
    "stage_history": [in_query("stage", _STAGES_SQL)],
    "activities": [in_set("activity_type", ACTIVITY_TYPES)],
}


def raw_suite(obj: RawObject) -> SuiteSpec:
    """Suite for ``raw.<obj>``: key, required fields, amounts >= 0, lineage, extras."""
    checks: list[Check] = primary_key(*obj.primary_key)
    checks += not_null(*(f.name for f in obj.fields if f.required and f.name not in obj.primary_key))
    checks += [at_least(f.name, 0) for f in obj.fields if f.type == AMOUNT]
    checks += _RAW_EXTRA.get(obj.name, [])
    # Every landed row must say where it came from (lineage back to the CRM extract).
    checks += not_null("_source_system", "_loaded_at")
    return SuiteSpec(
        table=f"raw.{obj.name}",
        checks=tuple(checks),
        require_rows=obj.name not in OPTIONAL_RAW_OBJECTS,
        description=obj.description,
    )


# -- marts (the canonical schema) -----------------------------------------------------------------

_MARTS: dict[str, tuple[str, list[Check]]] = {
    "dim_managers": (
        "Sales managers, the approvers.",
        [*primary_key("manager_id"), *not_null("manager_name")],
    ),
    "dim_reps": (
        "Sales reps with their manager, segment and quota.",
        [
            *primary_key("rep_id"),
            *not_null("rep_name"),
            at_least("quarterly_quota", 0),
        ],
    ),
    "dim_accounts": (
        "Accounts with segment and strategic flag.",
        [
            *primary_key("account_id"),
            *not_null("account_name"),
            at_least("employees", 0),
            in_set("is_strategic", (True, False)),
        ],
    ),
    "dim_contacts": (
        "Contacts with their buying role.",
        [
            *primary_key("contact_id"),
            in_set("buying_role", BUYING_ROLES),
            in_set("is_decision_maker", (True, False)),
        ],
    ),
    "fct_opportunities": (
        "One row per deal, current state.",
        [
            *primary_key("opportunity_id"),
            # created_at may be empty (first-stage deals in some CRMs): such deals land, not applicable to cycle rules
            *not_null("stage", "stage_order", "is_closed", "is_won", "outcome", "source_system"),
            at_least("amount", 0),
            in_query("segment", SEGMENTS_SQL),
            in_set("outcome", OUTCOMES),
            at_least("cycle_days", 0),
            not_before("closed_at", "created_at"),
        ],
    ),
    "fct_stage_history": (
        "One row per deal per stage entered, with exit and duration.",
        [
            *primary_key("stage_history_id"),
            *not_null("opportunity_id", "stage", "entered_at", "is_current"),
            not_before("exited_at", "entered_at"),
            at_least("duration_days", 0),
            in_query("segment", SEGMENTS_SQL),
            in_set("deal_outcome", OUTCOMES),
            at_least("meetings_count", 0),
            at_least("activities_count", 0),
        ],
    ),
    "fct_field_history": (
        "Changes to tracked deal fields.",
        [*primary_key("field_history_id"), *not_null("opportunity_id", "field_name", "changed_at")],
    ),
    "fct_activities": (
        "Meetings, calls, emails and tasks.",
        [
            *primary_key("activity_id"),
            *not_null("activity_type", "occurred_at"),
            in_set("activity_type", ACTIVITY_TYPES),
        ],
    ),
    "bridge_activity_contacts": (
        "Which contacts took part in which activity, with their buying role.",
        [*primary_key("activity_id", "contact_id"), in_set("buying_role", BUYING_ROLES)],
    ),
}


def mart_suite(name: str) -> SuiteSpec:
    description, checks = _MARTS[name]
    return SuiteSpec(
        table=f"marts.{name}",
        checks=tuple(checks),
        require_rows=name not in OPTIONAL_MARTS,
        description=description,
    )


SUITES: dict[str, SuiteSpec] = {
    **{f"raw.{name}": raw_suite(obj) for name, obj in RAW_OBJECTS.items()},
    **{f"marts.{name}": mart_suite(name) for name in _MARTS},
}
