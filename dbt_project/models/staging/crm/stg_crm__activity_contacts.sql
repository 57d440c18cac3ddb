with

source as (
    select * from {{ source('crm', 'activity_contacts') }}
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
