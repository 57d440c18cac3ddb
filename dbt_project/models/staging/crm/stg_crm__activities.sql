with

source as (
    -- the active source's rows: raw.activities, or a native CRM's stg_<crm>__activities (macros/landed.sql)
    select * from ({{ landed('activities') }}) as landed
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
