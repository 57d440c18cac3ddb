-- Every deal with stage history has exactly one current stint (the open-ended one).
select
    opportunity_id,
    sum(case when is_current then 1 else 0 end) as current_stints
from {{ ref('fct_stage_history') }}
group by opportunity_id
having sum(case when is_current then 1 else 0 end) <> 1
