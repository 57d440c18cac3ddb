{#-
  The run's as-of date (var as_of_date, else the environment variable SALES_SUPERVISOR_AS_OF_DATE, which
  the pipeline sets: a changed --vars makes dbt re-parse the whole project, a changed environment
  variable only the models that read it; ISO yyyy-mm-dd; empty means today).
  Every "now" in the marts goes through these macros so a run can be replayed
  for any past day.
-#}
{% macro as_of_date() -%}
    {%- set value = var('as_of_date', '') | string | trim -%}
    {%- if value in ('', 'None', 'none') -%}
        {%- set value = env_var('SALES_SUPERVISOR_AS_OF_DATE', '') | string | trim -%}
    {%- endif -%}
    {%- if value in ('', 'None', 'none') -%}
        current_date
    {%- else -%}
        {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', value) -%}
            {{ exceptions.raise_compiler_error("var('as_of_date') must be an ISO date (yyyy-mm-dd) or empty, got: " ~ value) }}
        {%- endif -%}
        cast({{ dbt.string_literal(value) }} as date)
    {%- endif -%}
{%- endmacro %}

{#- Exclusive upper bound of the as-of day: the start of the following day. -#}
{% macro as_of_upper_bound() -%}
    {{ dbt.dateadd('day', 1, as_of_date()) }}
{%- endmacro %}
