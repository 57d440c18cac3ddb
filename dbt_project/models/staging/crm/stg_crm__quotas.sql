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
),

-- The quotas file beside the source (issue 14): a file row wins over the CRM's quota for the same
-- rep and quarter.
file_quotas as (
    select
        rep_id,
        quarter_start,
        quota_amount,
        'quotas_file' as _source_system,
        _source_file,
        _source_row,
        cast(null as {{ dbt.type_timestamp() }}) as _loaded_at
    from {{ ref('stg_crm__quota_file') }}
)

select * from renamed
where not exists (
    select 1 from file_quotas as f where f.rep_id = renamed.rep_id and f.quarter_start = renamed.quarter_start
)
union all
select
    rep_id,
    quarter_start,
    sum(quota_amount) as quota_amount,
    min(_source_system) as _source_system,
    min(_source_file) as _source_file,
    min(_source_row) as _source_row,
    min(_loaded_at) as _loaded_at
from file_quotas
group by rep_id, quarter_start
