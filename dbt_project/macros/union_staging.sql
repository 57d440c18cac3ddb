{#-
  One select per CRM's staging model for an entity, unioned. Marts read their
  inputs through this, so a new CRM only adds stg_<crm>__<entity> models and its
  name to var('staging_sources') (default: the canonical landed tables, 'crm').
  Every stg_<crm>__<entity> model must expose the same columns in the same order.
-#}
{% macro union_staging(entity) -%}
    {%- set sources = var('staging_sources', ['crm']) -%}
    {%- for crm in sources %}
    select * from {{ ref('stg_' ~ crm ~ '__' ~ entity) }}
    {%- if not loop.last %}
    union all
    {%- endif -%}
    {%- endfor %}
{%- endmacro %}
