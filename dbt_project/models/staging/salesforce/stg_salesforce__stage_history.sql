-- OpportunityHistory -> stage_history: one row per save of a deal (repeats of a stage collapse downstream).

with

history as (
    select * from {{ source('salesforce', 'opportunity_history') }}
)

select
    cast(id as varchar) as stage_history_id,
    cast(opportunity_id as varchar) as opportunity_id,
    cast(stage_name as varchar) as stage,
    cast(created_date as timestamp) as entered_at,

    cast(_source_system as varchar) as _source_system,
    cast(_source_file as varchar) as _source_file,
    cast(_source_row as bigint) as _source_row,
    cast(_loaded_at as timestamp) as _loaded_at,
    cast(coalesce(_is_deleted, false) as boolean) as _is_deleted
from history
