"""The canonical landed ("raw") shape every CRM source is mapped into.

Landing writes one table per object into the warehouse schema ``raw``
(``raw.opportunities``, ...), plus ``raw.rejected_rows`` for quarantined rows.
dbt staging (``stg_crm__<object>``) reads only these tables, so a new CRM only
needs a mapping into this shape, never a change downstream.

Field types drive validation at landing: a row whose required field is missing,
or whose value cannot be parsed as its type, is quarantined with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Field types understood by the landing validator.
ID = "id"  # non-empty string, kept exactly as the CRM spells it
STR = "str"
INT = "int"
AMOUNT = "amount"  # decimal number >= 0
BOOL = "bool"
DATE = "date"
TIMESTAMP = "timestamp"
STAGE = "stage"  # must be one of the mapping's declared stages

DUCKDB_TYPES = {
    ID: "VARCHAR",
    STR: "VARCHAR",
    INT: "BIGINT",
    AMOUNT: "DOUBLE",
    BOOL: "BOOLEAN",
    DATE: "DATE",
    TIMESTAMP: "TIMESTAMP",
    STAGE: "VARCHAR",
}


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    required: bool = False


@dataclass(frozen=True)
class RawObject:
    name: str
    primary_key: tuple[str, ...]
    fields: tuple[Field, ...]
    description: str = ""
    # For a CRM-native table (connectors/<crm>/tables.py): the canonical object it lands for
    # (its Dagster landing asset is raw/<feeds>), and whether each landing replaces it whole
    # (config-derived mapping tables, small lists re-read in full) instead of merging by key.
    feeds: str | None = None
    snapshot: bool = False
    # Lineage columns every landed row carries (added by landing, not by sources), plus, for API
    # sources, _is_deleted (deleted or archived in the CRM; merged, never dropped) and _extra
    # (the source's fields outside the canonical shape, as JSON: schema drift loses nothing).
    lineage: tuple[str, ...] = field(
        default=("_source_system", "_source_file", "_source_row", "_loaded_at", "_is_deleted", "_extra")
    )

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}")

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]


def _f(name: str, type_: str, required: bool = False) -> Field:
    return Field(name, type_, required)


RAW_OBJECTS: dict[str, RawObject] = {
    o.name: o
    for o in (
        RawObject(
            "stages",
            ("stage",),
            (
                _f("stage", STR, True),
                _f("stage_order", INT, True),
                _f("is_closed", BOOL, True),
                _f("is_won", BOOL, True),
            ),
            "The CRM's sales stages in pipeline order, with their closed/won meaning.",
        ),
        RawObject(
            "managers",
            ("manager_id",),
            (
                _f("manager_id", ID, True),
                _f("manager_name", STR, True),
                _f("email", STR),
                _f("slack_user_id", STR),
            ),
            "Sales managers (the approvers of coaching items).",
        ),
        RawObject(
            "reps",
            ("rep_id",),
            (
                _f("rep_id", ID, True),
                _f("rep_name", STR, True),
                _f("email", STR),
                _f("slack_user_id", STR),
                _f("manager_id", ID),
                _f("segment", STR),
                _f("hired_on", DATE),
                _f("is_active", BOOL),
            ),
            "Sales reps (CRM users who own opportunities).",
        ),
        RawObject(
            "quotas",
            ("rep_id", "quarter_start"),
            (
                _f("rep_id", ID, True),
                _f("quarter_start", DATE, True),
                _f("quota_amount", AMOUNT, True),
            ),
            "Quarterly quota per rep.",
        ),
        RawObject(
            "accounts",
            ("account_id",),
            (
                _f("account_id", ID, True),
                _f("account_name", STR, True),
                _f("segment", STR),
                _f("industry", STR),
                _f("employees", INT),
                _f("tags", STR),  # ';'-separated, e.g. "Strategic;Renewal"
            ),
            "Customer and prospect companies.",
        ),
        RawObject(
            "contacts",
            ("contact_id",),
            (
                _f("contact_id", ID, True),
                _f("account_id", ID),
                _f("contact_name", STR),
                _f("title", STR),
                _f("buying_role", STR),  # decision_maker, champion, influencer, user, ...
                _f("email", STR),
            ),
            "People at accounts, with their buying role.",
        ),
        RawObject(
            "opportunities",
            ("opportunity_id",),
            (
                _f("opportunity_id", ID, True),
                _f("account_id", ID),
                _f("owner_rep_id", ID),
                _f("opportunity_name", STR),
                _f("stage", STAGE, True),
                _f("amount", AMOUNT),
                _f("created_at", TIMESTAMP),  # some CRMs leave it empty on first-stage deals
                _f("close_date", DATE),
                _f("is_closed", BOOL),
                _f("is_won", BOOL),
                _f("closed_at", TIMESTAMP),
                _f("next_step", STR),  # untrusted free text
                _f("source_url", STR),
                _f("loss_reason", STR),  # why a lost deal was lost (HubSpot closed_lost_reason, Pipedrive lost_reason, ...)
            ),
            "Deals. is_closed/is_won default from the stage when the source leaves them empty.",
        ),
        RawObject(
            "stage_history",
            ("stage_history_id",),
            (
                _f("stage_history_id", ID, True),
                _f("opportunity_id", ID, True),
                _f("stage", STAGE, True),
                _f("entered_at", TIMESTAMP, True),
            ),
            "One row each time a deal entered a stage; exit times are derived downstream.",
        ),
        RawObject(
            "field_history",
            ("field_history_id",),
            (
                _f("field_history_id", ID, True),
                _f("opportunity_id", ID, True),
                _f("field_name", STR, True),  # close_date, amount, ...
                _f("old_value", STR),
                _f("new_value", STR),
                _f("changed_at", TIMESTAMP, True),
            ),
            "Changes to tracked deal fields (close date, amount, ...).",
        ),
        RawObject(
            "activities",
            ("activity_id",),
            (
                _f("activity_id", ID, True),
                _f("opportunity_id", ID),
                _f("account_id", ID),
                _f("rep_id", ID),
                _f("activity_type", STR, True),  # meeting, call, email, task
                _f("occurred_at", TIMESTAMP, True),
                _f("subject", STR),
            ),
            "Meetings, calls, emails and tasks.",
        ),
        RawObject(
            "activity_contacts",
            ("activity_id", "contact_id"),
            (
                _f("activity_id", ID, True),
                _f("contact_id", ID, True),
            ),
            "Which contacts took part in which activity.",
        ),
    )
}

REJECTED_ROWS_COLUMNS = {
    "object": "VARCHAR",
    "source_file": "VARCHAR",
    "row_number": "BIGINT",
    "field": "VARCHAR",
    "reason": "VARCHAR",
    "raw_record": "VARCHAR",  # the row as read, JSON, so nothing is lost
    "_source_system": "VARCHAR",
    "_loaded_at": "TIMESTAMP",
    "landing_id": "VARCHAR",  # the landing (Dagster run) that quarantined the row
}


def create_rejected_rows_sql(schema: str = "raw") -> str:
    cols = ", ".join(f"{k} {v}" for k, v in REJECTED_ROWS_COLUMNS.items())
    return f"create table if not exists {schema}.rejected_rows ({cols})"


# The DDL spelling valid on DuckDB and PostgreSQL alike (DuckDB reports DOUBLE PRECISION as DOUBLE).
DDL_TYPES = {**DUCKDB_TYPES, AMOUNT: "DOUBLE PRECISION"}


def create_table_sql(obj: RawObject, schema: str = "raw") -> str:
    cols = [f'"{f.name}" {DDL_TYPES[f.type]}' for f in obj.fields]  # quoted: a CRM may name a field "primary"
    cols += [
        "_source_system VARCHAR",
        "_source_file VARCHAR",
        "_source_row BIGINT",
        "_loaded_at TIMESTAMP",
        "_is_deleted BOOLEAN",
        "_extra VARCHAR",
    ]
    return f"create table if not exists {schema}.{obj.name} ({', '.join(cols)})"


def create_empty_raw_tables(con) -> None:
    """Create every empty landing table dbt reads, in raw and each native CRM's raw_<crm>
    (for dbt development and unit tests)."""
    from connectors.landing import ensure_landing_tables

    ensure_landing_tables(con)
