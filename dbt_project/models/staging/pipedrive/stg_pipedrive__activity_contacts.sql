{#- Which persons took part in which activity (its participants; landing falls back to the
    activity's person_id). A deleted activity's participants carry _is_deleted. -#}
with

participants as (
    select * from {{ source('pipedrive', 'activity_participants') }}
),

activities as (
    select id, _is_deleted from {{ source('pipedrive', 'activities') }}
),

final as (
    select
        cast(p.activity_id as varchar) as activity_id,
        cast(p.person_id as varchar) as contact_id,

        cast(p._source_system as varchar) as _source_system,
        cast(p._source_file as varchar) as _source_file,
        cast(p._source_row as bigint) as _source_row,
        cast(p._loaded_at as timestamp) as _loaded_at,
        cast(coalesce(p._is_deleted, false) or coalesce(a._is_deleted, false) as boolean) as _is_deleted
    from participants as p
    left join activities as a on a.id = p.activity_id
)

select * from final
