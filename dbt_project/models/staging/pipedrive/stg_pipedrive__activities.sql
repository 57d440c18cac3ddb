{#- Activities: the type through map_activity_types (other types: map_settings.activity_type_default),
    occurring at the due date and time (UTC), else when marked done. Only done activities are past
    activity: a planned (not done) one, even past its due date, leaves the model (it stays in raw). -#}
with

settings as (
    select max(case when key = 'activity_type_default' then value end) as activity_type_default
    from {{ source('pipedrive', 'map_settings') }}
),

activities as (
    select * from {{ source('pipedrive', 'activities') }}
),

types as (
    select * from {{ source('pipedrive', 'map_activity_types') }}
),

mapped as (
    select
        a.id as activity_id,
        a.deal_id as opportunity_id,
        a.org_id as account_id,
        a.owner_id as rep_id,
        coalesce(t.activity_type, settings.activity_type_default) as activity_type,
        case
            when a.due_date is not null
                then cast(cast(a.due_date as varchar) || ' ' || coalesce(a.due_time, '00:00:00') as timestamp)
            else a.marked_as_done_time
        end as occurred_at,
        a.subject,
        coalesce(a.done, a.marked_as_done_time is not null) as is_done,
        a._source_system,
        a._source_file,
        a._source_row,
        a._loaded_at,
        a._is_deleted
    from activities as a
    cross join settings
    left join types as t on t.type_key = lower(trim(a.type))
),

final as (
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
    from mapped
    -- with no default type, landing quarantined unmapped types; a type unmapped since leaves here
    where activity_type is not null and occurred_at is not null
        -- deleted rows stay, flagged (stg_crm__activities drops them); planned ones never count
        and (is_done or coalesce(_is_deleted, false))
)

select * from final
