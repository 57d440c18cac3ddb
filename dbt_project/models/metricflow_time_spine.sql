{{ config(materialized='table') }}

-- MetricFlow's day-grain time spine (metric_time joins and cumulative windows).
-- The range is generous on purpose: CRM history often goes back years, and
-- backtests replay past as-of dates; 2000..2050 is ~18k rows.
with days as (
    {{ dbt.date_spine('day', "cast('2000-01-01' as date)", "cast('2051-01-01' as date)") }}
)

select cast(date_day as date) as date_day
from days
