with

activity_contacts as (
    {{ union_staging('activity_contacts') }}
),

contacts as (
    select
        contact_id,
        buying_role
    from {{ ref('dim_contacts') }}
),

final as (
    select
        activity_contacts.activity_id,
        activity_contacts.contact_id,
        contacts.buying_role,
        activity_contacts._source_system as source_system
    from activity_contacts
    left join contacts
        on activity_contacts.contact_id = contacts.contact_id
    -- follows its activity (see fct_activities)
    where activity_contacts.activity_id in (select activity_id from {{ ref('fct_activities') }})
)

select * from final
