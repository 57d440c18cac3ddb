with

quotas as (
    select * from {{ ref('stg_crm__quotas') }}
),

reps as (
    {{ union_staging('reps') }}
),

final as (
    select
        quotas.rep_id || '|' || cast(quotas.quarter_start as {{ dbt.type_string() }}) as quota_id,
        quotas.rep_id,
        reps.manager_id,
        lower(trim(reps.segment)) as segment,
        quotas.quarter_start,
        cast({{ dbt.dateadd('month', 3, 'quotas.quarter_start') }} as date) as quarter_end,
        quotas.quota_amount,
        quotas._source_system as source_system
    from quotas
    left join reps
        on quotas.rep_id = reps.rep_id
    -- every quarter the source plans, next quarter's too: coverage late in a quarter looks ahead
)

select * from final
