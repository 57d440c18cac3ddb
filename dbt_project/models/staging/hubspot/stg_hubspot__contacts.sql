{#-
  Contacts, with one buying role each. The configured property (buying_role_property, default
  hs_buying_role) is multi-select: each ';'-separated value maps through map_buying_roles (exact
  value, else its upper-case form, else the value lower-cased); of several roles the one first in
  map_buying_role_priority wins (roles it does not list come last, in the order written).
-#}
{%- set columns = ['hs_buying_role', 'jobtitle', 'email', 'firstname', 'lastname'] %}
{%- set max_roles = 32 %}
with

contacts as (
    select * from {{ source('hubspot', 'contacts') }}
),

settings as (
    select
        max(case when setting = 'buying_role_property' then value end) as role_property
    from {{ source('hubspot', 'map_settings') }}
),

with_role_value as (
    select
        contacts.*,
        nullif(trim(
            case settings.role_property
            {%- for column in columns %}
                when '{{ column }}' then cast(contacts.{{ column }} as varchar)
            {%- endfor %}
                else {{ json_text('contacts._extra', 'settings.role_property') }}
            end
        ), '') as role_value
    from contacts
    cross join settings
),

positions as (
    {%- for n in range(1, max_roles + 1) %}
    select {{ n }} as position{{ ' union all' if not loop.last }}
    {%- endfor %}
),

role_values as (
    select
        with_role_value.contact_id,
        positions.position,
        trim(split_part(with_role_value.role_value, ';', positions.position)) as source_value
    from with_role_value
    cross join positions
    where with_role_value.role_value is not null
),

mapped as (
    select
        role_values.contact_id,
        role_values.position,
        coalesce(exact.buying_role, upper_cased.buying_role, lower(role_values.source_value)) as buying_role
    from role_values
    left join {{ source('hubspot', 'map_buying_roles') }} as exact
        on exact.source_value = role_values.source_value
    left join {{ source('hubspot', 'map_buying_roles') }} as upper_cased
        on upper_cased.source_value = upper(role_values.source_value)
    where coalesce(role_values.source_value, '') <> ''
),

ranked as (
    select
        mapped.contact_id,
        mapped.buying_role,
        row_number() over (
            partition by mapped.contact_id
            order by coalesce(priority.priority, {{ max_roles * 1000 }}), mapped.position
        ) as nth
    from mapped
    left join {{ source('hubspot', 'map_buying_role_priority') }} as priority
        on priority.buying_role = mapped.buying_role
)

select
    cast(with_role_value.contact_id as varchar) as contact_id,
    cast(with_role_value.associatedcompanyid as varchar) as account_id,
    cast(
        nullif(trim(coalesce(trim(with_role_value.firstname), '') || ' ' || coalesce(trim(with_role_value.lastname), '')), '')
        as varchar
    ) as contact_name,
    cast(with_role_value.jobtitle as varchar) as title,
    cast(ranked.buying_role as varchar) as buying_role,
    cast(with_role_value.email as varchar) as email,

    cast(with_role_value._source_system as varchar) as _source_system,
    cast(with_role_value._source_file as varchar) as _source_file,
    cast(with_role_value._source_row as bigint) as _source_row,
    cast(with_role_value._loaded_at as timestamp) as _loaded_at,
    cast(coalesce(with_role_value._is_deleted, false) as boolean) as _is_deleted
from with_role_value
left join ranked
    on ranked.contact_id = with_role_value.contact_id
    and ranked.nth = 1
