{#-
  The rows of the quotas file (raw.quota_file, written at landing from SALES_SUPERVISOR_QUOTAS_FILE;
  agents/accountability/quotas.py), or no rows when the table is absent (dbt run on hand-loaded raw
  tables, before any landing).
-#}
{% macro quota_file_rows() -%}
    {%- set relation = adapter.get_relation(database=target.database, schema='raw', identifier='quota_file') if execute else none -%}
    {%- if relation is not none %}
    select rep, team, quarter_start, quota_amount, _source_file, _source_row from {{ relation }}
    {%- else %}
    select
        cast(null as {{ dbt.type_string() }}) as rep,
        cast(null as {{ dbt.type_string() }}) as team,
        cast(null as date) as quarter_start,
        cast(null as {{ dbt.type_float() }}) as quota_amount,
        cast(null as {{ dbt.type_string() }}) as _source_file,
        cast(null as {{ dbt.type_bigint() }}) as _source_row
    where 1 = 0
    {%- endif %}
{%- endmacro %}
