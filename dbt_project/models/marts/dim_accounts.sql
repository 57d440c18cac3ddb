with

accounts as (
    {{ union_staging('accounts') }}
),

final as (
    select
        account_id,
        account_name,
        segment,
        industry,
        employees,
        tags,
        -- Tags are ';'- or ','-separated; match the whole tag, any case, so
        -- 'Non-Strategic' is not strategic.
        coalesce(
            {{ dbt.concat(["';'", "replace(replace(lower(tags), ' ', ''), ',', ';')", "';'"]) }} like '%;strategic;%',
            false
        ) as is_strategic,
        _source_system as source_system
    from accounts
)

select * from final
