{#- Reps: the users who are not managers (managers too with map_settings.managers_are_reps).
    A rep's manager: map_users.manager_id, else map_settings.default_manager_id, else the only
    manager when there is exactly one. Segment and Slack id from map_users. -#}
with

settings as (
    select
        coalesce(max(case when key = 'managers_from' then value end), 'admins') as managers_from,
        max(case when key = 'default_manager_id' then value end) as default_manager_id,
        coalesce(max(case when key = 'managers_are_reps' then value end), 'false') = 'true' as managers_are_reps
    from {{ source('pipedrive', 'map_settings') }}
),

users as (
    select * from {{ source('pipedrive', 'users') }}
),

user_map as (
    select * from {{ source('pipedrive', 'map_users') }}
),

flagged as (
    select
        u.*,
        m.manager_id as mapped_manager_id,
        m.segment,
        m.slack_user_id,
        case
            when settings.managers_from = 'config' then coalesce(m.is_manager, false)
            else coalesce(u.is_admin, false)
        end as is_manager
    from users as u
    cross join settings
    left join user_map as m on m.user_id = u.id
),

sole_manager as (
    select case when count(*) = 1 then max(id) end as manager_id
    from flagged
    where is_manager
),

mapped as (
    select
        f.id as rep_id,
        f.name as rep_name,
        f.email,
        f.slack_user_id,
        coalesce(f.mapped_manager_id, settings.default_manager_id, sole_manager.manager_id) as manager_id,
        f.segment,
        cast(f.created as date) as hired_on,
        f.active_flag as is_active,
        f._source_system,
        f._source_file,
        f._source_row,
        f._loaded_at,
        f._is_deleted
    from flagged as f
    cross join settings
    cross join sole_manager
    where not f.is_manager or settings.managers_are_reps
),

final as (
    select
        cast(rep_id as varchar) as rep_id,
        cast(rep_name as varchar) as rep_name,
        cast(email as varchar) as email,
        cast(slack_user_id as varchar) as slack_user_id,
        -- no one manages themselves
        cast(case when manager_id = rep_id then null else manager_id end as varchar) as manager_id,
        cast(segment as varchar) as segment,
        cast(hired_on as date) as hired_on,
        cast(is_active as boolean) as is_active,

        cast(_source_system as varchar) as _source_system,
        cast(_source_file as varchar) as _source_file,
        cast(_source_row as bigint) as _source_row,
        cast(_loaded_at as timestamp) as _loaded_at,
        cast(coalesce(_is_deleted, false) as boolean) as _is_deleted
    from mapped
)

select * from final
