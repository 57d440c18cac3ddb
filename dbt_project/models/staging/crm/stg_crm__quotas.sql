with

source as (
    -- the active source's rows: raw.quotas, or a native CRM's stg_<crm>__quotas (macros/landed.sql)
    select * from ({{ landed('quotas') }}) as landed
    -- rows deleted or archived in the CRM stay in raw (nothing lost) but leave the models
    where not coalesce(_is_deleted, false)
),

renamed as (
    select
        rep_id,
        quarter_start,
        quota_amount,

        _source_system,
        _source_file,
        _source_row,
        _loaded_at
    from source
)

select * from renamed
