{#-
  Accounts: companies. Segment from the configured segment property (account_segment_property,
  its values mapped through map_account_segments, an unmapped value kept as is) when the company
  has a value, else from the employee bands (map_segment_bands: the first band, in order, whose
  exclusive upper bound 'below' exceeds numberofemployees; a null bound takes everything left).
  Tags from account_tags_property. A configured property that is not a column of the companies
  table is read from _extra (HubSpot properties outside the declared columns land there).
-#}
{%- set columns = ['name', 'domain', 'industry', 'numberofemployees'] %}
with

companies as (
    select * from {{ source('hubspot', 'companies') }}
),

settings as (
    select
        max(case when setting = 'account_segment_property' then value end) as segment_property,
        max(case when setting = 'account_tags_property' then value end) as tags_property
    from {{ source('hubspot', 'map_settings') }}
),

with_properties as (
    select
        companies.*,
        {%- for alias, property in [('segment_value', 'settings.segment_property'), ('tags_value', 'settings.tags_property')] %}
        nullif(trim(
            case {{ property }}
            {%- for column in columns %}
                when '{{ column }}' then cast(companies.{{ column }} as varchar)
            {%- endfor %}
                else {{ json_text('companies._extra', property) }}
            end
        ), '') as {{ alias }}{{ ',' if not loop.last }}
        {%- endfor %}
    from companies
    cross join settings
),

banded as (
    select
        companies.company_id,
        bands.segment,
        row_number() over (partition by companies.company_id order by bands.band_order) as nth
    from companies
    inner join {{ source('hubspot', 'map_segment_bands') }} as bands
        on companies.numberofemployees is not null
        and (bands.below is null or companies.numberofemployees < bands.below)
),

segmented as (
    select
        with_properties.*,
        case
            when with_properties.segment_value is not null
                then coalesce(segment_values.segment, with_properties.segment_value)
            else banded.segment
        end as segment
    from with_properties
    left join {{ source('hubspot', 'map_account_segments') }} as segment_values
        on segment_values.source_value = with_properties.segment_value
    left join banded
        on banded.company_id = with_properties.company_id
        and banded.nth = 1
)

select
    cast(company_id as varchar) as account_id,
    cast(coalesce(name, domain) as varchar) as account_name,
    cast(segment as varchar) as segment,
    cast(industry as varchar) as industry,
    cast(numberofemployees as bigint) as employees,
    cast(tags_value as varchar) as tags,

    cast(_source_system as varchar) as _source_system,
    cast(_source_file as varchar) as _source_file,
    cast(_source_row as bigint) as _source_row,
    cast(_loaded_at as timestamp) as _loaded_at,
    cast(coalesce(_is_deleted, false) as boolean) as _is_deleted
from segmented
