with

source as (
    select * from {{ source('crm', 'quotas') }}
),

renamed as (
    select
        rep_id,
        quarter_start,
        quota_amount,

        _source_system,
        _source_file,
        _source_row,
        _loaded_at
    from source
)

select * from renamed
