with

source as (
    -- the active source's rows: raw.opportunities, or a native CRM's stg_<crm>__opportunities (macros/landed.sql)
    select * from ({{ landed('opportunities') }}) as landed
    -- rows deleted or archived in the CRM stay in raw (nothing lost) but leave the models
    where not coalesce(_is_deleted, false)
),

renamed as (
    select
        opportunity_id,
        account_id,
        owner_rep_id,
        trim(opportunity_name) as opportunity_name,
        trim(stage) as stage,
        amount,
        created_at,
        close_date,
        is_closed,
        is_won,
        closed_at,
        next_step,
        nullif(trim(source_url), '') as source_url,
        nullif(trim(loss_reason), '') as loss_reason,

        _source_system,
        _source_file,
        _source_row,
        _loaded_at
    from source
)

select * from renamed
