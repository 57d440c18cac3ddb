with

source as (
    select * from {{ source('crm', 'stages') }}
),

renamed as (
    select
        trim(stage) as stage,
        stage_order,
        is_closed,
        is_won,

        _source_system,
        _source_file,
        _source_row,
        _loaded_at
    from source
)

select * from renamed
