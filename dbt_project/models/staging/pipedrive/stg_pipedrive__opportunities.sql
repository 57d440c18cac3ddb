{#- Deals. An open deal is in its stage_id's stage (named as in stg_pipedrive__stages); a won or
    lost deal is in the configured won/lost stage, closed at its won/lost time. source_url links
    to the deal in the company's Pipedrive (map_settings.company_domain). -#}
with

settings as (
    select
        max(case when key = 'won_stage' then value end) as won_stage,
        max(case when key = 'lost_stage' then value end) as lost_stage,
        max(case when key = 'company_domain' then value end) as company_domain
    from {{ source('pipedrive', 'map_settings') }}
),

-- stage_id -> canonical stage name
stage_names as (
    select * from {{ ref('int_pipedrive__stage_names') }}
),

deals as (
    select * from {{ source('pipedrive', 'deals') }}
),

mapped as (
    select
        d.id as opportunity_id,
        d.org_id as account_id,
        d.owner_id as owner_rep_id,
        d.title as opportunity_name,
        case d.status
            when 'won' then settings.won_stage
            when 'lost' then settings.lost_stage
            else stage_names.stage
        end as stage,
        d.value as amount,
        d.add_time as created_at,
        d.expected_close_date as close_date,
        -- 'deleted' (or an unknown status) says nothing of closed/won: the marts use the stage's flags
        case when d.status in ('open', 'won', 'lost') then d.status in ('won', 'lost') end as is_closed,
        case when d.status in ('open', 'won', 'lost') then d.status = 'won' end as is_won,
        case d.status
            when 'won' then coalesce(d.won_time, d.close_time)
            when 'lost' then coalesce(d.lost_time, d.close_time)
        end as closed_at,
        d.next_activity_subject as next_step,
        case when d.status = 'lost' then nullif(trim(d.lost_reason), '') end as loss_reason,
        case
            when settings.company_domain is not null
                then 'https://' || settings.company_domain || '.pipedrive.com/deal/' || d.id
        end as source_url,
        d._source_system,
        d._source_file,
        d._source_row,
        d._loaded_at,
        d._is_deleted
    from deals as d
    cross join settings
    left join stage_names on stage_names.stage_id = d.stage_id
),

final as (
    select
        cast(opportunity_id as varchar) as opportunity_id,
        cast(account_id as varchar) as account_id,
        cast(owner_rep_id as varchar) as owner_rep_id,
        cast(opportunity_name as varchar) as opportunity_name,
        cast(stage as varchar) as stage,
        cast(amount as double precision) as amount,
        cast(created_at as timestamp) as created_at,
        cast(close_date as date) as close_date,
        cast(is_closed as boolean) as is_closed,
        cast(is_won as boolean) as is_won,
        cast(closed_at as timestamp) as closed_at,
        cast(next_step as varchar) as next_step,
        cast(source_url as varchar) as source_url,
        cast(loss_reason as varchar) as loss_reason,

        cast(_source_system as varchar) as _source_system,
        cast(_source_file as varchar) as _source_file,
        cast(_source_row as bigint) as _source_row,
        cast(_loaded_at as timestamp) as _loaded_at,
        cast(coalesce(_is_deleted, false) as boolean) as _is_deleted
    from mapped
    -- landing quarantined deals in unknown stages; a stage deleted since leaves its deals out here
    where stage is not null
)

select * from final
