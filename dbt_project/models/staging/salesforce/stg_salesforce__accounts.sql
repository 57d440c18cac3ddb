-- Account -> accounts. Segment: the value of account_segment_field through account_segment_map
-- (unmapped values kept) when that field is configured; otherwise the first of
-- account_segment_bands (in band_order) whose max_employees (exclusive, empty = no bound)
-- exceeds NumberOfEmployees. The connector leaves map_segment_bands empty when the field is set.

with

account as (
    select * from {{ source('salesforce', 'account') }}
),

segment_map as (
    select * from {{ source('salesforce', 'map_account_segments') }}
),

bands as (
    select * from {{ source('salesforce', 'map_segment_bands') }}
),

banded as (
    select
        account.id as account_id,
        bands.segment,
        row_number() over (partition by account.id order by bands.band_order) as band_rank
    from account
    inner join bands
        on bands.max_employees is null
        or account.number_of_employees < bands.max_employees
    where account.number_of_employees is not null
)

select
    cast(account.id as varchar) as account_id,
    cast(account.name as varchar) as account_name,
    cast(coalesce(segment_map.segment, account.segment_value, banded.segment) as varchar) as segment,
    cast(account.industry as varchar) as industry,
    cast(account.number_of_employees as bigint) as employees,
    cast(account.tags_value as varchar) as tags,

    cast(account._source_system as varchar) as _source_system,
    cast(account._source_file as varchar) as _source_file,
    cast(account._source_row as bigint) as _source_row,
    cast(account._loaded_at as timestamp) as _loaded_at,
    cast(coalesce(account._is_deleted, false) as boolean) as _is_deleted
from account
left join segment_map
    on segment_map.source_value = account.segment_value
left join banded
    on banded.account_id = account.id
    and banded.band_rank = 1
