{{ config(materialized='ephemeral') }}
{#- Each Pipedrive stage (stage_id) with its canonical stage name, named per map_settings.stage_label,
    and its position in pipeline order (pipelines by order_nr, then stages by order_nr). The one
    place stg_pipedrive__stages, stg_pipedrive__opportunities and stg_pipedrive__stage_history
    resolve a stage_id to its stage. -#}
with

settings as (
    select
        coalesce(max(case when key = 'stage_label' then value end), 'auto') as stage_label
    from {{ source('pipedrive', 'map_settings') }}
),

pipelines as (
    select * from {{ source('pipedrive', 'pipelines') }}
),

native_stages as (
    select * from {{ source('pipedrive', 'stages') }}
),

name_spread as (
    -- in how many pipelines each stage name occurs ('auto' qualifies only the shared names)
    select name, count(distinct pipeline_id) as pipelines
    from native_stages
    group by name
)

select
    s.id as stage_id,
    case
        when settings.stage_label = 'pipeline_stage'
            or (settings.stage_label = 'auto' and name_spread.pipelines > 1)
            then coalesce(p.name, 'pipeline ' || s.pipeline_id) || ' / ' || coalesce(s.name, 'stage ' || s.id)
        else coalesce(s.name, 'stage ' || s.id)
    end as stage,
    row_number() over (
        order by
            coalesce(p.order_nr, 0),
            coalesce({{ dbt.safe_cast('s.pipeline_id', 'bigint') }}, 0),
            coalesce(s.order_nr, 0),
            {{ dbt.safe_cast('s.id', 'bigint') }},
            s.id
    ) as stage_position,
    s._source_system,
    s._source_file,
    s._source_row,
    s._loaded_at,
    s._is_deleted
from native_stages as s
left join pipelines as p on p.id = s.pipeline_id
left join name_spread on name_spread.name = s.name
cross join settings
