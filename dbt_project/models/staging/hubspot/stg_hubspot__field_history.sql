{#-
  Field history: changes to the deal properties named in map_field_history (config
  field_history; default closedate -> close_date, amount -> amount). Versions of a property are
  ordered by time; the first is the initial value, not a change, and a version equal to the one
  before (compared after normalising: a close_date as its UTC date) is no change either.
-#}
with

tracked as (
    select
        history.*,
        fields.field_name,
        nullif(trim(history.value), '') as raw_value
    from {{ source('hubspot', 'deal_property_history') }} as history
    inner join {{ source('hubspot', 'map_field_history') }} as fields
        on fields.property = history.property
),

normalised as (
    select
        tracked.*,
        case
            when raw_value is null or field_name <> 'close_date' then raw_value
            -- HubSpot writes datetimes as epoch milliseconds or ISO 8601 (an offset means: convert to UTC)
            when {{ regex_test('raw_value', "'^-?[0-9]+$'") }}
                then cast(cast({{ from_epoch_ms('cast(raw_value as bigint)') }} as date) as varchar)
            when {{ regex_test('raw_value', "'(Z|[+-][0-9]{2}:?[0-9]{2})$'") }}
                then coalesce(cast(cast(timezone('UTC', {{ try_cast_text('raw_value', 'timestamptz') }}) as date) as varchar), raw_value)
            else coalesce(cast(cast({{ try_cast_text('raw_value', 'timestamp') }} as date) as varchar), raw_value)
        end as new_value
    from tracked
),

sequenced as (
    select
        normalised.*,
        lag(new_value) over (partition by deal_id, property order by timestamp, version_id) as old_value,
        row_number() over (partition by deal_id, property order by timestamp, version_id) as version_number
    from normalised
),

deals as (
    select deal_id, _is_deleted from {{ source('hubspot', 'deals') }}
)

select
    cast(sequenced.version_id as varchar) as field_history_id,
    cast(sequenced.deal_id as varchar) as opportunity_id,
    cast(sequenced.field_name as varchar) as field_name,
    cast(sequenced.old_value as varchar) as old_value,
    cast(sequenced.new_value as varchar) as new_value,
    cast(sequenced.timestamp as timestamp) as changed_at,

    cast(sequenced._source_system as varchar) as _source_system,
    cast(sequenced._source_file as varchar) as _source_file,
    cast(sequenced._source_row as bigint) as _source_row,
    cast(sequenced._loaded_at as timestamp) as _loaded_at,
    cast(coalesce(sequenced._is_deleted, false) or coalesce(deals._is_deleted, false) as boolean) as _is_deleted
from sequenced
inner join deals  -- a deal quarantined at landing takes its history with it
    on deals.deal_id = sequenced.deal_id
where sequenced.version_number > 1
  and sequenced.new_value is distinct from sequenced.old_value
