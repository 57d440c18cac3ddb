with

activities as (
    {{ union_staging('activities') }}
),

opportunities as (
    select
        opportunity_id,
        account_id,
        owner_rep_id,
        segment
    from {{ ref('fct_opportunities') }}
),

accounts as (
    {{ union_staging('accounts') }}
),

reps as (
    {{ union_staging('reps') }}
),

stints as (
    select
        opportunity_id,
        stage,
        entered_at,
        exited_at
    from {{ ref('int_opportunity_stage_stints') }}
),

final as (
    select
        activities.activity_id,
        activities.opportunity_id,
        coalesce(activities.account_id, opportunities.account_id) as account_id,
        coalesce(activities.rep_id, opportunities.owner_rep_id) as rep_id,
        activities.activity_type,
        activities.occurred_at,
        activities.subject,
        coalesce(opportunities.segment, accounts.segment, reps.segment) as segment,
        -- The stint the activity fell in; null before the first known stage entry.
        stints.stage as stage_at_activity,
        activities._source_system as source_system
    from activities
    left join opportunities
        on activities.opportunity_id = opportunities.opportunity_id
    left join accounts
        on coalesce(activities.account_id, opportunities.account_id) = accounts.account_id
    left join reps
        on coalesce(activities.rep_id, opportunities.owner_rep_id) = reps.rep_id
    left join stints
        on activities.opportunity_id = stints.opportunity_id
        and activities.occurred_at >= stints.entered_at
        -- not "exited_at is null or ...": an OR here turns the join into a nested loop
        and activities.occurred_at < coalesce(stints.exited_at, cast('9999-12-31 00:00:00' as {{ dbt.type_timestamp() }}))
    -- an activity on a deal that is not in the marts (quarantined) stays in staging only
    where activities.opportunity_id is null or opportunities.opportunity_id is not null
)

select * from final
