with

source as (
    select * from {{ source('crm', 'activities') }}
    -- rows deleted or archived in the CRM stay in raw (nothing lost) but leave the models
    where not coalesce(_is_deleted, false)
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
