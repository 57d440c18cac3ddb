with

source as (
    select * from {{ source('crm', 'activities') }}
),

renamed as (
    select
        activity_id,
        opportunity_id,
        account_id,
        rep_id,
        lower(trim(activity_type)) as activity_type,
        occurred_at,
        trim(subject) as subject,

        _source_system,
        _source_file,
        _source_row,
        _loaded_at
    from source
)

select * from renamed
