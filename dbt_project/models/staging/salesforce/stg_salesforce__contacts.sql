-- Contact -> contacts. buying_role: each live (not deleted) OpportunityContactRole.Role of the
-- contact through map_buying_roles (unmapped roles get the default role); a contact with several
-- roles gets the one ranked first in map_buying_role_priority (unranked roles after the ranked
-- ones, alphabetically); a contact without roles gets the default role.

with

contact as (
    select * from {{ source('salesforce', 'contact') }}
),

contact_role as (
    select * from {{ source('salesforce', 'opportunity_contact_role') }}
    where not coalesce(_is_deleted, false)
),

role_map as (
    select * from {{ source('salesforce', 'map_buying_roles') }}
),

priority as (
    select * from {{ source('salesforce', 'map_buying_role_priority') }}
),

default_role as (
    select max(case when is_default then buying_role end) as buying_role
    from priority
),

roles as (
    select
        contact_role.contact_id,
        coalesce(role_map.buying_role, default_role.buying_role) as buying_role
    from contact_role
    cross join default_role
    left join role_map
        on role_map.source_value = contact_role.role
    where contact_role.contact_id is not null
),

ranked as (
    select
        roles.contact_id,
        roles.buying_role,
        row_number() over (
            partition by roles.contact_id
            order by
                case when priority.priority is null then 1 else 0 end,
                priority.priority,
                roles.buying_role
        ) as role_rank
    from roles
    left join priority
        on priority.buying_role = roles.buying_role
)

select
    cast(contact.id as varchar) as contact_id,
    cast(contact.account_id as varchar) as account_id,
    cast(contact.name as varchar) as contact_name,
    cast(contact.title as varchar) as title,
    cast(coalesce(ranked.buying_role, default_role.buying_role) as varchar) as buying_role,
    cast(contact.email as varchar) as email,

    cast(contact._source_system as varchar) as _source_system,
    cast(contact._source_file as varchar) as _source_file,
    cast(contact._source_row as bigint) as _source_row,
    cast(contact._loaded_at as timestamp) as _loaded_at,
    cast(coalesce(contact._is_deleted, false) as boolean) as _is_deleted
from contact
cross join default_role
left join ranked
    on ranked.contact_id = contact.id
    and ranked.role_rank = 1
