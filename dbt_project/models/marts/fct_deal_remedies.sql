-- One row per closed deal with what preceded its outcome: the remedies the risk rules propose
-- (a decision-maker meeting) and the risks they flag (close-date pushes, amount swings).
-- The semantic model deal_remedies turns these into "remedy curves": how often the team's
-- won deals did the thing, and how soon after it they closed.
with closed as (
    select opportunity_id, segment, is_won, closed_at, cycle_days
    from {{ ref('fct_opportunities') }}
    where is_closed and closed_at is not null
),

dm_meetings as (
    select a.opportunity_id, min(a.occurred_at) as first_dm_meeting_at
    from {{ ref('fct_activities') }} a
    inner join {{ ref('bridge_activity_contacts') }} b on b.activity_id = a.activity_id
    inner join {{ ref('dim_contacts') }} c on c.contact_id = b.contact_id
    where a.activity_type = 'meeting' and c.buying_role = 'decision_maker'
    group by a.opportunity_id
),

pushes as (
    select opportunity_id, count(*) as close_date_pushes
    from {{ ref('fct_field_history') }}
    where field_name = 'close_date'
      and {{ dbt.safe_cast("new_value", api.Column.translate_type("date")) }}
        > {{ dbt.safe_cast("old_value", api.Column.translate_type("date")) }}
    group by opportunity_id
),

swings as (
    select
        opportunity_id,
        max(
            abs({{ dbt.safe_cast("new_value", api.Column.translate_type("float")) }}
                - {{ dbt.safe_cast("old_value", api.Column.translate_type("float")) }})
            / nullif(abs({{ dbt.safe_cast("old_value", api.Column.translate_type("float")) }}), 0)
        ) as max_amount_swing
    from {{ ref('fct_field_history') }}
    where field_name = 'amount'
    group by opportunity_id
)

select
    c.opportunity_id,
    c.segment,
    c.is_won,
    c.closed_at,
    c.cycle_days,
    d.first_dm_meeting_at,
    case
        when d.first_dm_meeting_at <= c.closed_at
            then {{ dbt.datediff("d.first_dm_meeting_at", "c.closed_at", "day") }}
    end as days_dm_meeting_to_close,
    coalesce(p.close_date_pushes, 0) as close_date_pushes,
    s.max_amount_swing
from closed c
left join dm_meetings d on d.opportunity_id = c.opportunity_id and d.first_dm_meeting_at <= c.closed_at
left join pushes p on p.opportunity_id = c.opportunity_id
left join swings s on s.opportunity_id = c.opportunity_id
