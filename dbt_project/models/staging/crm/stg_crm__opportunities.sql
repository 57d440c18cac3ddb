with

source as (
    select * from {{ source('crm', 'opportunities') }}
),

renamed as (
    select
        opportunity_id,
        account_id,
        owner_rep_id,
        trim(opportunity_name) as opportunity_name,
        trim(stage) as stage,
        amount,
        created_at,
        close_date,
        is_closed,
        is_won,
        closed_at,
        next_step,
        nullif(trim(source_url), '') as source_url,

        _source_system,
        _source_file,
        _source_row,
        _loaded_at
    from source
)

select * from renamed
