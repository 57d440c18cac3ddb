-- Opportunity -> opportunities; source_url = <instance URL>/<Id> (instance_url from map_settings).

with

opportunity as (
    select * from {{ source('salesforce', 'opportunity') }}
),

settings as (
    select max(case when setting = 'instance_url' then value end) as instance_url
    from {{ source('salesforce', 'map_settings') }}
)

select
    cast(opportunity.id as varchar) as opportunity_id,
    cast(opportunity.account_id as varchar) as account_id,
    cast(opportunity.owner_id as varchar) as owner_rep_id,
    cast(opportunity.name as varchar) as opportunity_name,
    cast(opportunity.stage_name as varchar) as stage,
    cast(opportunity.amount as double precision) as amount,
    cast(opportunity.created_date as timestamp) as created_at,
    cast(opportunity.close_date as date) as close_date,
    cast(opportunity.is_closed as boolean) as is_closed,
    cast(opportunity.is_won as boolean) as is_won,
    cast(null as timestamp) as closed_at,
    cast(opportunity.next_step as varchar) as next_step,
    cast(
        case when settings.instance_url is not null
            then {{ dbt.concat(["settings.instance_url", "'/'", "opportunity.id"]) }}
        end as varchar
    ) as source_url,
    -- no standard field: an org's Loss_Reason__c (read with select_all_fields, it lands in _extra), where present
    cast(case when opportunity.is_closed and not coalesce(opportunity.is_won, false)
        then nullif(trim({{ json_text('opportunity._extra', "'Loss_Reason__c'") }}), '') end as varchar) as loss_reason,

    cast(opportunity._source_system as varchar) as _source_system,
    cast(opportunity._source_file as varchar) as _source_file,
    cast(opportunity._source_row as bigint) as _source_row,
    cast(opportunity._loaded_at as timestamp) as _loaded_at,
    cast(coalesce(opportunity._is_deleted, false) as boolean) as _is_deleted
from opportunity
cross join settings
