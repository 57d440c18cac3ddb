"""The HubSpot-native tables the HubSpot source lands into ``raw_hubspot``.

Names follow HubSpot's own (snake_case, as dlt normalises them): record ids, the CRM v3
properties read (``dealname``, ``dealstage``, ``hubspot_owner_id``, ...), the record-level
``createdAt``/``updatedAt``/``archivedAt`` as ``created_at``/``updated_at``/``archived_at``.
Every other property a record carries lands in ``_extra`` (JSON). ``map_*`` tables are the
mapping configuration (connectors/hubspot/config.py), re-landed whole on every run so dbt
(models/staging/hubspot) joins them; the Python source only extracts.

Imports nothing but connectors.schema: landing creates these tables empty for every CRM.
"""

from __future__ import annotations

from connectors.schema import AMOUNT, BOOL, DATE, ID, INT, STAGE, STR, TIMESTAMP, Field, RawObject

DATASET = "raw_hubspot"


def _f(name: str, type_: str, required: bool = False) -> Field:
    return Field(name, type_, required)


def _record_times() -> tuple[Field, ...]:
    return (_f("created_at", TIMESTAMP), _f("updated_at", TIMESTAMP), _f("archived_at", TIMESTAMP))


TABLES: dict[str, RawObject] = {
    t.name: t
    for t in (
        # ------------------------------------------------------------------ HubSpot objects
        RawObject(
            "pipeline_stages",
            ("pipeline_id", "stage_id"),
            (
                _f("pipeline_id", ID, True),
                _f("pipeline_label", STR),
                _f("pipeline_display_order", INT),
                _f("pipeline_archived", BOOL),
                _f("stage_id", ID, True),
                _f("label", STR),
                _f("display_order", INT),
                _f("archived", BOOL),
                _f("is_closed", BOOL),  # metadata.isClosed
                _f("probability", STR),  # metadata.probability ("1.0" on won stages)
            ),
            "Every deal pipeline's stages (GET /crm/v3/pipelines/deals), one row per pipeline and stage.",
            feeds="stages",
            snapshot=True,
        ),
        RawObject(
            "owners",
            ("owner_id",),
            (
                _f("owner_id", ID, True),
                _f("email", STR),
                _f("first_name", STR),
                _f("last_name", STR),
                _f("user_id", ID),
                _f("archived", BOOL),  # deactivated user: still owns historical deals
                _f("created_at", TIMESTAMP),
                _f("updated_at", TIMESTAMP),
            ),
            "Owners (GET /crm/v3/owners, active and archived), re-read whole each run.",
            feeds="reps",
            snapshot=True,
        ),
        RawObject(
            "owner_teams",
            ("owner_id", "team_id"),
            (
                _f("owner_id", ID, True),
                _f("team_id", ID, True),
                _f("team_name", STR),
                _f("is_primary", BOOL),  # the team's "primary" flag
                _f("position", INT),  # order in the owner's "teams" list
            ),
            "The teams of each owner (the owner's ``teams`` list), one row per owner and team.",
            feeds="reps",
            snapshot=True,
        ),
        RawObject(
            "deals",
            ("deal_id",),
            (
                _f("deal_id", ID, True),
                _f("dealname", STR),
                _f("dealstage", STAGE, True),  # a stage id of one of the portal's pipelines
                _f("pipeline", STR),
                _f("amount", AMOUNT),
                _f("createdate", TIMESTAMP),
                _f("closedate", TIMESTAMP),
                _f("hs_is_closed", BOOL),
                _f("hs_is_closed_won", BOOL),
                _f("hubspot_owner_id", ID),
                _f("hs_next_step", STR),
                _f("closed_lost_reason", STR),
                _f("hs_lastmodifieddate", TIMESTAMP),
                _f("primary_company_id", ID),  # the deal_to_company association, else the first company
                _f("created_at", TIMESTAMP, True),
                _f("updated_at", TIMESTAMP),
                _f("archived_at", TIMESTAMP),
            ),
            "Deals (/crm/v3/objects/deals) in the selected pipelines; archived ones flagged _is_deleted.",
            feeds="opportunities",
        ),
        RawObject(
            "deal_property_history",
            ("version_id",),
            (
                _f("version_id", ID, True),  # <deal_id>:<property>:<epoch ms>:<value>
                _f("deal_id", ID, True),
                _f("property", STR, True),
                _f("value", STR),
                _f("timestamp", TIMESTAMP, True),
                _f("source_type", STR),
            ),
            "One row per version of a deal's tracked properties (propertiesWithHistory: dealstage and the "
            "field-history properties), plus the deal's hs_date_entered_<stage id> properties when read.",
            feeds="stage_history",
        ),
        RawObject(
            "companies",
            ("company_id",),
            (
                _f("company_id", ID, True),
                _f("name", STR),
                _f("domain", STR),
                _f("industry", STR),
                _f("numberofemployees", INT),
                _f("createdate", TIMESTAMP),
                _f("hs_lastmodifieddate", TIMESTAMP),
                *_record_times(),
            ),
            "Companies (/crm/v3/objects/companies); configured segment/tags properties land in _extra.",
            feeds="accounts",
        ),
        RawObject(
            "contacts",
            ("contact_id",),
            (
                _f("contact_id", ID, True),
                _f("firstname", STR),
                _f("lastname", STR),
                _f("email", STR),
                _f("jobtitle", STR),
                _f("associatedcompanyid", ID),
                _f("hs_buying_role", STR),  # multi-select, ';'-separated internal values
                _f("createdate", TIMESTAMP),
                _f("lastmodifieddate", TIMESTAMP),
                *_record_times(),
            ),
            "Contacts (/crm/v3/objects/contacts).",
            feeds="contacts",
        ),
        RawObject(
            "engagements",
            ("engagement_id",),
            (
                _f("engagement_id", ID, True),
                _f("object_type", STR, True),  # meetings, calls, emails, tasks (the CRM object read)
                _f("hs_timestamp", TIMESTAMP, True),
                _f("hubspot_owner_id", ID),
                _f("hs_meeting_title", STR),
                _f("hs_call_title", STR),
                _f("hs_email_subject", STR),
                _f("hs_task_subject", STR),
                _f("hs_task_status", STR),  # tasks: COMPLETED, NOT_STARTED, IN_PROGRESS, WAITING, DEFERRED
                _f("hs_lastmodifieddate", TIMESTAMP),
                _f("primary_deal_id", ID),  # the first associated deal (all: engagement_associations)
                _f("primary_company_id", ID),  # the first associated company
                *_record_times(),
            ),
            "Meetings, calls, emails and tasks (/crm/v3/objects/<object_type>).",
            feeds="activities",
        ),
        RawObject(
            "engagement_associations",
            ("engagement_id", "to_type", "to_id"),
            (
                _f("engagement_id", ID, True),
                _f("to_type", STR, True),  # deals, companies, contacts
                _f("to_id", ID, True),
                _f("association_type", STR),
                _f("position", INT),  # order in HubSpot's association list
            ),
            "An engagement's deal, company and contact associations, re-landed whenever the engagement "
            "is read (rows landed before the engagement's latest landing are stale).",
            feeds="activity_contacts",
        ),
        RawObject(
            "goal_targets",
            ("goal_target_id",),
            (
                _f("goal_target_id", ID, True),
                _f("hs_goal_name", STR),
                _f("hs_target_amount", AMOUNT),
                _f("hs_start_datetime", TIMESTAMP),
                _f("hs_end_datetime", TIMESTAMP),
                _f("hs_assignee_user_id", ID),  # a HubSpot user id (owners.user_id), not an owner id
                _f("hs_assignee_team_id", ID),
                _f("hubspot_owner_id", ID),
                *_record_times(),
            ),
            "Goal targets (/crm/v3/objects/goal_targets) named like a revenue quota (config quota_goal_names), "
            "one per assignee and period; re-read whole each run. Not readable (no crm.objects.goals.read "
            "scope): lands empty and the quotas object is reported missing.",
            feeds="quotas",
            snapshot=True,
        ),
        # ------------------------------------------------------------------ mapping configuration
        RawObject(
            "map_stages",
            ("stage",),
            (
                _f("stage", STR, True),
                _f("stage_order", INT, True),
                _f("is_closed", BOOL, True),
                _f("is_won", BOOL, True),
            ),
            "config stages: overrides the stage list derived from the pipelines (empty: no override).",
            feeds="stages",
            snapshot=True,
        ),
        RawObject(
            "map_pipelines",
            ("pipeline",),
            (_f("pipeline", STR, True),),
            "config pipelines: the pipeline ids or labels whose stages are the canonical stages (empty: all).",
            feeds="stages",
            snapshot=True,
        ),
        RawObject(
            "map_managers",
            ("owner",),
            (_f("owner", STR, True),),
            "config managers: owner ids or emails who are managers.",
            feeds="managers",
            snapshot=True,
        ),
        RawObject(
            "map_teams",
            ("team",),
            (_f("team", STR, True), _f("manager", STR), _f("segment", STR)),
            "config teams: team id or name -> its manager (owner id or email) and segment.",
            feeds="reps",
            snapshot=True,
        ),
        RawObject(
            "map_owners",
            ("owner",),
            (
                _f("owner", STR, True),
                _f("manager", STR),
                _f("segment", STR),
                _f("slack_user_id", STR),
                _f("hired_on", DATE),
            ),
            "config owners: owner id or email -> overrides (win over the team's).",
            feeds="reps",
            snapshot=True,
        ),
        RawObject(
            "map_settings",
            ("setting",),
            (_f("setting", STR, True), _f("value", STR)),
            "Single-valued settings: portal_id, deal_url_template, default_rep_segment, "
            "account_segment_property, account_tags_property, buying_role_property, fiscal_year_start_month.",
            feeds="opportunities",
            snapshot=True,
        ),
        RawObject(
            "map_account_segments",
            ("source_value",),
            (_f("source_value", STR, True), _f("segment", STR, True)),
            "config account_segment_values: a value of the segment property -> segment.",
            feeds="accounts",
            snapshot=True,
        ),
        RawObject(
            "map_segment_bands",
            ("band_order",),
            (_f("band_order", INT, True), _f("segment", STR, True), _f("below", INT)),
            "config employee_bands, in order: the first band whose 'below' (exclusive; null: no bound) "
            "exceeds the company's employees gives its segment.",
            feeds="accounts",
            snapshot=True,
        ),
        RawObject(
            "map_buying_roles",
            ("source_value",),
            (_f("source_value", STR, True), _f("buying_role", STR, True)),
            "config buying_roles: an hs_buying_role value -> canonical buying role.",
            feeds="contacts",
            snapshot=True,
        ),
        RawObject(
            "map_buying_role_priority",
            ("buying_role",),
            (_f("buying_role", STR, True), _f("priority", INT, True)),
            "config buying_role_priority: the role kept when a contact holds several (lowest priority wins).",
            feeds="contacts",
            snapshot=True,
        ),
        RawObject(
            "map_activity_types",
            ("object_type",),
            (_f("object_type", STR, True), _f("activity_type", STR, True)),
            "config activity_objects: the HubSpot object read -> canonical activity type.",
            feeds="activities",
            snapshot=True,
        ),
        RawObject(
            "map_field_history",
            ("property",),
            (_f("property", STR, True), _f("field_name", STR, True)),
            "config field_history: deal property whose changes are kept -> canonical field_name.",
            feeds="field_history",
            snapshot=True,
        ),
    )
}
