-- OpportunityFieldHistory -> field_history: only the fields of map_field_history
-- (field_history_fields, default CloseDate -> close_date, Amount -> amount), renamed.

with

history as (
    select * from {{ source('salesforce', 'opportunity_field_history') }}
),

field_map as (
    select * from {{ source('salesforce', 'map_field_history') }}
)

select
    cast(history.id as varchar) as field_history_id,
    cast(history.opportunity_id as varchar) as opportunity_id,
    cast(field_map.field_name as varchar) as field_name,
    cast(history.old_value as varchar) as old_value,
    cast(history.new_value as varchar) as new_value,
    cast(history.created_date as timestamp) as changed_at,

    cast(history._source_system as varchar) as _source_system,
    cast(history._source_file as varchar) as _source_file,
    cast(history._source_row as bigint) as _source_row,
    cast(history._loaded_at as timestamp) as _loaded_at,
    cast(coalesce(history._is_deleted, false) as boolean) as _is_deleted
from history
inner join field_map
    on field_map.field = history.field
