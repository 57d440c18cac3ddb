with

source as (
    select * from {{ source('crm', 'managers') }}
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
