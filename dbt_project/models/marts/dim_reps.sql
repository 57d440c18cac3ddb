with

reps as (
    {{ union_staging('reps') }}
),

quotas as (
    {{ union_staging('quotas') }}
),

-- The quota of the quarter containing the as-of date. Quarters are taken from
-- quarter_start, so fiscal quarters that start in any month work.
current_quotas as (
    select
        rep_id,
        quarter_start,
        quota_amount,
        row_number() over (partition by rep_id order by quarter_start desc) as recency
    from quotas
    where quarter_start <= {{ as_of_date() }}
        and {{ as_of_date() }} < {{ dbt.dateadd('month', 3, 'quarter_start') }}
),

final as (
    select
        reps.rep_id,
        reps.rep_name,
        reps.email,
        reps.slack_user_id,
        reps.manager_id,
        reps.segment,
        reps.hired_on,
        reps.is_active,
        current_quotas.quota_amount as quarterly_quota,
        current_quotas.quarter_start as quota_quarter_start,
        reps._source_system as source_system
    from reps
    left join current_quotas
        on reps.rep_id = current_quotas.rep_id
        and current_quotas.recency = 1
)

select * from final
