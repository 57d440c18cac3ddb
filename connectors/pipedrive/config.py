"""How a Pipedrive company maps into the canonical shape: sensible defaults, all overridable.

The HTTP and extraction settings are the connector's; the mapping settings land as the
``map_*`` tables (connectors/pipedrive/tables.py) that dbt's ``stg_pipedrive__*`` models join.

Pipedrive has no "manager" or "segment" on users, no buying role on persons and no
won/lost stages (won and lost are deal statuses), so those come from this config.
Load it from YAML with :meth:`PipedriveConfig.load`, or build it in code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from connectors.mapping import MappingError, Plausibility, load_yaml_model


class StageOverride(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order: int | None = None
    closed: bool | None = None
    won: bool | None = None


class PipedriveConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plausibility: Plausibility = Field(
        default_factory=Plausibility,
        description="Dates outside min_date .. today + max_years_ahead and amounts above max_amount are "
        "quarantined, as in CSV exports; max_quarantine_share sets the quarantine check's limit.",
    )

    source_system: str = "pipedrive"
    company_domain: str | None = Field(
        None,
        description="<company> in https://<company>.pipedrive.com, for deep links. Default: taken from the base URL, "
        "else asked once from GET /v1/users/me.",
    )

    # -- HTTP
    token_in: Literal["header", "query"] = Field(
        "header", description="Send the API token as the x-api-token header (default) or the api_token query parameter."
    )
    page_size: int = Field(500, ge=1, le=500, description="Items per page (Pipedrive's maximum is 500).")
    timeout_s: float = 60.0
    max_attempts: int = Field(6, ge=1, description="Attempts per request on 429, 5xx and dropped connections.")
    backoff_factor: float = Field(1.0, ge=0, description="Exponential backoff multiplier (seconds) between retries.")
    max_retry_delay_s: float = Field(120.0, ge=0, description="Cap on one wait, Retry-After included.")

    # -- stages: Pipedrive stages are per pipeline; won/lost are deal statuses
    pipeline_ids: list[int] | None = Field(None, description="Only these pipelines (default: all).")
    stage_label: Literal["auto", "stage", "pipeline_stage"] = Field(
        "auto",
        description="Canonical stage name: the stage's name ('stage'), '<pipeline> / <stage>' ('pipeline_stage'), or "
        "'auto' (qualified with the pipeline only when two pipelines share a stage name).",
    )
    won_stage: str = "Won"
    lost_stage: str = "Lost"
    stage_overrides: dict[str, StageOverride] = Field(
        default_factory=dict,
        description="canonical stage name -> its order / closed / won, overriding Pipedrive's (pipeline order, "
        "open; the won and lost stages closed).",
    )

    # -- users
    manager_user_ids: list[int] | None = Field(
        None, description="Users who are managers. Default: admins (is_admin) are managers."
    )
    rep_manager: dict[int, int] = Field(default_factory=dict, description="rep user id -> manager user id.")
    default_manager_id: int | None = Field(None, description="Manager of reps not in rep_manager.")
    managers_are_reps: bool = Field(False, description="Also land managers as reps (they may own deals).")
    rep_segment: dict[int, str] = Field(default_factory=dict, description="rep user id -> segment.")
    slack_user_ids: dict[int, str] = Field(default_factory=dict, description="user id -> Slack user id.")

    # -- organizations
    account_segment_field: str | None = Field(None, description="Custom field key holding the segment as text.")
    account_employees_field: str | None = Field(None, description="Custom field key holding the employee count.")
    account_industry_field: str | None = Field(None, description="Custom field key holding the industry.")
    segment_thresholds: list[tuple[int, str]] = Field(
        default_factory=lambda: [(200, "SMB"), (1000, "Mid-Market")],
        description="(below this many employees/people, segment) in ascending order; at or above the last: "
        "segment_above.",
    )
    segment_above: str = "Enterprise"
    org_labels: dict[int, str] = Field(default_factory=dict, description="organization label id -> tag name.")

    # -- persons
    buying_role_field: str | None = Field(None, description="Custom field key of the person's buying role.")
    buying_role_options: dict[str, str] = Field(
        default_factory=dict, description="enum option id (as text) -> option label, for enum custom fields."
    )
    buying_roles: dict[str, str] = Field(
        default_factory=lambda: {
            "decision maker": "decision_maker", "decision_maker": "decision_maker", "economic buyer": "decision_maker",
            "champion": "champion", "influencer": "influencer", "technical buyer": "influencer",
            "evaluator": "influencer", "user": "user", "end user": "user", "blocker": "blocker",
        },
        description="label (lower case) -> canonical buying role; other labels land as given, lower case.",
    )
    buying_role_priority: list[str] = Field(
        default_factory=lambda: ["decision_maker", "champion", "influencer", "blocker", "user"],
        description="When a person holds several roles, the first of these wins; roles not listed come after, "
        "in the field's order.",
    )
    contact_title_field: str = "job_title"

    # -- deals
    deal_statuses: str = Field(
        "open,won,lost,deleted",
        description="status filter of GET /api/v2/deals; 'deleted' brings deleted deals back (kept 30 days by "
        "Pipedrive) so they land with _is_deleted.",
    )
    history_fields: dict[str, str] = Field(
        default_factory=lambda: {"value": "amount", "expected_close_date": "close_date"},
        description="changelog field_key -> canonical field_history.field_name.",
    )
    history_endpoint: Literal["changelog", "flow"] = Field(
        "changelog", description="GET /v1/deals/{id}/changelog (cursor paged) or /v1/deals/{id}/flow (start/limit)."
    )

    # -- activities
    activity_types: dict[str, str] = Field(
        default_factory=lambda: {
            "meeting": "meeting", "lunch": "meeting", "call": "call", "email": "email",
            "task": "task", "deadline": "task",
        },
        description="Pipedrive activity type key -> canonical type.",
    )
    activity_type_default: str | None = Field(
        "task", description="Canonical type of other (custom) activity types; None quarantines them instead."
    )

    @classmethod
    def load(cls, path: Path | str) -> PipedriveConfig:
        return load_yaml_model(path, cls, "Pipedrive config file")

    def segment_for(self, size: int | None) -> str | None:
        if size is None:
            return None
        for below, segment in self.segment_thresholds:
            if size < below:
                return segment
        return self.segment_above
