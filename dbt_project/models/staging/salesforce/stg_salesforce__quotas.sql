{#-
  Quotas from ForecastingQuota (Collaborative Forecasts), as canonical quarterly quotas per rep.
  Kept: amount quotas (IsAmount) of one forecast type (map_settings quota_forecasting_type, by
  DeveloperName or Id; else the type with the most amount quotas: an org forecasting several types
  would otherwise count each quota twice), without product family or territory (those split a
  quota further). The owner must be a rep (stg_salesforce__reps); a manager's own quota (the team's
  roll-up) is left out: the supervisor holds reps to quotas. Monthly quotas are summed into the
  fiscal quarter (fiscal_year_start_month; quarterly periods start on the quarter's first day).
-#}
with

settings as (
    select
        max(case when setting = 'quota_forecasting_type' then value end) as forecasting_type,
        coalesce(max(case when setting = 'fiscal_year_start_month' then cast(value as integer) end), 1) as fiscal_start
    from {{ source('salesforce', 'map_settings') }}
),

amounts as (
    select *
    from {{ source('salesforce', 'forecasting_quota') }}
    where not coalesce(_is_deleted, false)
        and quota_amount is not null
        and coalesce(is_amount, true)
        and product_family is null
        and territory2_id is null
),

types as (
    select
        coalesce(forecasting_type_id, '') as type_id,
        max(forecasting_type) as type_name,
        row_number() over (order by count(*) desc, coalesce(forecasting_type_id, '')) as nth
    from amounts
    group by coalesce(forecasting_type_id, '')
),

chosen as (
    select types.type_id
    from types
    cross join settings
    where (settings.forecasting_type is null and types.nth = 1)
        or lower(types.type_name) = lower(settings.forecasting_type)
        or lower(types.type_id) = lower(settings.forecasting_type)
),

reps as (
    select rep_id, manager_id from {{ ref('stg_salesforce__reps') }}
),

kept as (
    select
        amounts.quota_owner_id as rep_id,
        {{ fiscal_quarter_start('amounts.start_date', 'settings.fiscal_start') }} as quarter_start,
        amounts.quota_amount,
        amounts._source_system,
        amounts._source_file,
        amounts._source_row,
        amounts._loaded_at
    from amounts
    cross join settings
    inner join chosen on chosen.type_id = coalesce(amounts.forecasting_type_id, '')
    inner join reps on reps.rep_id = amounts.quota_owner_id
    where not exists (select 1 from reps as team where team.manager_id = amounts.quota_owner_id)
)

select
    cast(rep_id as varchar) as rep_id,
    cast(quarter_start as date) as quarter_start,
    cast(sum(quota_amount) as double precision) as quota_amount,

    cast(min(_source_system) as varchar) as _source_system,
    cast(min(_source_file) as varchar) as _source_file,
    cast(min(_source_row) as bigint) as _source_row,
    cast(max(_loaded_at) as timestamp) as _loaded_at,
    cast(false as boolean) as _is_deleted
from kept
group by rep_id, quarter_start
