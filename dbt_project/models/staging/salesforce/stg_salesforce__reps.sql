-- User records matching rep_filter -> reps; segment from rep_segment_field through rep_segment_map
-- (a value the map lacks is kept as it is).

with

sf_user as (
    select * from {{ source('salesforce', 'user') }}
),

segment_map as (
    select * from {{ source('salesforce', 'map_rep_segments') }}
)

select
    cast(sf_user.id as varchar) as rep_id,
    cast(sf_user.name as varchar) as rep_name,
    cast(sf_user.email as varchar) as email,
    cast(sf_user.slack_user_id as varchar) as slack_user_id,
    cast(sf_user.manager_id as varchar) as manager_id,
    cast(coalesce(segment_map.segment, sf_user.segment_value) as varchar) as segment,
    cast(null as date) as hired_on,
    cast(sf_user.is_active as boolean) as is_active,

    cast(sf_user._source_system as varchar) as _source_system,
    cast(sf_user._source_file as varchar) as _source_file,
    cast(sf_user._source_row as bigint) as _source_row,
    cast(sf_user._loaded_at as timestamp) as _loaded_at,
    cast(coalesce(sf_user._is_deleted, false) as boolean) as _is_deleted
from sf_user
left join segment_map
    on segment_map.source_value = sf_user.segment_value
