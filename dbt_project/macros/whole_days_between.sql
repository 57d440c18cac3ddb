{#-
  Completed 24-hour periods from start_ts to end_ts (like Python's timedelta.days),
  so a deal entered at 23:00 and moved on at 01:00 the next day spent 0 whole days.
  Null when either end is null.
-#}
{% macro whole_days_between(start_ts, end_ts) -%}
    cast(floor({{ dbt.datediff(start_ts, end_ts, 'second') }} / 86400.0) as {{ dbt.type_int() }})
{%- endmacro %}
