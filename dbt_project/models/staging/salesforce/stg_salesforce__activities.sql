-- Task + Event -> activities. Task: activity_type from TaskSubtype (map_task_subtypes), else
-- Type (map_task_types), else 'task'; occurred_at = CompletedDateTime, else ActivityDate, else
-- CreatedDate. Event: activity_type from Type (map_event_types), else 'meeting'; occurred_at =
-- StartDateTime, else ActivityDateTime, else CreatedDate. opportunity_id = WhatId when it is an
-- Opportunity (its id prefix, map_key_prefixes).
-- Only done activities are past activity: a Task counts when closed (IsClosed, else Status
-- Completed, else a CompletedDateTime; an open task past its date is planned, not done), an
-- Event at its end (EndDateTime when read); later events fall after the as-of cut-off.

with

task as (
    select * from {{ source('salesforce', 'task') }}
),

event as (
    select * from {{ source('salesforce', 'event') }}
),

subtype_map as (
    select * from {{ source('salesforce', 'map_task_subtypes') }}
),

task_type_map as (
    select * from {{ source('salesforce', 'map_task_types') }}
),

event_type_map as (
    select * from {{ source('salesforce', 'map_event_types') }}
),

prefixes as (
    select coalesce(max(case when sobject = 'Opportunity' then key_prefix end), '006') as opportunity_prefix
    from {{ source('salesforce', 'map_key_prefixes') }}
),

tasks as (
    select
        task.id as activity_id,
        case when substring(task.what_id, 1, 3) = prefixes.opportunity_prefix then task.what_id end as opportunity_id,
        task.account_id,
        task.owner_id as rep_id,
        coalesce(subtype_map.activity_type, task_type_map.activity_type, 'task') as activity_type,
        coalesce(task.completed_date_time, cast(task.activity_date as timestamp), task.created_date) as occurred_at,
        task.subject,
        task._source_system,
        task._source_file,
        task._source_row,
        task._loaded_at,
        task._is_deleted
    from task
    cross join prefixes
    left join subtype_map
        on subtype_map.source_value = task.task_subtype
    left join task_type_map
        on task_type_map.source_value = task.type
    where coalesce(
        {{ try_cast_text(json_text('task._extra', "'IsClosed'"), 'boolean') }},
        lower({{ json_text('task._extra', "'Status'") }}) in ('completed', 'closed'),
        task.completed_date_time is not null
    ) or coalesce(task._is_deleted, false)
),

events as (
    select
        event.id as activity_id,
        case when substring(event.what_id, 1, 3) = prefixes.opportunity_prefix then event.what_id end as opportunity_id,
        event.account_id,
        event.owner_id as rep_id,
        coalesce(event_type_map.activity_type, 'meeting') as activity_type,
        coalesce(
            timezone('UTC', {{ try_cast_text(json_text('event._extra', "'EndDateTime'"), 'timestamptz') }}),
            event.start_date_time, event.activity_date_time, event.created_date
        ) as occurred_at,
        event.subject,
        event._source_system,
        event._source_file,
        event._source_row,
        event._loaded_at,
        event._is_deleted
    from event
    cross join prefixes
    left join event_type_map
        on event_type_map.source_value = event.type
),

activities as (
    select * from tasks
    union all
    select * from events
)

select
    cast(activity_id as varchar) as activity_id,
    cast(opportunity_id as varchar) as opportunity_id,
    cast(account_id as varchar) as account_id,
    cast(rep_id as varchar) as rep_id,
    cast(activity_type as varchar) as activity_type,
    cast(occurred_at as timestamp) as occurred_at,
    cast(subject as varchar) as subject,

    cast(_source_system as varchar) as _source_system,
    cast(_source_file as varchar) as _source_file,
    cast(_source_row as bigint) as _source_row,
    cast(_loaded_at as timestamp) as _loaded_at,
    cast(coalesce(_is_deleted, false) as boolean) as _is_deleted
from activities
