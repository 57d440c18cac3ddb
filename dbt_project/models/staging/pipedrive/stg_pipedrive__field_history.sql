{#- Changes of the deal fields map_history_fields names (default: value -> amount,
    expected_close_date -> close_date), from each deal's change log. -#}
with

changes as (
    select * from {{ source('pipedrive', 'deal_changes') }}
),

fields as (
    select * from {{ source('pipedrive', 'map_history_fields') }}
),

deals as (
    select id, _is_deleted from {{ source('pipedrive', 'deals') }}
),

final as (
    select
        cast(c.id as varchar) as field_history_id,
        cast(c.deal_id as varchar) as opportunity_id,
        cast(f.field_name as varchar) as field_name,
        cast(c.old_value as varchar) as old_value,
        cast(c.new_value as varchar) as new_value,
        cast(c.log_time as timestamp) as changed_at,

        cast(c._source_system as varchar) as _source_system,
        cast(c._source_file as varchar) as _source_file,
        cast(c._source_row as bigint) as _source_row,
        cast(c._loaded_at as timestamp) as _loaded_at,
        -- a deleted deal's history goes with it
        cast(coalesce(c._is_deleted, false) or coalesce(d._is_deleted, false) as boolean) as _is_deleted
    from changes as c
    inner join fields as f on f.field_key = c.field_key
    inner join deals as d on d.id = c.deal_id
)

select * from final
