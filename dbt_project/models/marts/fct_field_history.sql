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
)

select * from final
