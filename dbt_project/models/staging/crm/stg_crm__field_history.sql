with

source as (
    -- the active source's rows: raw.field_history, or a native CRM's stg_<crm>__field_history (macros/landed.sql)
    select * from ({{ landed('field_history') }}) as landed
    -- rows deleted or archived in the CRM stay in raw (nothing lost) but leave the models
    where not coalesce(_is_deleted, false)
),

renamed as (
    select
        field_history_id,
        opportunity_id,
        lower(trim(field_name)) as field_name,
        old_value,
        new_value,
        changed_at,

        _source_system,
        _source_file,
        _source_row,
        _loaded_at
    from source
)

select * from renamed
