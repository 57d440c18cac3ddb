{#- Pipedrive stages are per pipeline and have no won/lost meaning (won and lost are deal
    statuses): the canonical stages are the pipelines' stages in pipeline order, named per
    map_settings.stage_label, then the won and lost stages of map_settings, all overridable
    per stage by map_stages. Stage names come from int_pipedrive__stage_names, as in
    stg_pipedrive__opportunities and stg_pipedrive__stage_history. -#}
with

-- each stage_id's canonical stage name and its position in pipeline order
stage_names as (
    select * from {{ ref('int_pipedrive__stage_names') }}
),

closing as (
    -- the won and lost stages (deal statuses in Pipedrive), from the configuration
    select
        value as stage,
        key = 'won_stage' as is_won,
        case when key = 'won_stage' then 1 else 2 end as closing_order,
        _source_system,
        _source_file,
        _source_row,
        _loaded_at
    from {{ source('pipedrive', 'map_settings') }}
    where key in ('won_stage', 'lost_stage') and value is not null
),

pipeline_stages as (
    -- one row per name: stages sharing a name (stage_label 'stage') are one canonical stage
    select
        stage,
        row_number() over (order by stage_position) as stage_order,
        _source_system,
        _source_file,
        _source_row,
        _loaded_at,
        _is_deleted
    from (
        select
            stage_names.*,
            row_number() over (partition by stage order by coalesce(_is_deleted, false), stage_position) as nth
        from stage_names
    ) as firsts
    where nth = 1
),

combined as (
    select
        p.stage,
        p.stage_order,
        c.stage is not null as is_closed,
        coalesce(c.is_won, false) as is_won,
        p._source_system,
        p._source_file,
        p._source_row,
        p._loaded_at,
        p._is_deleted
    from pipeline_stages as p
    left join closing as c on c.stage = p.stage

    union all

    select
        c.stage,
        (select count(*) from pipeline_stages)
            + row_number() over (order by c.closing_order) as stage_order,
        true as is_closed,
        c.is_won,
        c._source_system,
        c._source_file,
        c._source_row,
        c._loaded_at,
        false as _is_deleted
    from closing as c
    where c.stage not in (select stage from pipeline_stages)
),

overridden as (
    select
        cast(s.stage as varchar) as stage,
        cast(coalesce(o.stage_order, s.stage_order) as bigint) as stage_order,
        cast(coalesce(o.is_closed, s.is_closed) as boolean) as is_closed,
        cast(coalesce(o.is_won, s.is_won) as boolean) as is_won,

        cast(s._source_system as varchar) as _source_system,
        cast(s._source_file as varchar) as _source_file,
        cast(s._source_row as bigint) as _source_row,
        cast(s._loaded_at as timestamp) as _loaded_at,
        cast(coalesce(s._is_deleted, false) as boolean) as _is_deleted
    from combined as s
    left join {{ source('pipedrive', 'map_stages') }} as o on o.stage = s.stage
)

select * from overridden
