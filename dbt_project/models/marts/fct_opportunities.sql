with

opportunities as (
    {{ union_staging('opportunities') }}
),

stages as (
    {{ union_staging('stages') }}
),

accounts as (
    {{ union_staging('accounts') }}
),

reps as (
    {{ union_staging('reps') }}
),

current_stints as (
    select
        opportunity_id,
        stage,
        entered_at
    from {{ ref('int_opportunity_stage_stints') }}
    where is_current
),

resolved as (
    select
        opportunities.opportunity_id,
        opportunities.account_id,
        opportunities.owner_rep_id,
        reps.manager_id,
        opportunities.opportunity_name,
        coalesce(accounts.segment, reps.segment) as segment,
        opportunities.stage,
        stages.stage_order,
        opportunities.amount,
        opportunities.created_at,
        opportunities.close_date,
        -- The source's own flags win; a source that leaves them empty gets the stage's meaning.
        coalesce(opportunities.is_won, stages.is_won, false) as is_won,
        coalesce(opportunities.is_closed, stages.is_closed, false) as is_closed_flag,
        opportunities.closed_at as source_closed_at,
        -- Only trusted when the history agrees with the deal's current stage.
        case
            when current_stints.stage = opportunities.stage then current_stints.entered_at
        end as current_stage_entered_at,
        opportunities.next_step,
        opportunities.loss_reason,
        opportunities._source_system as source_system,
        opportunities.source_url as source_url_raw
    from opportunities
    left join stages
        on opportunities.stage = stages.stage
    left join accounts
        on opportunities.account_id = accounts.account_id
    left join reps
        on opportunities.owner_rep_id = reps.rep_id
    left join current_stints
        on opportunities.opportunity_id = current_stints.opportunity_id
),

closed as (
    select
        *,
        -- A won deal is closed, whatever an inconsistent source says.
        (is_closed_flag or is_won) as is_closed
    from resolved
),

timed as (
    select
        *,
        -- Sources without a close timestamp (Salesforce) fall back to when the
        -- deal entered its closing stage, then to the close date.
        case
            when is_closed then coalesce(
                source_closed_at,
                current_stage_entered_at,
                cast(close_date as {{ dbt.type_timestamp() }})
            )
        end as closed_at
    from closed
),

final as (
    select
        opportunity_id,
        account_id,
        owner_rep_id,
        manager_id,
        opportunity_name,
        segment,
        stage,
        stage_order,
        amount,
        created_at,
        close_date,
        is_closed,
        is_won,
        closed_at,
        case
            when is_closed then source_closed_at is null
        end as is_closed_at_derived,
        case
            when is_won then 'won'
            when is_closed then 'lost'
            else 'open'
        end as outcome,
        case
            when is_closed then {{ whole_days_between('created_at', 'closed_at') }}
        end as cycle_days,
        current_stage_entered_at,
        next_step,
        -- recorded on lost deals only (a reason left on a won or open deal is not a loss reason)
        case when is_closed and not is_won then loss_reason end as loss_reason,
        source_system,
        coalesce(
            source_url_raw,
            {{ dbt.concat([dbt.string_literal(var('crm_base_url')), 'opportunity_id']) }}
        ) as source_url
    from timed
)

select * from final
