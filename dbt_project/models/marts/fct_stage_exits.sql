-- One row per completed stage stint of a closed deal: was the exit late (past the segment x stage p75 of
-- completed stints), and was there a meeting in the 14 days before the deal left the stage. The remedy
-- curve for stalled_in_stage: how deals that left a stage late still won, and what preceded the exit.
with stints as (
    select stage_history_id, opportunity_id, segment, stage, exited_at, duration_days, deal_outcome, deal_closed_at
    from {{ ref('fct_stage_history') }}
    where exited_at is not null and deal_outcome in ('won', 'lost')
),

p75 as (
    select segment, stage, percentile_cont(0.75) within group (order by duration_days) as p75_days
    from {{ ref('fct_stage_history') }}
    where exited_at is not null
    group by segment, stage
),

meetings_before_exit as (
    select s.stage_history_id, count(*) as meetings
    from stints s
    inner join {{ ref('fct_activities') }} a
        on a.opportunity_id = s.opportunity_id
       and a.activity_type = 'meeting'
       and a.occurred_at <= s.exited_at
       and a.occurred_at > s.exited_at - interval '14 days'
    group by s.stage_history_id
)

select
    s.stage_history_id,
    s.opportunity_id,
    s.segment,
    s.stage,
    s.exited_at,
    s.deal_closed_at,
    s.duration_days,
    s.deal_outcome = 'won' as is_won,
    s.duration_days > p.p75_days as is_late_exit,
    coalesce(m.meetings, 0) > 0 as had_meeting_before_exit
from stints s
left join p75 p on p.segment = s.segment and p.stage = s.stage
left join meetings_before_exit m on m.stage_history_id = s.stage_history_id
