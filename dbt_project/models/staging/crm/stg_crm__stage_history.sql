with

source as (
    select * from {{ source('crm', 'stage_history') }}
    -- rows deleted or archived in the CRM stay in raw (nothing lost) but leave the models
    where not coalesce(_is_deleted, false)
),

renamed as (
    select
        stage_history_id,
        opportunity_id,
        trim(stage) as stage,
        entered_at,

        _source_system,
        _source_file,
        _source_row,
        _loaded_at
    from source
)

select * from renamed
