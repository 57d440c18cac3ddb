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
        -- unknown is not inactive: a source without an active flag leaves every rep active
        -- (the landing report names the absent field)
        coalesce(is_active, true) as is_active,

        _source_system,
        _source_file,
        _source_row,
        _loaded_at
    from source
),

-- A users/teams file often lists managers beside their reps: someone whom another rep reports
-- to, who is a manager and owns no deal, is a manager, not a rep.
managers_only as (
    select m.manager_id
    from {{ ref('stg_crm__managers') }} as m
    where m.manager_id in (select manager_id from source where manager_id is not null and manager_id <> rep_id)
        and m.manager_id not in (
            select owner_rep_id from {{ ref('stg_crm__opportunities') }} where owner_rep_id is not null
        )
)

select * from renamed
where rep_id not in (select manager_id from managers_only)
