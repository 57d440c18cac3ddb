-- A deal's stints tile its history: each stint exits exactly when the next one is entered.
with stints as (
    select
        opportunity_id,
        stint_number,
        exited_at,
        lead(entered_at) over (partition by opportunity_id order by stint_number) as next_entered_at
    from {{ ref('fct_stage_history') }}
)

select *
from stints
where next_entered_at is not null
    and (exited_at is null or exited_at <> next_entered_at)
