-- The quotas file (beside any CRM source), resolved to rep ids: a rep row names the rep by id, email
-- or name; a team row (a manager by id, email or name) is split evenly over the team's active reps
-- that have no row of their own for the quarter.
with

file_rows as (
    {{ quota_file_rows() }}
),

reps as (
    select rep_id, lower(email) as email, lower(rep_name) as rep_name, manager_id, is_active
    from {{ ref('stg_crm__reps') }}
),

managers as (
    select manager_id, lower(email) as email, lower(manager_name) as manager_name
    from {{ ref('stg_crm__managers') }}
),

rep_rows as (
    select reps.rep_id, f.quarter_start, f.quota_amount, f._source_file, f._source_row
    from file_rows as f
    join reps
        on lower(trim(f.rep)) in (lower(reps.rep_id), reps.email, reps.rep_name)
    where f.rep is not null
),

team_rows as (
    select m.manager_id, f.quarter_start, f.quota_amount, f._source_file, f._source_row
    from file_rows as f
    join managers as m
        on lower(trim(f.team)) in (lower(m.manager_id), m.email, m.manager_name)
    where f.team is not null
),

team_members as (
    select t.manager_id, t.quarter_start, t.quota_amount, t._source_file, t._source_row, r.rep_id
    from team_rows as t
    join reps as r
        on r.manager_id = t.manager_id and r.is_active
    where not exists (
        select 1 from rep_rows as own where own.rep_id = r.rep_id and own.quarter_start = t.quarter_start
    )
),

team_split as (
    select
        rep_id,
        quarter_start,
        quota_amount / count(*) over (partition by manager_id, quarter_start, _source_row) as quota_amount,
        _source_file,
        _source_row
    from team_members
)

select rep_id, quarter_start, quota_amount, _source_file, _source_row from rep_rows
union all
select rep_id, quarter_start, quota_amount, _source_file, _source_row from team_split
