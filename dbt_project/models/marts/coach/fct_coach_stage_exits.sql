-- One row per completed stage stint of a closed deal, with what the deal had done by the time it
-- left the stage: which buying roles it had engaged, how many people, and what happened in the
-- stint (a meeting, a decision-maker meeting, a champion touch in the 14 days before the exit).
-- The deal coach compares an open deal with the team's won deals at the same segment x stage
-- (semantic model coach_stage_exits) and ranks the stage playbook's actions by these shares.
with stints as (
    select stage_history_id, opportunity_id, segment, stage, entered_at, exited_at, deal_outcome, deal_closed_at
    from {{ ref('fct_stage_history') }}
    where exited_at is not null and deal_outcome in ('won', 'lost')
),

touches as (
    -- every contact touched on a deal, with the activity's type and time
    select a.opportunity_id, a.activity_type, a.occurred_at, b.contact_id, c.buying_role
    from {{ ref('fct_activities') }} a
    inner join {{ ref('bridge_activity_contacts') }} b on b.activity_id = a.activity_id
    inner join {{ ref('dim_contacts') }} c on c.contact_id = b.contact_id
    where a.opportunity_id is not null
),

by_exit as (
    select
        s.stage_history_id,
        count(distinct t.contact_id) as contacts_engaged,
        max(case when t.buying_role = 'decision_maker' then 1 else 0 end) as had_decision_maker,
        max(case when t.buying_role = 'champion' then 1 else 0 end) as had_champion,
        max(case when t.buying_role = 'influencer' then 1 else 0 end) as had_influencer,
        max(case when t.buying_role = 'technical_evaluator' then 1 else 0 end) as had_technical_evaluator,
        max(case when t.buying_role = 'user' then 1 else 0 end) as had_user,
        max(case when t.activity_type = 'meeting' and t.buying_role = 'decision_maker'
                  and t.occurred_at >= s.entered_at then 1 else 0 end) as dm_meeting_in_stage,
        max(case when t.buying_role = 'champion' and t.occurred_at > s.exited_at - interval '14 days'
                 then 1 else 0 end) as champion_touch_before_exit
    from stints s
    inner join touches t
        on t.opportunity_id = s.opportunity_id
       and t.occurred_at <= s.exited_at
    group by s.stage_history_id
),

meetings as (
    select
        s.stage_history_id,
        max(case when a.occurred_at >= s.entered_at then 1 else 0 end) as meeting_in_stage,
        max(case when a.occurred_at > s.exited_at - interval '14 days' then 1 else 0 end) as meeting_before_exit
    from stints s
    inner join {{ ref('fct_activities') }} a
        on a.opportunity_id = s.opportunity_id
       and a.activity_type = 'meeting'
       and a.occurred_at <= s.exited_at
    group by s.stage_history_id
)

select
    s.stage_history_id,
    s.opportunity_id,
    s.segment,
    s.stage,
    s.entered_at,
    s.exited_at,
    s.deal_closed_at,
    s.deal_outcome = 'won' as is_won,
    coalesce(e.contacts_engaged, 0) as contacts_engaged,
    coalesce(e.contacts_engaged, 0) >= 2 as is_multithreaded,
    coalesce(e.had_decision_maker, 0) = 1 as had_decision_maker,
    coalesce(e.had_champion, 0) = 1 as had_champion,
    coalesce(e.had_influencer, 0) = 1 as had_influencer,
    coalesce(e.had_technical_evaluator, 0) = 1 as had_technical_evaluator,
    coalesce(e.had_user, 0) = 1 as had_user,
    coalesce(e.dm_meeting_in_stage, 0) = 1 as dm_meeting_in_stage,
    coalesce(e.champion_touch_before_exit, 0) = 1 as champion_touch_before_exit,
    coalesce(m.meeting_in_stage, 0) = 1 as meeting_in_stage,
    coalesce(m.meeting_before_exit, 0) = 1 as meeting_before_exit
from stints s
left join by_exit e on e.stage_history_id = s.stage_history_id
left join meetings m on m.stage_history_id = s.stage_history_id
