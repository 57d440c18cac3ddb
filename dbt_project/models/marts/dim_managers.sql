with

managers as (
    {{ union_staging('managers') }}
),

final as (
    select
        manager_id,
        manager_name,
        email,
        slack_user_id,
        _source_system as source_system
    from managers
)

select * from final
