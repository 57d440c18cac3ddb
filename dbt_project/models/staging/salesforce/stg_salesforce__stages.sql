-- OpportunityStage -> stages: the org's stages (active or not) in SortOrder, with their closed/won flags.

with

stage as (
    select * from {{ source('salesforce', 'opportunity_stage') }}
)

select
    cast(master_label as varchar) as stage,
    cast(sort_order as bigint) as stage_order,
    cast(is_closed as boolean) as is_closed,
    cast(is_won as boolean) as is_won,

    cast(_source_system as varchar) as _source_system,
    cast(_source_file as varchar) as _source_file,
    cast(_source_row as bigint) as _source_row,
    cast(_loaded_at as timestamp) as _loaded_at,
    cast(coalesce(_is_deleted, false) as boolean) as _is_deleted
from stage
