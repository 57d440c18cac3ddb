-- User records that manage reps (the connector reads the users some rep's ManagerId points at).

with

manager as (
    select * from {{ source('salesforce', 'manager') }}
)

select
    cast(id as varchar) as manager_id,
    cast(name as varchar) as manager_name,
    cast(email as varchar) as email,
    cast(slack_user_id as varchar) as slack_user_id,

    cast(_source_system as varchar) as _source_system,
    cast(_source_file as varchar) as _source_file,
    cast(_source_row as bigint) as _source_row,
    cast(_loaded_at as timestamp) as _loaded_at,
    cast(coalesce(_is_deleted, false) as boolean) as _is_deleted
from manager
