{#-
  The canonical stages: the config's list (map_stages) when it has one; otherwise the stages of
  the selected pipelines (map_pipelines; empty: all) in display order (pipelines by display order,
  then stages by theirs), archived stages left out, one per label (the first pipeline's), closed
  from metadata.isClosed and won when closed with probability 1.0.
-#}
with

pipeline_stages as (
    select * from {{ source('hubspot', 'pipeline_stages') }}
    where not coalesce(_is_deleted, false)
),

selected_pipelines as (
    select pipeline from {{ source('hubspot', 'map_pipelines') }}
),

overrides as (
    select * from {{ source('hubspot', 'map_stages') }}
),

in_scope as (
    select *
    from pipeline_stages
    where not coalesce(archived, false)
      and (
          not exists (select 1 from selected_pipelines)
          or pipeline_id in (select pipeline from selected_pipelines)
          or pipeline_label in (select pipeline from selected_pipelines)
      )
),

labelled as (
    select
        coalesce(label, stage_id) as stage,
        coalesce(is_closed, false) as is_closed,
        coalesce({{ try_cast_text('probability', 'double precision') }}, 0) >= 1.0 as is_certain,
        row_number() over (
            order by coalesce(pipeline_display_order, 0), pipeline_id, coalesce(display_order, 0), stage_id
        ) as position,
        _source_system,
        _source_file,
        _source_row,
        _loaded_at,
        _is_deleted
    from in_scope
),

first_of_each_label as (
    select
        *,
        row_number() over (partition by stage order by position) as nth
    from labelled
),

from_pipelines as (
    select
        stage,
        row_number() over (order by position) as stage_order,
        is_closed,
        is_closed and is_certain as is_won,
        _source_system,
        _source_file,
        _source_row,
        _loaded_at,
        _is_deleted
    from first_of_each_label
    where nth = 1
),

from_config as (
    select
        stage,
        stage_order,
        is_closed,
        is_won,
        _source_system,
        _source_file,
        _source_row,
        _loaded_at,
        _is_deleted
    from overrides
),

unioned as (
    select * from from_config
    union all
    select * from from_pipelines
    where not exists (select 1 from overrides)
)

select
    cast(stage as varchar) as stage,
    cast(stage_order as bigint) as stage_order,
    cast(is_closed as boolean) as is_closed,
    cast(is_won as boolean) as is_won,

    cast(_source_system as varchar) as _source_system,
    cast(_source_file as varchar) as _source_file,
    cast(_source_row as bigint) as _source_row,
    cast(_loaded_at as timestamp) as _loaded_at,
    cast(coalesce(_is_deleted, false) as boolean) as _is_deleted
from unioned
