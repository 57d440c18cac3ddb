with

source as (
    -- the active source's rows: raw.activity_contacts, or a native CRM's stg_<crm>__activity_contacts (macros/landed.sql)
    select * from ({{ landed('activity_contacts') }}) as landed
    -- rows deleted or archived in the CRM stay in raw (nothing lost) but leave the models
    where not coalesce(_is_deleted, false)
),

renamed as (
    select
        activity_id,
        contact_id,

        _source_system,
        _source_file,
        _source_row,
        _loaded_at
    from source
)

select * from renamed
