with

field_history as (
    {{ union_staging('field_history') }}
),

final as (
    select
        field_history_id,
        opportunity_id,
        field_name,
        old_value,
        new_value,
        changed_at,
        _source_system as source_system
    from field_history
    -- only for deals in the marts (see fct_stage_history)
    where opportunity_id in (select opportunity_id from {{ ref('fct_opportunities') }})
)

select * from final
