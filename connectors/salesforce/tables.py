"""The Salesforce connector's native tables (schema ``raw_salesforce``): what the source lands.

One table per sObject read, with snake_case columns named after the API fields
(``StageName`` -> ``stage_name``, as dlt would normalise them), plus ``map_*`` tables
that carry the mapping configuration (:class:`connectors.salesforce.config.SalesforceConfig`)
so dbt (``models/staging/salesforce/stg_salesforce__*``) maps everything into the canonical
shape. Columns fed by a configurable org field (``rep_segment_field``,
``slack_user_id_field``, ``account_segment_field``, ``account_tags_field``) land under a
fixed name (``segment_value``, ``slack_user_id``, ``tags_value``) so the SQL stays static.

Imports nothing but connectors.schema: landing creates these (empty) tables without credentials.
"""

from __future__ import annotations

from connectors.schema import AMOUNT, BOOL, DATE, ID, INT, STAGE, STR, TIMESTAMP, Field, RawObject

DATASET = "raw_salesforce"


def _t(
    name: str, feeds: str, fields: tuple[Field, ...], description: str, *, key: tuple[str, ...] = ("id",), snapshot: bool = False
) -> RawObject:
    return RawObject(name, key, fields, description, feeds=feeds, snapshot=snapshot)


def _f(name: str, type_: str, required: bool = False) -> Field:
    return Field(name, type_, required)


_ID = _f("id", ID, True)
_MODSTAMP = _f("system_modstamp", TIMESTAMP)

TABLES: dict[str, RawObject] = {
    t.name: t
    for t in (
        # -- sObjects ------------------------------------------------------------------------
        _t(
            "opportunity_stage", "stages",
            (_ID, _f("master_label", STR, True), _f("api_name", STR), _f("sort_order", INT, True),
             _f("is_closed", BOOL, True), _f("is_won", BOOL, True), _f("is_active", BOOL), _MODSTAMP),
            "OpportunityStage: every stage of the org, active or not (read whole each landing).",
            snapshot=True,
        ),
        _t(
            "user", "reps",
            (_ID, _f("name", STR, True), _f("email", STR), _f("manager_id", ID), _f("is_active", BOOL),
             _f("segment_value", STR), _f("slack_user_id", STR), _MODSTAMP),
            "User records matching rep_filter (the reps); segment_value / slack_user_id hold the values of "
            "rep_segment_field / slack_user_id_field.",
        ),
        _t(
            "manager", "managers",
            (_ID, _f("name", STR, True), _f("email", STR), _f("is_active", BOOL), _f("slack_user_id", STR), _MODSTAMP),
            "User records reached through a rep's Manager relationship (User.ManagerId), read whole each landing.",
            snapshot=True,
        ),
        _t(
            "account", "accounts",
            (_ID, _f("name", STR, True), _f("industry", STR), _f("number_of_employees", INT),
             _f("segment_value", STR), _f("tags_value", STR), _MODSTAMP),
            "Account; segment_value / tags_value hold the values of account_segment_field / account_tags_field.",
        ),
        _t(
            "contact", "contacts",
            (_ID, _f("account_id", ID), _f("name", STR), _f("title", STR), _f("email", STR), _MODSTAMP),
            "Contact.",
        ),
        _t(
            "opportunity_contact_role", "contacts",
            (_ID, _f("contact_id", ID), _f("opportunity_id", ID), _f("role", STR), _f("is_primary", BOOL), _MODSTAMP),
            "OpportunityContactRole: a contact's role on a deal (the source of buying_role).",
        ),
        _t(
            "opportunity", "opportunities",
            (_ID, _f("account_id", ID), _f("owner_id", ID), _f("name", STR), _f("stage_name", STAGE, True),
             _f("amount", AMOUNT), _f("created_date", TIMESTAMP, True), _f("close_date", DATE), _f("is_closed", BOOL),
             _f("is_won", BOOL), _f("next_step", STR), _MODSTAMP),
            "Opportunity (stage_name validated against OpportunityStage, spelled as the stage's MasterLabel).",
        ),
        _t(
            "opportunity_history", "stage_history",
            (_ID, _f("opportunity_id", ID, True), _f("stage_name", STAGE, True), _f("created_date", TIMESTAMP, True), _MODSTAMP),
            "OpportunityHistory: one row per save of a deal (stage entries).",
        ),
        _t(
            "opportunity_field_history", "field_history",
            (_ID, _f("opportunity_id", ID, True), _f("field", STR, True), _f("old_value", STR), _f("new_value", STR),
             _f("data_type", STR), _f("created_date", TIMESTAMP, True)),
            "OpportunityFieldHistory for the fields of field_history_fields (immutable; cursor CreatedDate).",
        ),
        _t(
            "task", "activities",
            (_ID, _f("what_id", ID), _f("who_id", ID), _f("account_id", ID), _f("owner_id", ID), _f("subject", STR),
             _f("task_subtype", STR), _f("type", STR), _f("activity_date", DATE), _f("completed_date_time", TIMESTAMP),
             _f("created_date", TIMESTAMP, True), _MODSTAMP),
            "Task whose What is one of activity_what_types.",
        ),
        _t(
            "event", "activities",
            (_ID, _f("what_id", ID), _f("who_id", ID), _f("account_id", ID), _f("owner_id", ID), _f("subject", STR),
             _f("event_subtype", STR), _f("type", STR), _f("start_date_time", TIMESTAMP), _f("activity_date_time", TIMESTAMP),
             _f("created_date", TIMESTAMP, True), _MODSTAMP),
            "Event whose What is one of activity_what_types.",
        ),
        _t(
            "task_relation", "activity_contacts",
            (_ID, _f("task_id", ID, True), _f("relation_id", ID), _f("is_what", BOOL), _MODSTAMP),
            "TaskRelation (who relations, IsWhat = false) of tasks on activity_what_types.",
        ),
        _t(
            "event_relation", "activity_contacts",
            (_ID, _f("event_id", ID, True), _f("relation_id", ID), _f("is_what", BOOL), _f("is_invitee", BOOL),
             _f("status", STR), _MODSTAMP),
            "EventRelation (who relations and invitees, IsWhat = false) of events on activity_what_types.",
        ),
        _t(
            "forecasting_quota", "quotas",
            (_ID, _f("quota_owner_id", ID, True), _f("start_date", DATE, True), _f("quota_amount", AMOUNT),
             _f("is_amount", BOOL), _f("forecasting_type_id", ID), _f("forecasting_type", STR), _f("period_id", ID),
             _f("product_family", STR), _f("territory2_id", ID), _MODSTAMP),
            "ForecastingQuota (Collaborative Forecasts): one quota per owner, forecast type and period (monthly or "
            "quarterly), read whole each landing; forecasting_type is the type's DeveloperName. Fields the org lacks "
            "(PeriodId, ProductFamily, Territory2Id) stay empty. Not readable (no forecasting permission, Collaborative "
            "Forecasts off): lands empty and the quotas object is reported missing.",
            snapshot=True,
        ),
        # -- mapping configuration (SalesforceConfig), rewritten whole on every landing -------
        _t(
            "map_rep_segments", "reps",
            (_f("source_value", STR, True), _f("segment", STR, True)),
            "rep_segment_map: raw value of rep_segment_field -> segment (unmapped values are kept as they are).",
            key=("source_value",), snapshot=True,
        ),
        _t(
            "map_account_segments", "accounts",
            (_f("source_value", STR, True), _f("segment", STR, True)),
            "account_segment_map: raw value of account_segment_field -> segment (unmapped values are kept).",
            key=("source_value",), snapshot=True,
        ),
        _t(
            "map_segment_bands", "accounts",
            (_f("band_order", INT, True), _f("segment", STR, True), _f("max_employees", INT)),
            "account_segment_bands, in order: the first band whose max_employees (exclusive; empty = no bound) "
            "exceeds NumberOfEmployees. Empty when account_segment_field is set (the field wins).",
            key=("band_order",), snapshot=True,
        ),
        _t(
            "map_buying_roles", "contacts",
            (_f("source_value", STR, True), _f("buying_role", STR, True)),
            "buying_roles: OpportunityContactRole.Role -> buying_role.",
            key=("source_value",), snapshot=True,
        ),
        _t(
            "map_buying_role_priority", "contacts",
            (_f("buying_role", STR, True), _f("priority", INT), _f("is_default", BOOL, True)),
            "buying_role_priority (1 = wins over the others; empty = after every ranked role) and "
            "default_buying_role (is_default: for unmapped roles and contacts without roles).",
            key=("buying_role",), snapshot=True,
        ),
        _t(
            "map_field_history", "field_history",
            (_f("field", STR, True), _f("field_name", STR, True)),
            "field_history_fields: OpportunityFieldHistory.Field -> canonical field_name (only these are kept).",
            key=("field",), snapshot=True,
        ),
        _t(
            "map_task_subtypes", "activities",
            (_f("source_value", STR, True), _f("activity_type", STR, True)),
            "task_subtypes: Task.TaskSubtype -> activity_type (checked before Task.Type).",
            key=("source_value",), snapshot=True,
        ),
        _t(
            "map_task_types", "activities",
            (_f("source_value", STR, True), _f("activity_type", STR, True)),
            "task_types: Task.Type -> activity_type (unmatched tasks are 'task').",
            key=("source_value",), snapshot=True,
        ),
        _t(
            "map_event_types", "activities",
            (_f("source_value", STR, True), _f("activity_type", STR, True)),
            "event_types: Event.Type -> activity_type (unmatched events are 'meeting').",
            key=("source_value",), snapshot=True,
        ),
        _t(
            "map_key_prefixes", "activity_contacts",
            (_f("sobject", STR, True), _f("key_prefix", STR, True)),
            "key_prefixes: sObject -> the 3-character id prefix (tells an Opportunity WhatId, a Contact WhoId).",
            key=("sobject",), snapshot=True,
        ),
        _t(
            "map_settings", "opportunities",
            (_f("setting", STR, True), _f("value", STR)),
            "Scalar settings of the landing: instance_url (the base of source_url).",
            key=("setting",), snapshot=True,
        ),
    )
}
