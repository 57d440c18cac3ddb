with

source as (
    -- the active source's rows: raw.managers, or a native CRM's stg_<crm>__managers (macros/landed.sql)
    select * from ({{ landed('managers') }}) as landed
    -- rows deleted or archived in the CRM stay in raw (nothing lost) but leave the models
    where not coalesce(_is_deleted, false)
),

renamed as (
    select
        manager_id,
        trim(manager_name) as manager_name,
        trim(email) as email,
        trim(slack_user_id) as slack_user_id,

        _source_system,
        _source_file,
        _source_row,
        _loaded_at
    from source
)

select * from renamed
