with

source as (
    select * from {{ source('crm', 'activity_contacts') }}
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
