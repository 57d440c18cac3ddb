{#-
  Stage history: each version of a deal's dealstage (propertiesWithHistory) is the deal entering
  that stage. A deal without dealstage history falls back to its hs_date_entered_<stage id>
  properties (landed as history rows when read through extra_properties). Stage ids become labels
  as in stg_hubspot__opportunities. A deal archived in HubSpot flags its history deleted too; the
  history of a deal that was not landed (quarantined) is left out.
-#}
with

history as (
    select * from {{ source('hubspot', 'deal_property_history') }}
),

deals as (
    select deal_id, pipeline, _is_deleted from {{ source('hubspot', 'deals') }}
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

from_dealstage as (
    select history.*, history.value as stage_id
    from history
    where history.property = 'dealstage'
      and history.value is not null
),

from_date_entered as (
    -- 'hs_date_entered_' is 16 characters: the stage id follows
    select history.*, substr(history.property, 17) as stage_id
    from history
    where substr(history.property, 1, 16) = 'hs_date_entered_'
      and length(history.property) > 16
      and history.deal_id not in (select deal_id from from_dealstage)
),

entries as (
    select * from from_dealstage
    union all
    select * from from_date_entered
)

select
    cast(entries.version_id as varchar) as stage_history_id,
    cast(entries.deal_id as varchar) as opportunity_id,
    cast(coalesce(own_pipeline.label, any_pipeline.label, entries.stage_id) as varchar) as stage,
    cast(entries.timestamp as timestamp) as entered_at,

    cast(entries._source_system as varchar) as _source_system,
    cast(entries._source_file as varchar) as _source_file,
    cast(entries._source_row as bigint) as _source_row,
    cast(entries._loaded_at as timestamp) as _loaded_at,
    cast(coalesce(entries._is_deleted, false) or coalesce(deals._is_deleted, false) as boolean) as _is_deleted
from entries
inner join deals  -- a deal quarantined at landing takes its history with it
    on deals.deal_id = entries.deal_id
left join stage_labels as own_pipeline
    on own_pipeline.pipeline_id = deals.pipeline
    and own_pipeline.stage_id = entries.stage_id
left join any_pipeline_labels as any_pipeline
    on any_pipeline.stage_id = entries.stage_id
