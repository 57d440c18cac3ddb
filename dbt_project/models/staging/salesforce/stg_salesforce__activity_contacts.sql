-- (activity, contact) pairs from Task/Event WhoId and from TaskRelation/EventRelation
-- (RelationId, IsWhat = false), contacts only (the Contact id prefix of map_key_prefixes).
-- One row per pair: a live link wins over a deleted one; a link is deleted when its
-- relation row or its activity is.

with

task as (
    select * from {{ source('salesforce', 'task') }}
),

event as (
    select * from {{ source('salesforce', 'event') }}
),

task_relation as (
    select * from {{ source('salesforce', 'task_relation') }}
),

event_relation as (
    select * from {{ source('salesforce', 'event_relation') }}
),

prefixes as (
    select coalesce(max(case when sobject = 'Contact' then key_prefix end), '003') as contact_prefix
    from {{ source('salesforce', 'map_key_prefixes') }}
),

links as (
    select
        id as activity_id, who_id as contact_id, 1 as link_rank,
        _source_system, _source_file, _source_row, _loaded_at,
        coalesce(_is_deleted, false) as is_deleted
    from task
    union all
    select
        id, who_id, 1,
        _source_system, _source_file, _source_row, _loaded_at,
        coalesce(_is_deleted, false)
    from event
    union all
    select
        task_relation.task_id, task_relation.relation_id, 2,
        task_relation._source_system, task_relation._source_file, task_relation._source_row, task_relation._loaded_at,
        coalesce(task_relation._is_deleted, false) or coalesce(task._is_deleted, false)
    from task_relation
    left join task
        on task.id = task_relation.task_id
    where not coalesce(task_relation.is_what, false)
    union all
    select
        event_relation.event_id, event_relation.relation_id, 2,
        event_relation._source_system, event_relation._source_file, event_relation._source_row, event_relation._loaded_at,
        coalesce(event_relation._is_deleted, false) or coalesce(event._is_deleted, false)
    from event_relation
    left join event
        on event.id = event_relation.event_id
    where not coalesce(event_relation.is_what, false)
),

ranked as (
    select
        links.*,
        row_number() over (
            partition by links.activity_id, links.contact_id
            order by case when links.is_deleted then 1 else 0 end, links.link_rank, links._source_row
        ) as pair_rank
    from links
    cross join prefixes
    where links.activity_id is not null
        and substring(links.contact_id, 1, 3) = prefixes.contact_prefix
)

select
    cast(activity_id as varchar) as activity_id,
    cast(contact_id as varchar) as contact_id,

    cast(_source_system as varchar) as _source_system,
    cast(_source_file as varchar) as _source_file,
    cast(_source_row as bigint) as _source_row,
    cast(_loaded_at as timestamp) as _loaded_at,
    cast(is_deleted as boolean) as _is_deleted
from ranked
where pair_rank = 1
