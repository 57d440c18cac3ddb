with

source as (
    select * from {{ source('crm', 'accounts') }}
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
