{#- Pipedrive has no managers: they are the users map_users marks is_manager when the config
    lists manager_user_ids (map_settings.managers_from = 'config'), else the admins. -#}
with

settings as (
    select coalesce(max(case when key = 'managers_from' then value end), 'admins') as managers_from
    from {{ source('pipedrive', 'map_settings') }}
),

users as (
    select * from {{ source('pipedrive', 'users') }}
),

user_map as (
    select * from {{ source('pipedrive', 'map_users') }}
),

final as (
    select
        cast(u.id as varchar) as manager_id,
        cast(u.name as varchar) as manager_name,
        cast(u.email as varchar) as email,
        cast(m.slack_user_id as varchar) as slack_user_id,

        cast(u._source_system as varchar) as _source_system,
        cast(u._source_file as varchar) as _source_file,
        cast(u._source_row as bigint) as _source_row,
        cast(u._loaded_at as timestamp) as _loaded_at,
        cast(coalesce(u._is_deleted, false) as boolean) as _is_deleted
    from users as u
    cross join settings
    left join user_map as m on m.user_id = u.id
    where case
        when settings.managers_from = 'config' then coalesce(m.is_manager, false)
        else coalesce(u.is_admin, false)
    end
)

select * from final
