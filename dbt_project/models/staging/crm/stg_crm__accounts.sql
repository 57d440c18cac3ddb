with

source as (
    select * from {{ source('crm', 'accounts') }}
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
