{#- Persons. Buying role: the value of the custom field map_custom_fields names (person/buying_role),
    each of its comma-separated options read through map_buying_role_options, its label (lower case)
    through map_buying_roles (other labels: lower case, spaces as underscores); a person with several
    roles gets the one of best priority (1 first; unmapped labels last, then the field's order).
    Title: the custom field named person/title, else job_title. (split_to_array/unnest: DuckDB and PostgreSQL, macros/portable.sql.) -#}
with

persons as (
    select * from {{ source('pipedrive', 'persons') }}
),

custom as (
    select
        v.person_id,
        max(case when f.purpose = 'buying_role' then v.value end) as role_value,
        max(case when f.purpose = 'title' then v.value end) as title_value,
        max(case when f.purpose = 'title' then 1 else 0 end) as has_title_field
    from {{ source('pipedrive', 'person_custom_fields') }} as v
    inner join {{ source('pipedrive', 'map_custom_fields') }} as f
        on f.entity = 'person' and f.field_key = v.field_key
    where not coalesce(v._is_deleted, false)  -- a deleted record's values map to nothing
    group by v.person_id
),

role_values as (
    select
        person_id,
        trim(unnest({{ split_to_array('role_value', "','") }})) as option_value,
        generate_subscripts({{ split_to_array('role_value', "','") }}, 1) as pos
    from custom
    where role_value is not null
),

roles as (
    select
        v.person_id,
        v.pos,
        lower(trim(coalesce(o.label, v.option_value))) as label
    from role_values as v
    left join {{ source('pipedrive', 'map_buying_role_options') }} as o on o.option_id = v.option_value
    where v.option_value <> ''
),

ranked as (
    select
        r.person_id,
        coalesce(m.buying_role, replace(r.label, ' ', '_')) as buying_role,
        row_number() over (partition by r.person_id order by coalesce(m.priority, 1000000), r.pos) as nth
    from roles as r
    left join {{ source('pipedrive', 'map_buying_roles') }} as m on m.source_value = r.label
    where r.label <> ''
),

final as (
    select
        cast(p.id as varchar) as contact_id,
        cast(p.org_id as varchar) as account_id,
        cast(p.name as varchar) as contact_name,
        cast(case when c.has_title_field = 1 then c.title_value else p.job_title end as varchar) as title,
        cast(r.buying_role as varchar) as buying_role,
        cast(p.primary_email as varchar) as email,

        cast(p._source_system as varchar) as _source_system,
        cast(p._source_file as varchar) as _source_file,
        cast(p._source_row as bigint) as _source_row,
        cast(p._loaded_at as timestamp) as _loaded_at,
        cast(coalesce(p._is_deleted, false) as boolean) as _is_deleted
    from persons as p
    left join custom as c on c.person_id = p.id
    left join ranked as r on r.person_id = p.id and r.nth = 1
)

select * from final
