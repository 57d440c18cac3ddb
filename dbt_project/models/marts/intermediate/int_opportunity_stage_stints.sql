{#-
  Stage history collapsed into stints: one row per uninterrupted stay of a deal
  in a stage. Salesforce's OpportunityHistory writes a row on every field change
  and repeats the stage, so consecutive rows with the same stage are one stint
  (gaps and islands). Ties on entered_at are broken by stage_history_id so the
  result is deterministic.
-#}
with

stage_history as (
    {{ union_staging('stage_history') }}
),

ordered as (
    select
        stage_history_id,
        opportunity_id,
        stage,
        entered_at,
        _source_system,
        lag(stage) over (
            partition by opportunity_id
            order by entered_at, stage_history_id
        ) as previous_stage
    from stage_history
),

flagged as (
    select
        *,
        case
            when previous_stage is null or previous_stage <> stage then 1
            else 0
        end as starts_stint
    from ordered
),

numbered as (
    select
        *,
        sum(starts_stint) over (
            partition by opportunity_id
            order by entered_at, stage_history_id
            rows between unbounded preceding and current row
        ) as stint_number
    from flagged
),

stint_sizes as (
    select
        opportunity_id,
        stint_number,
        count(*) as history_rows
    from numbered
    group by opportunity_id, stint_number
),

stints as (
    select
        numbered.stage_history_id,
        numbered.opportunity_id,
        numbered.stint_number,
        numbered.stage,
        numbered.entered_at,
        lead(numbered.entered_at) over (
            partition by numbered.opportunity_id
            order by numbered.stint_number
        ) as exited_at,
        stint_sizes.history_rows,
        numbered._source_system as source_system
    from numbered
    inner join stint_sizes
        on numbered.opportunity_id = stint_sizes.opportunity_id
        and numbered.stint_number = stint_sizes.stint_number
    where numbered.starts_stint = 1
),

final as (
    select
        stage_history_id,
        opportunity_id,
        stint_number,
        stage,
        entered_at,
        exited_at,
        exited_at is null as is_current,
        history_rows,
        source_system
    from stints
)

select * from final
