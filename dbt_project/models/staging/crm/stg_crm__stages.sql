with

source as (
    -- the active source's rows: raw.stages, or a native CRM's stg_<crm>__stages (macros/landed.sql)
    select * from ({{ landed('stages') }}) as landed
    -- rows deleted or archived in the CRM stay in raw (nothing lost) but leave the models
    where not coalesce(_is_deleted, false)
),

renamed as (
    select
        trim(stage) as stage,
        stage_order,
        is_closed,
        is_won,

        _source_system,
        _source_file,
        _source_row,
        _loaded_at
    from source
)

select * from renamed
