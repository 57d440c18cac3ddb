with

source as (
    -- the active source's rows: raw.accounts, or a native CRM's stg_<crm>__accounts (macros/landed.sql)
    select * from ({{ landed('accounts') }}) as landed
    -- rows deleted or archived in the CRM stay in raw (nothing lost) but leave the models
    where not coalesce(_is_deleted, false)
),

renamed as (
    select
        account_id,
        trim(account_name) as account_name,
        lower(trim(segment)) as segment,
        trim(industry) as industry,
        employees,
        trim(tags) as tags,

        _source_system,
        _source_file,
        _source_row,
        _loaded_at
    from source
)

select * from renamed
