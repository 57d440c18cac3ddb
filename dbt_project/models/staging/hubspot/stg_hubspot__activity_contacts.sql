{#-
  Activity contacts: an engagement's contact associations. Associations are re-landed whenever
  their engagement is read, so rows landed before the engagement's latest landing are stale (the
  contact was removed) and left out; an archived engagement flags its contacts deleted.
-#}
with

associations as (
    select * from {{ source('hubspot', 'engagement_associations') }}
    where to_type = 'contacts'
),

engagements as (
    select engagements.engagement_id, engagements._loaded_at, engagements._is_deleted
    from {{ source('hubspot', 'engagements') }} as engagements
    inner join {{ source('hubspot', 'map_activity_types') }} as activity_types
        on activity_types.object_type = engagements.object_type
)

select
    cast(associations.engagement_id as varchar) as activity_id,
    cast(associations.to_id as varchar) as contact_id,

    cast(associations._source_system as varchar) as _source_system,
    cast(associations._source_file as varchar) as _source_file,
    cast(associations._source_row as bigint) as _source_row,
    cast(associations._loaded_at as timestamp) as _loaded_at,
    cast(coalesce(associations._is_deleted, false) or coalesce(engagements._is_deleted, false) as boolean) as _is_deleted
from associations
inner join engagements
    on engagements.engagement_id = associations.engagement_id
where associations._loaded_at >= engagements._loaded_at
