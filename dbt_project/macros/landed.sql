{#-
  The landed rows of one canonical object, from whichever source is active.

  A canonical source (demo CRM, CSV export) lands raw.<entity> itself; a CRM-native
  connector lands its own tables (raw_<crm>.*) and its staging models
  stg_<crm>__<entity> map them into the same columns. raw.active_source names the
  dataset of the last landing, so exactly one branch returns rows: switching CRMs
  never mixes two CRMs' data, and every CRM's models stay in the graph (the
  Dagster asset graph is the same whatever the source). With no landing recorded
  (dbt development on hand-loaded raw tables) the canonical tables are read.

  The columns are raw.<entity>'s, less _extra and dlt's bookkeeping, cast to its
  types; a native staging model lacking one fails loudly.
-#}
{% macro landed(entity) -%}
    {%- set canonical = source('crm', entity) -%}
    {%- set active = source('crm', 'active_source') -%}
    {#- quotas: only the CRMs whose connector reads them natively (Salesforce ForecastingQuota, HubSpot goals) -#}
    {%- set crms = var('native_quota_crms', ['hubspot', 'salesforce']) if entity == 'quotas' else var('native_crms', []) -%}
    {%- set columns = [] -%}
    {%- if execute -%}
        {%- for column in adapter.get_columns_in_relation(canonical) -%}
            {%- if column.name != '_extra' and not column.name.startswith('_dlt') -%}
                {%- do columns.append(column) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif %}
    select
        {% for column in columns -%}
        {{ column.name }}{% if not loop.last %},{% endif %}
        {% else -%}
        *
        {%- endfor %}
    from {{ canonical }}
    where not exists (select 1 from {{ active }} where dataset <> 'raw')
    {%- for crm in crms %}
    union all
    select
        {% for column in columns -%}
        cast({{ column.name }} as {{ column.data_type }}) as {{ column.name }}{% if not loop.last %},{% endif %}
        {% else -%}
        *
        {%- endfor %}
    from {{ ref('stg_' ~ crm ~ '__' ~ entity) }}
    where exists (select 1 from {{ active }} where dataset = 'raw_{{ crm }}')
    {%- endfor %}
{%- endmacro %}
