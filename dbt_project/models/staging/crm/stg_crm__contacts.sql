with

source as (
    -- the active source's rows: raw.contacts, or a native CRM's stg_<crm>__contacts (macros/landed.sql)
    select * from ({{ landed('contacts') }}) as landed
    -- rows deleted or archived in the CRM stay in raw (nothing lost) but leave the models
    where not coalesce(_is_deleted, false)
),

renamed as (
    select
        contact_id,
        account_id,
        trim(contact_name) as contact_name,
        trim(title) as title,
        -- 'Decision Maker', 'decision-maker' and 'decision_maker' are one role
        replace(replace(lower(trim(buying_role)), ' ', '_'), '-', '_') as buying_role,
        trim(email) as email,

        _source_system,
        _source_file,
        _source_row,
        _loaded_at
    from source
)

select * from renamed
