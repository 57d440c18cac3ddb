"""Pipedrive's native landed tables (schema ``raw_pipedrive``): the API's records, flattened, typed,
named as Pipedrive names them. The mapping into the canonical shape is dbt's
(``dbt_project/models/staging/pipedrive/``); the ``map_*`` tables carry the mapping configuration
(:class:`connectors.pipedrive.config.PipedriveConfig`) so dbt can join it.

Imports nothing but ``connectors.schema``: landing imports this to create every CRM's empty tables.
"""

from __future__ import annotations

from connectors.schema import AMOUNT, BOOL, DATE, ID, INT, STR, TIMESTAMP, Field, RawObject

DATASET = "raw_pipedrive"


def _f(name: str, type_: str, required: bool = False) -> Field:
    return Field(name, type_, required)


def _t(name, key, fields, description, feeds, snapshot=False) -> RawObject:
    return RawObject(name, key, tuple(fields), description, feeds=feeds, snapshot=snapshot)


TABLES: dict[str, RawObject] = {
    t.name: t
    for t in (
        # -- API records -------------------------------------------------------------------
        _t("pipelines", ("id",), [
            _f("id", ID, True), _f("name", STR), _f("order_nr", INT), _f("add_time", TIMESTAMP),
            _f("update_time", TIMESTAMP),
        ], "GET /api/v2/pipelines (read whole every run).", "stages", snapshot=True),
        _t("stages", ("id",), [
            _f("id", ID, True), _f("name", STR), _f("order_nr", INT), _f("pipeline_id", ID),
            _f("deal_probability", INT), _f("add_time", TIMESTAMP), _f("update_time", TIMESTAMP),
        ], "GET /api/v2/stages (read whole every run): stages per pipeline.", "stages", snapshot=True),
        _t("users", ("id",), [
            _f("id", ID, True), _f("name", STR), _f("email", STR), _f("is_admin", BOOL), _f("active_flag", BOOL),
            _f("created", TIMESTAMP), _f("modified", TIMESTAMP),
        ], "GET /v1/users (read whole every run): the company's users, managers and reps.", "managers",
            snapshot=True),
        _t("organizations", ("id",), [
            _f("id", ID, True), _f("name", STR), _f("owner_id", ID), _f("people_count", INT),
            _f("label_ids", STR),  # the organization's label ids, comma-separated, in Pipedrive's order
            _f("add_time", TIMESTAMP), _f("update_time", TIMESTAMP),
        ], "GET /api/v2/organizations (updated_since): companies.", "accounts"),
        _t("organization_custom_fields", ("org_id", "field_key"), [
            _f("org_id", ID, True), _f("field_key", STR, True), _f("value", STR),
        ], "Each organization's custom field values (40-hex field key, value as text; set fields "
           "comma-separated, monetary/address/option objects as their value).", "accounts"),
        _t("persons", ("id",), [
            _f("id", ID, True), _f("name", STR), _f("org_id", ID), _f("owner_id", ID), _f("job_title", STR),
            _f("primary_email", STR), _f("add_time", TIMESTAMP), _f("update_time", TIMESTAMP),
        ], "GET /api/v2/persons (updated_since): people at organizations.", "contacts"),
        _t("person_custom_fields", ("person_id", "field_key"), [
            _f("person_id", ID, True), _f("field_key", STR, True), _f("value", STR),
        ], "Each person's custom field values (as organization_custom_fields).", "contacts"),
        _t("deals", ("id",), [
            _f("id", ID, True), _f("title", STR), _f("status", STR), _f("stage_id", ID), _f("pipeline_id", ID),
            _f("value", AMOUNT), _f("currency", STR), _f("owner_id", ID), _f("org_id", ID), _f("person_id", ID),
            _f("add_time", TIMESTAMP, True), _f("update_time", TIMESTAMP), _f("expected_close_date", DATE),
            _f("won_time", TIMESTAMP), _f("lost_time", TIMESTAMP), _f("close_time", TIMESTAMP),
            _f("next_activity_subject", STR), _f("lost_reason", STR),
        ], "GET /api/v2/deals (updated_since; status open,won,lost,deleted): deals.", "opportunities"),
        _t("deal_changes", ("id",), [
            _f("id", ID, True),  # <deal_id>:<field_key>:<log_time>[:n]: the change log has no id of its own
            _f("deal_id", ID, True), _f("field_key", STR, True), _f("old_value", STR), _f("new_value", STR),
            _f("log_time", TIMESTAMP, True),
            _f("seq", INT),  # position in the deal's change log, oldest first (orders same-second changes)
            _f("actor_user_id", ID), _f("change_source", STR),
        ], "GET /v1/deals/{id}/changelog (or /flow) of each changed deal: every field change.", "stage_history"),
        _t("activities", ("id",), [
            _f("id", ID, True), _f("subject", STR), _f("type", STR), _f("owner_id", ID), _f("deal_id", ID),
            _f("org_id", ID), _f("person_id", ID), _f("due_date", DATE),
            _f("due_time", STR),  # HH:MM:SS, UTC
            _f("done", BOOL), _f("marked_as_done_time", TIMESTAMP), _f("add_time", TIMESTAMP),
            _f("update_time", TIMESTAMP),
        ], "GET /api/v2/activities (updated_since): meetings, calls, emails, tasks.", "activities"),
        _t("activity_participants", ("activity_id", "person_id"), [
            _f("activity_id", ID, True), _f("person_id", ID, True), _f("primary", BOOL),
        ], "Each activity's participants (its person_id when it lists none).", "activity_contacts"),
        # -- mapping configuration (PipedriveConfig), rewritten whole every landing ---------
        _t("map_settings", ("key",), [
            _f("key", STR, True), _f("value", STR),
        ], "Scalar settings: won_stage, lost_stage, stage_label, company_domain, managers_from, "
           "default_manager_id, managers_are_reps, activity_type_default, contact_title_field.",
            "opportunities", snapshot=True),
        _t("map_stages", ("stage",), [
            _f("stage", STR, True), _f("stage_order", INT), _f("is_closed", BOOL), _f("is_won", BOOL),
        ], "Per-stage overrides of order/closed/won (stage_overrides).", "stages", snapshot=True),
        _t("map_users", ("user_id",), [
            _f("user_id", ID, True), _f("is_manager", BOOL), _f("manager_id", ID), _f("segment", STR),
            _f("slack_user_id", STR),
        ], "Per-user settings: manager_user_ids, rep_manager, rep_segment, slack_user_ids.", "reps",
            snapshot=True),
        _t("map_custom_fields", ("entity", "purpose"), [
            _f("entity", STR, True), _f("purpose", STR, True), _f("field_key", STR, True),
        ], "Which custom field holds what: organization segment/employees/industry, person buying_role/title.",
            "accounts", snapshot=True),
        _t("map_segment_bands", ("band",), [
            _f("band", INT, True), _f("segment", STR, True),
            _f("below_employees", INT),  # empty: no upper bound (segment_above)
        ], "Segment by employee count: the first band whose bound is above the count.", "accounts",
            snapshot=True),
        _t("map_org_labels", ("label_id",), [
            _f("label_id", STR, True), _f("tag", STR, True),
        ], "Organization label id -> tag name (org_labels).", "accounts", snapshot=True),
        _t("map_buying_role_options", ("option_id",), [
            _f("option_id", STR, True), _f("label", STR, True),
        ], "Enum option id -> label of the buying-role custom field (buying_role_options).", "contacts",
            snapshot=True),
        _t("map_buying_roles", ("source_value",), [
            _f("source_value", STR, True), _f("buying_role", STR, True), _f("priority", INT, True),
        ], "Label (lower case) -> canonical buying role, and the role's priority (1 wins) when a person has "
           "several (buying_roles, buying_role_priority).", "contacts", snapshot=True),
        _t("map_history_fields", ("field_key",), [
            _f("field_key", STR, True), _f("field_name", STR, True),
        ], "Change-log field_key -> canonical field_history.field_name (history_fields).", "field_history",
            snapshot=True),
        _t("map_activity_types", ("type_key",), [
            _f("type_key", STR, True), _f("activity_type", STR, True),
        ], "Pipedrive activity type key -> canonical type (activity_types).", "activities", snapshot=True),
    )
}
