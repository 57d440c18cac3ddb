{#-
  Managers: the owners the config names (map_managers, a team's manager in map_teams, an
  owner's manager in map_owners), each named by owner id or email (case-insensitive). Slack id
  from the owner's map_owners entry (an entry by id wins over one by email).
-#}
with

owners as (
    select * from {{ source('hubspot', 'owners') }}
    where not coalesce(_is_deleted, false)
),

-- every way the config may name an owner: its id or its email, lower-cased
owner_refs as (
    select lower(owner_id) as ref, owner_id, 0 as by_email from owners
    union all
    select lower(trim(email)) as ref, owner_id, 1 as by_email from owners
    where nullif(trim(email), '') is not null
),

named as (
    select owner as ref from {{ source('hubspot', 'map_managers') }}
    union all
    select manager as ref from {{ source('hubspot', 'map_teams') }}
    where nullif(trim(manager), '') is not null
    union all
    select manager as ref from {{ source('hubspot', 'map_owners') }}
    where nullif(trim(manager), '') is not null
),

manager_ids as (
    select distinct owner_refs.owner_id
    from named
    inner join owner_refs on owner_refs.ref = lower(trim(named.ref))
),

owner_overrides as (
    select
        owner_refs.owner_id,
        map_owners.slack_user_id,
        row_number() over (partition by owner_refs.owner_id order by owner_refs.by_email, map_owners.owner) as nth
    from {{ source('hubspot', 'map_owners') }} as map_owners
    inner join owner_refs on owner_refs.ref = lower(trim(map_owners.owner))
),

named_owners as (
    select
        owners.*,
        nullif(trim(coalesce(trim(first_name), '') || ' ' || coalesce(trim(last_name), '')), '') as full_name
    from owners
)

select
    cast(named_owners.owner_id as varchar) as manager_id,
    cast(coalesce(named_owners.full_name, named_owners.email) as varchar) as manager_name,
    cast(named_owners.email as varchar) as email,
    cast(owner_overrides.slack_user_id as varchar) as slack_user_id,

    cast(named_owners._source_system as varchar) as _source_system,
    cast(named_owners._source_file as varchar) as _source_file,
    cast(named_owners._source_row as bigint) as _source_row,
    cast(named_owners._loaded_at as timestamp) as _loaded_at,
    cast(coalesce(named_owners._is_deleted, false) as boolean) as _is_deleted
from named_owners
left join owner_overrides
    on owner_overrides.owner_id = named_owners.owner_id
    and owner_overrides.nth = 1
where named_owners.owner_id in (select owner_id from manager_ids)
