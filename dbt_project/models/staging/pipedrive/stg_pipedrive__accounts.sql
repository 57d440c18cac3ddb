{#- Organizations. Segment: the custom field map_custom_fields names (organization/segment), else
    the band of map_segment_bands the employee count falls in (first band whose bound is above it;
    the unbounded band otherwise), the count being the employees custom field, else people_count.
    Industry and employees from their custom fields; tags: the labels through map_org_labels.
    (split_to_array/unnest/generate_subscripts: DuckDB and PostgreSQL, macros/portable.sql.) -#}
with

orgs as (
    select * from {{ source('pipedrive', 'organizations') }}
),

custom as (
    select
        v.org_id,
        max(case when f.purpose = 'segment' then v.value end) as segment_value,
        max(case when f.purpose = 'employees' then v.value end) as employees_value,
        max(case when f.purpose = 'industry' then v.value end) as industry_value
    from {{ source('pipedrive', 'organization_custom_fields') }} as v
    inner join {{ source('pipedrive', 'map_custom_fields') }} as f
        on f.entity = 'organization' and f.field_key = v.field_key
    where not coalesce(v._is_deleted, false)  -- a deleted record's values map to nothing
    group by v.org_id
),

sized as (
    select
        o.*,
        nullif(trim(c.segment_value), '') as segment_value,
        nullif(trim(c.industry_value), '') as industry,
        cast({{ try_cast_text('c.employees_value', 'double precision') }} as bigint) as employees
    from orgs as o
    left join custom as c on c.org_id = o.id
),

banded as (
    select org_id, segment
    from (
        select
            s.id as org_id,
            b.segment,
            row_number() over (
                partition by s.id
                order by case when b.below_employees is null then 1 else 0 end, b.below_employees, b.band
            ) as nth
        from sized as s
        inner join {{ source('pipedrive', 'map_segment_bands') }} as b
            on b.below_employees is null or coalesce(s.employees, s.people_count) < b.below_employees
        where coalesce(s.employees, s.people_count) is not null
    ) as candidates
    where nth = 1
),

labels as (
    select
        org_id,
        {{ dbt.listagg('coalesce(m.tag, l.label_id)', "';'", 'order by l.pos') }} as tags
    from (
        select
            id as org_id,
            trim(unnest({{ split_to_array('label_ids', "','") }})) as label_id,
            generate_subscripts({{ split_to_array('label_ids', "','") }}, 1) as pos
        from orgs
        where label_ids is not null and label_ids <> ''
    ) as l
    left join {{ source('pipedrive', 'map_org_labels') }} as m on m.label_id = l.label_id
    group by org_id
),

final as (
    select
        cast(s.id as varchar) as account_id,
        cast(s.name as varchar) as account_name,
        cast(coalesce(s.segment_value, b.segment) as varchar) as segment,
        cast(s.industry as varchar) as industry,
        cast(s.employees as bigint) as employees,
        cast(l.tags as varchar) as tags,

        cast(s._source_system as varchar) as _source_system,
        cast(s._source_file as varchar) as _source_file,
        cast(s._source_row as bigint) as _source_row,
        cast(s._loaded_at as timestamp) as _loaded_at,
        cast(coalesce(s._is_deleted, false) as boolean) as _is_deleted
    from sized as s
    left join banded as b on b.org_id = s.id
    left join labels as l on l.org_id = s.id
)

select * from final
