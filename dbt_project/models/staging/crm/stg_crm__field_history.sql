with

source as (
    select * from {{ source('crm', 'field_history') }}
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
