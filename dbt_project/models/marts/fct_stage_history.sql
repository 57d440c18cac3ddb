with

stints as (
    select * from {{ ref('int_opportunity_stage_stints') }}
),

stages as (
    {{ union_staging('stages') }}
),

opportunities as (
    select
        opportunity_id,
        segment,
        outcome,
        closed_at,
        cycle_days
    from {{ ref('fct_opportunities') }}
),

activities as (
    {{ union_staging('activities') }}
),

-- Activities of the deal during the stint: [entered_at, exited_at), and for the
-- current stint up to the end of the as-of day.
stint_activities as (
    select
        stints.stage_history_id,
        count(activities.activity_id) as activities_count,
        sum(case when activities.activity_type = 'meeting' then 1 else 0 end) as meetings_count
    from stints
    inner join activities
        on stints.opportunity_id = activities.opportunity_id
        and activities.occurred_at >= stints.entered_at
        and activities.occurred_at < coalesce(stints.exited_at, {{ as_of_upper_bound() }})
    group by stints.stage_history_id
),

final as (
    select
        stints.stage_history_id,
        stints.opportunity_id,
        opportunities.segment,
        stints.stage,
        stages.stage_order,
        stints.stint_number,
        stints.entered_at,
        stints.exited_at,
        case
            when not stints.is_current then {{ whole_days_between('stints.entered_at', 'stints.exited_at') }}
        end as duration_days,
        stints.is_current,
        stints.history_rows,
        coalesce(opportunities.outcome, 'open') as deal_outcome,
        coalesce(stint_activities.meetings_count, 0) as meetings_count,
        coalesce(stint_activities.activities_count, 0) as activities_count,
        opportunities.closed_at as deal_closed_at,
        -- The cycle curve by stage: won deals that passed through this stage.
        case when opportunities.outcome = 'won' then opportunities.cycle_days end as won_cycle_days,
        case
            when opportunities.outcome = 'won'
                then {{ whole_days_between('stints.entered_at', 'opportunities.closed_at') }}
        end as won_days_to_close,
        stints.source_system
    from stints
    left join stages
        on stints.stage = stages.stage
    -- History of a deal that is not in the marts (quarantined at landing) stays in raw and
    -- staging, where a warn-level test reports it, but cannot enter the marts as an orphan.
    inner join opportunities
        on stints.opportunity_id = opportunities.opportunity_id
    left join stint_activities
        on stints.stage_history_id = stint_activities.stage_history_id
)

select * from final
