with

contacts as (
    {{ union_staging('contacts') }}
),

final as (
    select
        contact_id,
        account_id,
        contact_name,
        title,
        buying_role,
        email,
        coalesce(buying_role = 'decision_maker', false) as is_decision_maker,
        _source_system as source_system
    from contacts
)

select * from final
