{#-
  Quotas from HubSpot goals (goal_targets named like a revenue quota), as canonical quarterly
  quotas per rep (an owner). A target is assigned to a user (hs_assignee_user_id: the owner whose
  userId it is; else hubspot_owner_id) or to a team (hs_assignee_team_id: split evenly over the
  team's active owners that have no target of their own for the quarter, like a team row of the
  quotas file). A target spans whole months (monthly, quarterly, yearly; its length rounded to
  months, so portal time zones do not matter); its amount is spread evenly over them and summed
  into fiscal quarters (fiscal_year_start_month).
-#}
with

settings as (
    select coalesce(max(case when setting = 'fiscal_year_start_month' then cast(value as integer) end), 1) as fiscal_start
    from {{ source('hubspot', 'map_settings') }}
),

owners as (
    select owner_id, user_id, archived from {{ source('hubspot', 'owners') }}
    where not coalesce(_is_deleted, false)
),

targets as (
    select
        goal_target_id,
        hs_target_amount as amount,
        cast({{ dbt.date_trunc('month', dbt.dateadd('day', 1, 'hs_start_datetime')) }} as date) as first_month,
        greatest(1, cast(round(
            cast({{ dbt.datediff('hs_start_datetime', 'coalesce(hs_end_datetime, hs_start_datetime)', 'hour') }} as double precision) / 730.5
        ) as integer)) as months,
        hs_assignee_user_id,
        hs_assignee_team_id,
        hubspot_owner_id,
        _source_system,
        _source_file,
        _source_row,
        _loaded_at
    from {{ source('hubspot', 'goal_targets') }}
    where not coalesce(_is_deleted, false)
        and hs_target_amount is not null
        and hs_start_datetime is not null
),

month_numbers as (
    select n from (values
        (0), (1), (2), (3), (4), (5), (6), (7), (8), (9), (10), (11),
        (12), (13), (14), (15), (16), (17), (18), (19), (20), (21), (22), (23)
    ) as numbers (n)
),

months as (
    select
        targets.*,
        {{ fiscal_quarter_start(dbt.dateadd('month', 'month_numbers.n', 'targets.first_month'), 'settings.fiscal_start') }}
            as quarter_start,
        month_numbers.n as month_n,
        targets.amount / targets.months as month_amount
    from targets
    cross join settings
    inner join month_numbers on month_numbers.n < targets.months
),

user_rows as (
    select
        coalesce(by_user.owner_id, case when months.hs_assignee_team_id is null then months.hubspot_owner_id end) as rep_id,
        months.*
    from months
    left join owners as by_user on by_user.user_id = months.hs_assignee_user_id
    where months.hs_assignee_user_id is not null or months.hs_assignee_team_id is null
),

team_rows as (
    select
        owners.owner_id as rep_id,
        months.*,
        count(*) over (partition by months.goal_target_id, months.month_n) as members
    from months
    inner join {{ source('hubspot', 'owner_teams') }} as owner_teams
        on owner_teams.team_id = months.hs_assignee_team_id
        and not coalesce(owner_teams._is_deleted, false)
    inner join owners
        on owners.owner_id = owner_teams.owner_id
        and not coalesce(owners.archived, false)
    where months.hs_assignee_user_id is null
        and not exists (
            select 1 from user_rows as own
            where own.rep_id = owners.owner_id and own.quarter_start = months.quarter_start
        )
),

all_rows as (
    select rep_id, quarter_start, month_amount as amount, _source_system, _source_file, _source_row, _loaded_at
    from user_rows
    where rep_id is not null
    union all
    select rep_id, quarter_start, month_amount / members as amount, _source_system, _source_file, _source_row, _loaded_at
    from team_rows
)

select
    cast(rep_id as varchar) as rep_id,
    cast(quarter_start as date) as quarter_start,
    cast(sum(amount) as double precision) as quota_amount,

    cast(min(_source_system) as varchar) as _source_system,
    cast(min(_source_file) as varchar) as _source_file,
    cast(min(_source_row) as bigint) as _source_row,
    cast(max(_loaded_at) as timestamp) as _loaded_at,
    cast(false as boolean) as _is_deleted
from all_rows
group by rep_id, quarter_start
