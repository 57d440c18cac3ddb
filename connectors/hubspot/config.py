"""What a HubSpot portal means in the canonical shape: stages, managers, segments, buying roles.

Every field has a HubSpot default, so ``HubSpotConfig()`` works on a standard portal; a
team overrides what differs in a YAML file (``HUBSPOT_CONFIG`` or ``HubSpotConfig.load``).

The mapping settings are not applied in Python: the source lands them as ``map_*`` tables
(connectors/hubspot/tables.py) and the dbt models ``stg_hubspot__<object>`` join them. The
reading settings (what to fetch, paging, retries, lookback) shape the extraction only.
"""

from __future__ import annotations

from pathlib import Path


from pydantic import BaseModel, ConfigDict, Field

from connectors.mapping import MappingError, Plausibility, StageSpec, load_yaml_model

# HubSpot objects read for the canonical ``activities`` (the engagement object -> activity_type).
DEFAULT_ACTIVITY_OBJECTS = {"meetings": "meeting", "calls": "call", "emails": "email", "tasks": "task"}

# The subject-like property of each engagement object.
ACTIVITY_SUBJECT_PROPERTY = {
    "meetings": "hs_meeting_title",
    "calls": "hs_call_title",
    "emails": "hs_email_subject",
    "tasks": "hs_task_subject",
}

# HubSpot's ``hs_buying_role`` options (internal values) -> canonical buying roles.
DEFAULT_BUYING_ROLES = {
    "DECISION_MAKER": "decision_maker",
    "BUDGET_HOLDER": "decision_maker",
    "EXECUTIVE_SPONSOR": "decision_maker",
    "CHAMPION": "champion",
    "INFLUENCER": "influencer",
    "END_USER": "user",
    "BLOCKER": "blocker",
    "LEGAL_AND_COMPLIANCE": "other",
    "OTHER": "other",
}

# Deal properties whose changes become the canonical field history -> their canonical field_name.
DEFAULT_FIELD_HISTORY = {"closedate": "close_date", "amount": "amount"}

# A contact can hold several roles (``hs_buying_role`` is multi-select, ';'-separated): the first of these wins.
DEFAULT_ROLE_PRIORITY = ["decision_maker", "champion", "influencer", "technical_evaluator", "user", "blocker", "other"]


class TeamSpec(BaseModel):
    """A HubSpot team (by id or name): who manages its members, and their segment."""

    model_config = ConfigDict(extra="forbid")
    manager: str | None = Field(default=None, description="Owner id or email of the team's manager.")
    segment: str | None = None


class OwnerSpec(BaseModel):
    """Per-owner overrides (by owner id or email); win over the team's."""

    model_config = ConfigDict(extra="forbid")
    manager: str | None = Field(default=None, description="Owner id or email of this rep's manager.")
    segment: str | None = None
    slack_user_id: str | None = None
    hired_on: str | None = Field(default=None, description="YYYY-MM-DD")


class EmployeeBand(BaseModel):
    model_config = ConfigDict(extra="forbid")
    below: int | None = Field(description="Upper bound (exclusive); null for the last band.")
    segment: str


class RetrySettings(BaseModel):
    """Passed to dlt's requests client: 429 (honouring Retry-After) and 5xx are retried with backoff."""

    model_config = ConfigDict(extra="forbid")
    max_attempts: int = 6
    backoff_factor: float = 1.0
    max_delay_s: float = 120.0
    timeout_s: float = 60.0


class HubSpotConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plausibility: Plausibility = Field(
        default_factory=Plausibility,
        description="Dates outside min_date .. today + max_years_ahead and amounts above max_amount are "
        "quarantined, as in CSV exports; max_quarantine_share sets the quarantine check's limit.",
    )

    source_system: str = "hubspot"
    portal_id: str | None = Field(default=None, description="Hub id; enables deep links (source_url).")
    deal_url_template: str = "https://app.hubspot.com/contacts/{portal_id}/deal/{id}"

    # -- stages
    pipelines: list[str] | None = Field(
        default=None, description="Deal pipeline ids or labels to land (null: all). Deals in others are skipped."
    )
    stages: list[StageSpec] | None = Field(
        default=None,
        description="Override the stage list (names are HubSpot stage labels). Default: from the pipelines, "
        "in display order; closed from metadata.isClosed, won when probability is 1.0.",
    )

    # -- owners -> managers and reps
    managers: list[str] = Field(default_factory=list, description="Owner ids or emails who are managers.")
    teams: dict[str, TeamSpec] = Field(default_factory=dict, description="Team id or name -> manager and segment.")
    owners: dict[str, OwnerSpec] = Field(default_factory=dict, description="Owner id or email -> overrides.")
    default_rep_segment: str | None = None

    # -- accounts
    account_segment_property: str | None = Field(
        default=None, description="A company property holding the segment (wins over employee bands when set)."
    )
    account_segment_values: dict[str, str] = Field(default_factory=dict, description="Its values -> segment.")
    employee_bands: list[EmployeeBand] = Field(
        default_factory=lambda: [
            EmployeeBand(below=200, segment="smb"),
            EmployeeBand(below=1000, segment="mid_market"),
            EmployeeBand(below=None, segment="enterprise"),
        ]
    )
    account_tags_property: str | None = Field(default=None, description="A (multi-select) company property -> tags.")

    # -- contacts
    buying_role_property: str = "hs_buying_role"
    buying_roles: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_BUYING_ROLES))
    buying_role_priority: list[str] = Field(default_factory=lambda: list(DEFAULT_ROLE_PRIORITY))

    # -- activities
    activity_objects: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_ACTIVITY_OBJECTS),
        description="HubSpot engagement object to read -> canonical activity_type.",
    )

    # -- field history
    field_history: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_FIELD_HISTORY),
        description="Deal property (read with its history) -> canonical field_name of field_history. "
        "A field_name close_date compares values as dates.",
    )

    # -- quotas: goal targets
    quota_goal_names: list[str] = Field(
        default_factory=lambda: ["revenue", "quota"],
        description="Goals whose name (hs_goal_name) contains one of these (case-insensitive) are revenue quotas "
        "and land; other goals (calls made, meetings booked, ...) are skipped. Empty: no goals are read.",
    )
    fiscal_year_start_month: int = Field(
        default=1, ge=1, le=12, description="First month of the fiscal year: monthly and yearly targets are "
        "summed (spread) into its quarters.",
    )

    # -- reading
    extra_properties: dict[str, list[str]] = Field(
        default_factory=dict,
        description="HubSpot object (deals, companies, contacts, meetings, ...) -> more properties to read; "
        "they land in _extra.",
    )
    page_size: int = Field(default=100, ge=1, le=100)
    lookback_s: int = Field(
        default=300, ge=0,
        description="Each incremental run asks for records modified since cursor - lookback (the search index "
        "lags writes by a few seconds); re-read records merge idempotently.",
    )
    per_record_limit: int = Field(
        default=500, ge=0,
        description="Above this many changed deals/activities, re-list the object (100 a page) instead of one "
        "GET per changed record (needed for history and associations, which search does not return).",
    )
    retry: RetrySettings = Field(default_factory=RetrySettings)

    @classmethod
    def load(cls, path: Path | str) -> HubSpotConfig:
        return load_yaml_model(path, cls, "HubSpot config file")
