{#- One row each time a deal entered a stage, from its change log (deal_changes):
      - its creation stage at add_time (the first stage change's old value, else its stage_id);
      - each stage_id change while the deal is open (a change back to the same stage is no entry);
      - each status change to won or lost (the configured won/lost stage), and back to open (the
        stage it was in);
      - a won/lost deal whose log shows no close (e.g. imported as won): its close, at won/lost time.
    A deleted deal's rows carry _is_deleted. -#}
with

settings as (
    select
        max(case when key = 'won_stage' then value end) as won_stage,
        max(case when key = 'lost_stage' then value end) as lost_stage
    from {{ source('pipedrive', 'map_settings') }}
),

-- stage_id -> canonical stage name
stage_names as (
    select * from {{ ref('int_pipedrive__stage_names') }}
),

deals as (
    select * from {{ source('pipedrive', 'deals') }}
),

changes as (
    select
        c.*,
        row_number() over (partition by c.deal_id order by c.log_time, c.seq, c.id) as ord
    from {{ source('pipedrive', 'deal_changes') }} as c
    inner join deals as d on d.id = c.deal_id
    where c.field_key in ('stage_id', 'status')
),

first_stage_change as (
    select deal_id, coalesce(nullif(old_value, ''), new_value) as stage_id
    from (
        select
            deal_id,
            old_value,
            new_value,
            row_number() over (partition by deal_id order by ord) as nth
        from changes
        where field_key = 'stage_id'
    ) as stage_changes
    where nth = 1
),

created as (
    select
        d.id as deal_id,
        coalesce(f.stage_id, d.stage_id) as stage_id
    from deals as d
    left join first_stage_change as f on f.deal_id = d.id
),

stepped as (
    -- the stage and the status each change found the deal in
    select
        c.*,
        coalesce(
            {{ last_non_null("case when c.field_key = 'stage_id' then c.new_value end",
                "partition by c.deal_id order by c.ord rows between unbounded preceding and 1 preceding") }},
            created.stage_id
        ) as stage_before,
        coalesce(
            {{ last_non_null("case when c.field_key = 'status' then c.new_value end",
                "partition by c.deal_id order by c.ord rows between unbounded preceding and 1 preceding") }},
            'open'
        ) as status_before
    from changes as c
    inner join created on created.deal_id = c.deal_id
),

entries as (
    select
        id as stage_history_id,
        deal_id,
        case
            when field_key = 'stage_id' then new_value
            when field_key = 'status' and new_value = 'open' then stage_before
        end as stage_id,
        case when field_key = 'status' and new_value in ('won', 'lost') then new_value end as closed_as,
        log_time as entered_at,
        _source_system,
        _source_file,
        _source_row,
        _loaded_at,
        _is_deleted
    from stepped
    where (field_key = 'stage_id' and new_value is distinct from stage_before and status_before = 'open')
        or (field_key = 'status' and new_value in ('won', 'lost') and new_value is distinct from status_before)
        or (field_key = 'status' and new_value = 'open' and status_before in ('won', 'lost'))
),

events as (
    select
        d.id || ':created' as stage_history_id,
        d.id as deal_id,
        created.stage_id,
        cast(null as varchar) as closed_as,
        d.add_time as entered_at,
        d._source_system,
        d._source_file,
        d._source_row,
        d._loaded_at,
        d._is_deleted
    from deals as d
    inner join created on created.deal_id = d.id

    union all

    select * from entries

    union all

    select
        d.id || ':closed:' || d.status as stage_history_id,
        d.id as deal_id,
        cast(null as varchar) as stage_id,
        d.status as closed_as,
        coalesce(case when d.status = 'won' then d.won_time else d.lost_time end, d.close_time) as entered_at,
        d._source_system,
        d._source_file,
        d._source_row,
        d._loaded_at,
        d._is_deleted
    from deals as d
    where d.status in ('won', 'lost')
        and not exists (select 1 from entries as e where e.deal_id = d.id and e.closed_as is not null)
),

mapped as (
    select
        e.stage_history_id,
        e.deal_id as opportunity_id,
        case e.closed_as
            when 'won' then settings.won_stage
            when 'lost' then settings.lost_stage
            else stage_names.stage
        end as stage,
        e.entered_at,
        e._source_system,
        e._source_file,
        e._source_row,
        e._loaded_at,
        coalesce(e._is_deleted, false) or coalesce(d._is_deleted, false) as _is_deleted
    from events as e
    inner join deals as d on d.id = e.deal_id
    cross join settings
    left join stage_names on stage_names.stage_id = e.stage_id
),

final as (
    select
        cast(stage_history_id as varchar) as stage_history_id,
        cast(opportunity_id as varchar) as opportunity_id,
        cast(stage as varchar) as stage,
        cast(entered_at as timestamp) as entered_at,

        cast(_source_system as varchar) as _source_system,
        cast(_source_file as varchar) as _source_file,
        cast(_source_row as bigint) as _source_row,
        cast(_loaded_at as timestamp) as _loaded_at,
        cast(_is_deleted as boolean) as _is_deleted
    from mapped
    -- a stage unknown here (quarantined at landing, or deleted since) or no time: no entry
    where stage is not null and entered_at is not null
)

select * from final
