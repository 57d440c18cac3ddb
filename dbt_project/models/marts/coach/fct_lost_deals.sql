-- One row per lost deal: the stage it was lost from (its last open stage) and the reason recorded
-- in the CRM (null when none was). The deal coach's likely objections for a segment x stage are
-- the reasons of the team's deals lost there, with how often each occurred (semantic model lost_deals).
with stages as (
    {{ union_staging('stages') }}
),

lost as (
    select opportunity_id, segment, closed_at, loss_reason, amount
    from {{ ref('fct_opportunities') }}
    where is_closed and not is_won and closed_at is not null
),

last_open_stint as (
    select opportunity_id, stage,
           row_number() over (partition by opportunity_id order by entered_at desc, stint_number desc) as rn
    from {{ ref('fct_stage_history') }}
    where stage in (select stage from stages where not coalesce(is_closed, false))
)

select
    l.opportunity_id,
    l.segment,
    coalesce(s.stage, 'unknown') as lost_from_stage,
    l.loss_reason,
    l.loss_reason is not null as has_loss_reason,
    l.closed_at,
    l.amount
from lost l
left join last_open_stint s on s.opportunity_id = l.opportunity_id and s.rn = 1
