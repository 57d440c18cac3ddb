"""dbt runs no test that only repeats an upstream one: a mart that passes a canonical staging
model's column through unchanged does not test not_null on it again (the staging test already
did), and no relationships test checks what the model's own filter guarantees."""

from __future__ import annotations

import json

from sales_supervisor.dbt import prepare_dbt_project

# mart -> the canonical staging model it passes its rows through from (union_staging)
PASSTHROUGH = {
    "dim_managers": "stg_crm__managers",
    "dim_accounts": "stg_crm__accounts",
    "dim_contacts": "stg_crm__contacts",
    "dim_reps": "stg_crm__reps",
    "fct_opportunities": "stg_crm__opportunities",
    "fct_activities": "stg_crm__activities",
    "fct_field_history": "stg_crm__field_history",
    "bridge_activity_contacts": "stg_crm__activity_contacts",
}
# (mart, column, parent): relationships the mart's own where-clause guarantees
FILTERED = {
    ("fct_activities", "opportunity_id", "fct_opportunities"),
    ("fct_field_history", "opportunity_id", "fct_opportunities"),
    ("bridge_activity_contacts", "activity_id", "fct_activities"),
}


def _tests() -> list[tuple[str, str, str | None, list[str]]]:
    manifest = json.loads(prepare_dbt_project().read_text())
    out = []
    for node in manifest["nodes"].values():
        if node["resource_type"] != "test" or not node.get("attached_node"):
            continue
        name = (node.get("test_metadata") or {}).get("name", "")
        model = node["attached_node"].split(".")[-1]
        refs = [d.split(".")[-1] for d in node["depends_on"]["nodes"]]
        out.append((name, model, node.get("column_name"), refs))
    return out


def test_no_mart_repeats_a_staging_not_null_test():
    tests = _tests()
    staged = {(m, c) for name, m, c, _ in tests if name == "not_null"}
    repeated = sorted(
        (mart, c) for name, mart, c, _ in tests
        if name == "not_null" and mart in PASSTHROUGH and (PASSTHROUGH[mart], c) in staged
    )
    assert repeated == [], f"not_null tests repeating the staging model's: {repeated}"


def test_no_relationships_test_checks_what_a_filter_guarantees():
    tests = _tests()
    repeated = sorted(
        (m, c) for name, m, c, refs in tests
        if name == "relationships" and any((m, c, parent) in FILTERED for parent in refs)
    )
    assert repeated == []
    # the staging tests the marts rely on are still there
    staged = {(m, c) for name, m, c, _ in tests if name == "not_null"}
    assert {("stg_crm__activities", "activity_id"), ("stg_crm__field_history", "field_name"),
            ("stg_crm__opportunities", "opportunity_id")} <= staged
