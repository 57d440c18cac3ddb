{#-
  Opportunities: deals. The stage is the label of the deal's stage id (in its own pipeline, else
  any pipeline's; the id itself when no pipeline has it). closed_at is closedate on closed deals;
  source_url from deal_url_template with {portal_id} and {id} filled in (only with a portal_id).
-#}
with

deals as (
    select * from {{ source('hubspot', 'deals') }}
),

stage_labels as (
    select pipeline_id, stage_id, coalesce(label, stage_id) as label
    from {{ source('hubspot', 'pipeline_stages') }}
    where not coalesce(_is_deleted, false)
),

any_pipeline_labels as (
    select stage_id, min(label) as label
    from stage_labels
    group by stage_id
),

settings as (
    select
        max(case when setting = 'portal_id' then value end) as portal_id,
        max(case when setting = 'deal_url_template' then value end) as deal_url_template
    from {{ source('hubspot', 'map_settings') }}
),

labelled as (
    select
        deals.*,
        coalesce(own_pipeline.label, any_pipeline.label, deals.dealstage) as stage,
        case
            when nullif(trim(settings.portal_id), '') is not null and settings.deal_url_template is not null
                then replace(replace(settings.deal_url_template, '{portal_id}', trim(settings.portal_id)), '{id}', deals.deal_id)
        end as source_url
    from deals
    cross join settings
    left join stage_labels as own_pipeline
        on own_pipeline.pipeline_id = deals.pipeline
        and own_pipeline.stage_id = deals.dealstage
    left join any_pipeline_labels as any_pipeline
        on any_pipeline.stage_id = deals.dealstage
)

select
    cast(deal_id as varchar) as opportunity_id,
    cast(primary_company_id as varchar) as account_id,
    cast(hubspot_owner_id as varchar) as owner_rep_id,
    cast(dealname as varchar) as opportunity_name,
    cast(stage as varchar) as stage,
    cast(amount as double precision) as amount,
    cast(coalesce(createdate, created_at) as timestamp) as created_at,
    cast(closedate as date) as close_date,
    cast(hs_is_closed as boolean) as is_closed,
    cast(hs_is_closed_won as boolean) as is_won,
    cast(case when hs_is_closed then closedate end as timestamp) as closed_at,
    cast(hs_next_step as varchar) as next_step,
    cast(source_url as varchar) as source_url,
    cast(case when hs_is_closed and not coalesce(hs_is_closed_won, false) then nullif(trim(closed_lost_reason), '') end as varchar) as loss_reason,

    cast(_source_system as varchar) as _source_system,
    cast(_source_file as varchar) as _source_file,
    cast(_source_row as bigint) as _source_row,
    cast(_loaded_at as timestamp) as _loaded_at,
    cast(coalesce(_is_deleted, false) as boolean) as _is_deleted
from labelled
