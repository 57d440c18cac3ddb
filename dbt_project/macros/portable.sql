{#-
  SQL that differs between DuckDB (the default warehouse) and PostgreSQL (the server warehouse,
  SALES_SUPERVISOR_WAREHOUSE=postgres), dispatched on the adapter. dbt's own cross-database macros
  (dbt.datediff, dbt.dateadd, dbt.safe_cast, ...) cover the rest; these fill what they lack.
-#}

{#- The text value of a top-level key of a JSON text column (null when absent). key_sql: a SQL expression. -#}
{% macro json_text(json_column, key_sql) -%}
    {{ return(adapter.dispatch('json_text')(json_column, key_sql)) }}
{%- endmacro %}
{% macro default__json_text(json_column, key_sql) -%}
    json_extract_string({{ json_column }}, '$."' || {{ key_sql }} || '"')
{%- endmacro %}
{% macro postgres__json_text(json_column, key_sql) -%}
    (cast({{ json_column }} as json) ->> {{ key_sql }})
{%- endmacro %}

{#- A cast that yields null instead of an error for text that is not a value of the type. -#}
{% macro try_cast_text(expr, type) -%}
    {{ return(adapter.dispatch('try_cast_text')(expr, type)) }}
{%- endmacro %}
{% macro default__try_cast_text(expr, type) -%}
    try_cast({{ expr }} as {{ type }})
{%- endmacro %}
{% macro postgres__try_cast_text(expr, type) -%}
    {%- set t = type | lower | trim -%}
    {%- if t == 'boolean' -%}
        (case when lower(trim(cast({{ expr }} as text))) in ('true', 't', '1', 'yes', 'y') then true
              when lower(trim(cast({{ expr }} as text))) in ('false', 'f', '0', 'no', 'n') then false end)
    {%- elif t in ('timestamp', 'timestamptz', 'date') -%}
        (case when cast({{ expr }} as text) ~ '^\s*[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?\s*(Z|[+-][0-9]{2}(:?[0-9]{2})?)?\s*$'
              then cast(cast({{ expr }} as text) as {{ type }}) end)
    {%- elif t in ('double', 'double precision', 'float8', 'numeric') -%}
        (case when trim(cast({{ expr }} as text)) ~ '^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$'
              then cast(trim(cast({{ expr }} as text)) as {{ type }}) end)
    {%- elif t in ('bigint', 'integer', 'int') -%}
        (case when trim(cast({{ expr }} as text)) ~ '^[+-]?[0-9]{1,18}$' then cast(trim(cast({{ expr }} as text)) as {{ type }}) end)
    {%- else -%}
        cast({{ expr }} as {{ type }})
    {%- endif -%}
{%- endmacro %}

{#- A timestamp (UTC, no time zone) from epoch milliseconds. -#}
{% macro from_epoch_ms(expr) -%}
    {{ return(adapter.dispatch('from_epoch_ms')(expr)) }}
{%- endmacro %}
{% macro default__from_epoch_ms(expr) -%}
    epoch_ms({{ expr }})
{%- endmacro %}
{% macro postgres__from_epoch_ms(expr) -%}
    (to_timestamp(({{ expr }}) / 1000.0) at time zone 'UTC')
{%- endmacro %}

{#- Whether text matches a regular expression (POSIX-style patterns that both engines read alike). -#}
{% macro regex_test(expr, pattern) -%}
    {{ return(adapter.dispatch('regex_test')(expr, pattern)) }}
{%- endmacro %}
{% macro default__regex_test(expr, pattern) -%}
    regexp_matches({{ expr }}, {{ pattern }})
{%- endmacro %}
{% macro postgres__regex_test(expr, pattern) -%}
    ({{ expr }} ~ {{ pattern }})
{%- endmacro %}

{#- Text split on a delimiter into an array/list (unnest and generate_subscripts take it on both). -#}
{% macro split_to_array(expr, delimiter) -%}
    {{ return(adapter.dispatch('split_to_array')(expr, delimiter)) }}
{%- endmacro %}
{% macro default__split_to_array(expr, delimiter) -%}
    string_split({{ expr }}, {{ delimiter }})
{%- endmacro %}
{% macro postgres__split_to_array(expr, delimiter) -%}
    string_to_array({{ expr }}, {{ delimiter }})
{%- endmacro %}

{#- The last non-null value of expr over a window (window: the text inside over (...)). -#}
{% macro last_non_null(expr, window) -%}
    {{ return(adapter.dispatch('last_non_null')(expr, window)) }}
{%- endmacro %}
{% macro default__last_non_null(expr, window) -%}
    last_value({{ expr }} ignore nulls) over ({{ window }})
{%- endmacro %}
{% macro postgres__last_non_null(expr, window) -%}
    {#- PostgreSQL has no IGNORE NULLS: the window's values without nulls, last element -#}
    (array_remove(array_agg({{ expr }}) over ({{ window }}), null))[cardinality(array_remove(array_agg({{ expr }}) over ({{ window }}), null))]
{%- endmacro %}
