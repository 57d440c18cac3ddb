{#-
  Activities: the engagements whose object (meetings, calls, emails, tasks, ...) map_activity_types
  maps to an activity type (config activity_objects); an object no longer mapped leaves the model.
  The deal and company are the engagement's first associated ones; the subject is the object's
  own title/subject property. A task counts only once COMPLETED (hs_task_status): a planned task is
  not past activity (it stays in raw); engagements dated after the as-of fall after its cut-off.
-#}
with

engagements as (
    select * from {{ source('hubspot', 'engagements') }}
),

activity_types as (
    select * from {{ source('hubspot', 'map_activity_types') }}
)

select
    cast(engagements.engagement_id as varchar) as activity_id,
    cast(engagements.primary_deal_id as varchar) as opportunity_id,
    cast(engagements.primary_company_id as varchar) as account_id,
    cast(engagements.hubspot_owner_id as varchar) as rep_id,
    cast(activity_types.activity_type as varchar) as activity_type,
    cast(engagements.hs_timestamp as timestamp) as occurred_at,
    cast(
        case engagements.object_type
            when 'meetings' then engagements.hs_meeting_title
            when 'calls' then engagements.hs_call_title
            when 'emails' then engagements.hs_email_subject
            when 'tasks' then engagements.hs_task_subject
        end as varchar
    ) as subject,

    cast(engagements._source_system as varchar) as _source_system,
    cast(engagements._source_file as varchar) as _source_file,
    cast(engagements._source_row as bigint) as _source_row,
    cast(engagements._loaded_at as timestamp) as _loaded_at,
    cast(coalesce(engagements._is_deleted, false) as boolean) as _is_deleted
from engagements
inner join activity_types
    on activity_types.object_type = engagements.object_type
where engagements.object_type <> 'tasks'
    or upper(coalesce(engagements.hs_task_status, 'COMPLETED')) = 'COMPLETED'
    or coalesce(engagements._is_deleted, false)
