with

source as (
    -- the active source's rows: raw.reps, or a native CRM's stg_<crm>__reps (macros/landed.sql)
    select * from ({{ landed('reps') }}) as landed
    -- rows deleted or archived in the CRM stay in raw (nothing lost) but leave the models
    where not coalesce(_is_deleted, false)
),

renamed as (
    select
        rep_id,
        manager_id,
        trim(rep_name) as rep_name,
        trim(email) as email,
        trim(slack_user_id) as slack_user_id,
        lower(trim(segment)) as segment,
        hired_on,
        is_active,

        _source_system,
        _source_file,
        _source_row,
        _loaded_at
    from source
)

select * from renamed
