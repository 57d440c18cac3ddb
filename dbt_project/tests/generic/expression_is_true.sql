{#-
  Fails on every row where the SQL boolean `expression` is false. As in
  dbt_utils, a null result passes (not_null tests cover nulls); scope with the
  `where` config. Our own copy because dbt packages are not installable here.
-#}
{% test expression_is_true(model, expression, column_name=none) %}

select *
from {{ model }}
where not ({{ expression }})

{% endtest %}
