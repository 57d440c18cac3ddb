with

source as (
    -- the active source's rows: raw.stage_history, or a native CRM's stg_<crm>__stage_history (macros/landed.sql)
    select * from ({{ landed('stage_history') }}) as landed
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
