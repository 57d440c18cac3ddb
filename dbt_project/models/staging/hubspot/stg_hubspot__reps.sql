{#-
  Reps: every owner, archived ones kept as inactive (they still own historical deals).
  Manager and segment from the owner's map_owners entry (by id or email), else from its first
  team in map_teams (primary team first, by team id or name), segment else default_rep_segment;
  a manager named by email resolves to that owner's id; nobody manages themself.
-#}
with

owners as (
    select * from {{ source('hubspot', 'owners') }}
    where not coalesce(_is_deleted, false)
),

owner_teams as (
    select * from {{ source('hubspot', 'owner_teams') }}
    where not coalesce(_is_deleted, false)
),

settings as (
    select
        max(case when setting = 'default_rep_segment' then value end) as default_rep_segment
    from {{ source('hubspot', 'map_settings') }}
),

owner_refs as (
    select lower(owner_id) as ref, owner_id, 0 as by_email from owners
    union all
    select lower(trim(email)) as ref, owner_id, 1 as by_email from owners
    where nullif(trim(email), '') is not null
),

resolved_refs as (
    select ref, min(owner_id) as owner_id
    from owner_refs
    group by ref
),

owner_overrides as (
    select
        owner_refs.owner_id,
        nullif(trim(map_owners.manager), '') as manager,
        nullif(trim(map_owners.segment), '') as segment,
        map_owners.slack_user_id,
        map_owners.hired_on,
        row_number() over (partition by owner_refs.owner_id order by owner_refs.by_email, map_owners.owner) as nth
    from {{ source('hubspot', 'map_owners') }} as map_owners
    inner join owner_refs on owner_refs.ref = lower(trim(map_owners.owner))
),

team_settings as (
    select
        owner_teams.owner_id,
        nullif(trim(map_teams.manager), '') as manager,
        nullif(trim(map_teams.segment), '') as segment,
        row_number() over (
            partition by owner_teams.owner_id
            order by
                case when coalesce(owner_teams.is_primary, false) then 0 else 1 end,
                owner_teams.position,
                case when map_teams.team = owner_teams.team_id then 0 else 1 end
        ) as nth
    from owner_teams
    inner join {{ source('hubspot', 'map_teams') }} as map_teams
        on map_teams.team = owner_teams.team_id
        or map_teams.team = owner_teams.team_name
),

combined as (
    select
        owners.*,
        nullif(trim(coalesce(trim(owners.first_name), '') || ' ' || coalesce(trim(owners.last_name), '')), '') as full_name,
        coalesce(owner_overrides.manager, team_settings.manager) as manager_ref,
        coalesce(owner_overrides.segment, team_settings.segment, settings.default_rep_segment) as segment,
        owner_overrides.slack_user_id,
        owner_overrides.hired_on
    from owners
    cross join settings
    left join owner_overrides
        on owner_overrides.owner_id = owners.owner_id
        and owner_overrides.nth = 1
    left join team_settings
        on team_settings.owner_id = owners.owner_id
        and team_settings.nth = 1
),

with_manager as (
    select
        combined.*,
        coalesce(resolved_refs.owner_id, combined.manager_ref) as manager_id
    from combined
    left join resolved_refs on resolved_refs.ref = lower(combined.manager_ref)
)

select
    cast(owner_id as varchar) as rep_id,
    cast(coalesce(full_name, email) as varchar) as rep_name,
    cast(email as varchar) as email,
    cast(slack_user_id as varchar) as slack_user_id,
    cast(case when manager_id = owner_id then null else manager_id end as varchar) as manager_id,
    cast(segment as varchar) as segment,
    cast(hired_on as date) as hired_on,
    cast(not coalesce(archived, false) as boolean) as is_active,

    cast(_source_system as varchar) as _source_system,
    cast(_source_file as varchar) as _source_file,
    cast(_source_row as bigint) as _source_row,
    cast(_loaded_at as timestamp) as _loaded_at,
    cast(coalesce(_is_deleted, false) as boolean) as _is_deleted
from with_manager
