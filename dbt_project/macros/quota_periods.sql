{#-
  The first day of the fiscal quarter holding a date (issue 14: CRM-native quotas). ``start_month``
  is an SQL expression for the fiscal year's first month (1 = calendar quarters): monthly quotas and
  goal targets are summed into these quarters. Portable: DuckDB and PostgreSQL.
-#}
{% macro fiscal_quarter_start(date_expr, start_month) -%}
    cast({{ dbt.dateadd(
        'month',
        '-1 * ((((cast(extract(month from ' ~ date_expr ~ ') as integer) - (' ~ start_month ~ ')) % 12) + 12) % 3)',
        dbt.date_trunc('month', date_expr)
    ) }} as date)
{%- endmacro %}
