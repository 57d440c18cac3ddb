"""How a Salesforce org is read and mapped into the canonical shape (defaults fit a standard Sales Cloud org).

Every mapping an org tends to customise (segments, buying roles, activity types, which
users count as reps, extra fields to pull) lives here, so a new org needs a config,
not a code change. ``SalesforceConfig.model_validate(yaml.safe_load(...))`` reads one
from YAML; errors name the field.

The source applies the extraction settings (HTTP, incremental, which fields and records to read);
the mappings land as the ``map_*`` tables of ``raw_salesforce`` (connectors/salesforce/tables.py)
and are applied by the dbt models ``stg_salesforce__*``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from connectors.mapping import Plausibility


class SegmentBand(BaseModel):
    model_config = ConfigDict(extra="forbid")
    segment: str
    max_employees: int | None = Field(None, description="Upper bound (exclusive); None = no bound (the last band).")


class SalesforceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plausibility: Plausibility = Field(
        default_factory=Plausibility,
        description="Dates outside min_date .. today + max_years_ahead and amounts above max_amount are "
        "quarantined, as in CSV exports; max_quarantine_share sets the quarantine check's limit.",
    )

    source_system: str = "salesforce"

    # -- HTTP ------------------------------------------------------------------------------
    timeout_seconds: float = 60.0
    max_attempts: int = Field(6, description="Attempts per request on 429, 5xx and connection errors.")
    backoff_factor: float = Field(1.0, description="Exponential backoff multiplier (seconds) when no Retry-After.")
    max_retry_delay: float = Field(120.0, description="Cap on one wait, Retry-After included.")
    query_batch_size: int | None = Field(
        None, description="Sforce-Query-Options batchSize (200..2000); None = Salesforce's default (2000)."
    )

    # -- incremental ------------------------------------------------------------------------
    lookback_seconds: int = Field(
        0,
        description="Re-read this many seconds before the stored cursor (merge makes re-reads harmless); "
        "raise it if long transactions commit records with a SystemModstamp older than the cursor.",
    )
    select_all_fields: bool = Field(
        True,
        description="Describe each sObject and select every field, so fields added to the org land in _extra "
        "(schema drift loses nothing). False selects only the mapped fields plus extra_fields.",
    )
    extra_fields: dict[str, list[str]] = Field(
        default_factory=dict, description="sObject -> extra fields to select (kept in _extra), e.g. {Opportunity: [Priority__c]}."
    )

    # -- users: reps and managers -------------------------------------------------------------
    rep_filter: str | None = Field(
        "UserType = 'Standard'", description="SOQL condition on User for the users landed as reps (None = all)."
    )
    rep_segment_field: str | None = Field(None, description="User field holding the rep's segment (e.g. Department, Segment__c).")
    rep_segment_map: dict[str, str] = Field(default_factory=dict, description="Raw value of rep_segment_field -> segment.")
    slack_user_id_field: str | None = Field(None, description="User field holding the Slack member id, if the org keeps one.")

    # -- accounts -------------------------------------------------------------------------------
    account_segment_field: str | None = Field(
        None, description="Account field holding the segment; None derives it from NumberOfEmployees (account_segment_bands)."
    )
    account_segment_map: dict[str, str] = Field(default_factory=dict, description="Raw value of account_segment_field -> segment.")
    account_segment_bands: list[SegmentBand] = Field(
        default_factory=lambda: [
            SegmentBand(segment="smb", max_employees=200),
            SegmentBand(segment="mid_market", max_employees=1000),
            SegmentBand(segment="enterprise", max_employees=None),
        ]
    )
    account_tags_field: str | None = Field(None, description="Account field with ';'-separated tags (e.g. a multi-select picklist).")

    # -- contacts: OpportunityContactRole.Role -> buying_role -------------------------------------
    buying_roles: dict[str, str] = Field(
        default_factory=lambda: {
            "Decision Maker": "decision_maker",
            "Economic Buyer": "decision_maker",
            "Economic Decision Maker": "decision_maker",
            "Executive Sponsor": "champion",
            "Champion": "champion",
            "Influencer": "influencer",
            "Technical Buyer": "technical_evaluator",
            "Evaluator": "technical_evaluator",
            "Technical Evaluator": "technical_evaluator",
        }
    )
    default_buying_role: str = Field("user", description="buying_role for a role not in buying_roles (and for no role).")
    buying_role_priority: list[str] = Field(
        default_factory=lambda: ["decision_maker", "champion", "technical_evaluator", "influencer", "user"],
        description="A contact with several roles (one per opportunity) gets the first of these it holds.",
    )

    # -- opportunities and history -----------------------------------------------------------------
    field_history_fields: dict[str, str] = Field(
        default_factory=lambda: {"CloseDate": "close_date", "Amount": "amount"},
        description="OpportunityFieldHistory.Field -> canonical field_name; only these are landed.",
    )

    # -- activities -----------------------------------------------------------------------------
    activity_what_types: list[str] = Field(
        default_factory=lambda: ["Opportunity"],
        description="Land Tasks/Events whose WhatId is one of these sObjects (What.Type); empty = every activity.",
    )
    task_subtypes: dict[str, str] = Field(
        default_factory=lambda: {"Call": "call", "Email": "email", "ListEmail": "email", "LinkedIn": "email", "Task": "task"},
        description="Task.TaskSubtype -> activity_type (checked before Task.Type).",
    )
    task_types: dict[str, str] = Field(
        default_factory=lambda: {"Call": "call", "Email": "email", "Meeting": "meeting", "Demo": "meeting"},
        description="Task.Type -> activity_type; unmatched tasks are 'task'.",
    )
    event_types: dict[str, str] = Field(
        default_factory=lambda: {"Call": "call", "Email": "email"},
        description="Event.Type -> activity_type; unmatched events are 'meeting'.",
    )

    # -- quotas (ForecastingQuota) ---------------------------------------------------------------------
    quota_forecasting_type: str | None = Field(
        None,
        description="The forecast type whose quotas count (its DeveloperName, e.g. OpportunityRevenue, or its Id); "
        "None = the type with the most amount quotas (an org forecasting several types double-counts otherwise).",
    )
    fiscal_year_start_month: int = Field(
        1, ge=1, le=12, description="First month of the fiscal year: monthly quotas are summed into its quarters."
    )

    # -- id prefixes (the first 3 characters of a Salesforce id name its sObject) ---------------------
    key_prefixes: dict[str, str] = Field(
        default_factory=lambda: {"Account": "001", "Contact": "003", "Opportunity": "006", "Lead": "00Q", "User": "005"}
    )
