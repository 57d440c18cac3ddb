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


# -- the native CRMs' staging models do not repeat the canonical staging model's tests ---------------

NATIVE_CRMS = ("hubspot", "salesforce", "pipedrive")


def test_no_native_staging_model_repeats_the_canonical_staging_test():
    """stg_crm__<object> passes the active CRM's stg_<crm>__<object> rows through unchanged (less deleted
    records, which reach nothing downstream): its unique/not_null tests check exactly those rows, so the same
    test on the native model only re-ran the query (on an empty view for every CRM but the active one)."""
    tests = _tests()
    canonical = {(m, name, c) for name, m, c, _ in tests if m.startswith("stg_crm__")}
    repeated = sorted(
        (m, name, c) for name, m, c, _ in tests
        if name in ("unique", "not_null") and m.startswith(tuple(f"stg_{crm}__" for crm in NATIVE_CRMS))
        and ("stg_crm__" + m.split("__", 1)[1], name, c) in canonical
    )
    assert repeated == [], f"native staging tests repeating stg_crm__'s: {repeated}"
    # what only a native model can check is still checked there (no canonical counterpart)
    kept = {(m, name, c) for name, m, c, _ in tests}
    assert {("stg_hubspot__opportunities", "not_null", "created_at"), ("stg_hubspot__reps", "not_null", "is_active"),
            ("stg_hubspot__stage_history", "not_null", "stage")} <= kept
    # and the canonical staging tests every source's rows go through are all there
    for obj, column in [("accounts", "account_id"), ("activities", "activity_id"), ("contacts", "contact_id"),
                        ("field_history", "field_history_id"), ("managers", "manager_id"),
                        ("opportunities", "opportunity_id"), ("reps", "rep_id"), ("stage_history", "stage_history_id"),
                        ("stages", "stage")]:
        assert {(f"stg_crm__{obj}", "unique", column), (f"stg_crm__{obj}", "not_null", column)} <= canonical, obj


def test_a_duplicate_in_a_native_crm_is_still_caught_by_the_canonical_staging_test(tmp_path):
    """What a dropped native test caught, the canonical one still catches: a HubSpot deal landed twice fails
    unique_stg_crm__opportunities_opportunity_id once HubSpot is the active source."""
    import os
    import subprocess

    import duckdb

    from connectors.landing import ensure_landing_tables, set_active_source
    from sales_supervisor.dbt import dbt_executable
    from sales_supervisor.settings import DBT_PROJECT_DIR

    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        ensure_landing_tables(con)
        set_active_source(con, "raw_hubspot", "hubspot", "landing-1", None)
        for _ in range(2):
            con.execute("insert into raw_hubspot.deals (deal_id, dealname, dealstage, createdate) values ('901', 'Twice', 'qualifiedtobuy', timestamp '2026-09-01')")
    proc = subprocess.run(
        [dbt_executable(), "build", "--select", "+stg_crm__opportunities", "--exclude-resource-type", "unit_test",
         "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")],
        cwd=DBT_PROJECT_DIR, capture_output=True, text=True, timeout=600,
        env={**os.environ, "SALES_SUPERVISOR_DUCKDB_PATH": str(warehouse), "DBT_TARGET": "duckdb"},
    )
    assert proc.returncode != 0, proc.stdout[-3000:]
    failed = [line for line in proc.stdout.splitlines() if "FAIL" in line and "unique_" in line]
    assert any("unique_stg_crm__opportunities_opportunity_id" in line for line in failed), proc.stdout[-3000:]


# -- unit tests: in the test suite, not in every daily build -------------------------------------------


def test_the_daily_build_leaves_unit_tests_to_the_test_suite():
    from orchestration.assets.dbt import DBT_BUILD_ARGS

    assert DBT_BUILD_ARGS[0] == "build" and "unit_test" in DBT_BUILD_ARGS[DBT_BUILD_ARGS.index("--exclude-resource-type") + 1:]


def test_every_dbt_unit_test_passes(built_warehouse, tmp_path):
    """The dbt unit tests (model SQL on fixture rows) run here, against a copy of the built demo warehouse
    (they read their inputs' column types from it), since the daily build skips them."""
    import json
    import os
    import shutil
    import subprocess

    from sales_supervisor.dbt import dbt_executable
    from sales_supervisor.settings import DBT_PROJECT_DIR

    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(built_warehouse.warehouse, warehouse)
    manifest = json.loads((DBT_PROJECT_DIR / "target" / "manifest.json").read_text())
    expected = len(manifest.get("unit_tests", {}))
    proc = subprocess.run(
        [dbt_executable(), "test", "--select", "test_type:unit", "--profiles-dir", str(DBT_PROJECT_DIR),
         "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")],
        cwd=DBT_PROJECT_DIR, capture_output=True, text=True, timeout=900,
        env={**os.environ, "SALES_SUPERVISOR_DUCKDB_PATH": str(warehouse), "DBT_TARGET": "duckdb"},
    )
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert expected >= 20 and f"PASS={expected} " in proc.stdout, proc.stdout[-2000:]


# -- marts: not_null / relationships their own SQL or an upstream test already guarantees ------------

# (model, test, column): why it cannot fail when the upstream tests pass
GUARANTEED = {
    ("int_opportunity_stage_stints", "not_null", "stage_history_id"): "passed through from stg_crm__stage_history (not_null)",
    ("int_opportunity_stage_stints", "not_null", "opportunity_id"): "passed through from stg_crm__stage_history (not_null)",
    ("fct_stage_history", "not_null", "stage_history_id"): "passed through from the stints (stg_crm__stage_history, not_null)",
    ("fct_stage_history", "not_null", "opportunity_id"): "passed through from the stints (stg_crm__stage_history, not_null)",
    ("fct_stage_history", "not_null", "entered_at"): "passed through from the stints (stg_crm__stage_history, not_null)",
    ("fct_stage_history", "relationships", "opportunity_id"): "inner join on fct_opportunities",
    ("fct_stage_exits", "not_null", "stage_history_id"): "rows of fct_stage_history",
    ("fct_stage_exits", "not_null", "opportunity_id"): "rows of fct_stage_history",
    ("fct_coach_stage_exits", "not_null", "stage_history_id"): "rows of fct_stage_history",
    ("fct_coach_stage_exits", "not_null", "opportunity_id"): "rows of fct_stage_history",
    ("fct_lost_deals", "not_null", "opportunity_id"): "rows of fct_opportunities (stg_crm__opportunities, not_null)",
    ("fct_deal_remedies", "not_null", "opportunity_id"): "rows of fct_opportunities (stg_crm__opportunities, not_null)",
    ("fct_deal_remedies", "relationships", "opportunity_id"): "rows of fct_opportunities",
    ("fct_deal_remedies", "not_null", "closed_at"): "its where clause: closed_at is not null",
    ("fct_deal_remedies", "not_null", "is_won"): "passed through from fct_opportunities (not_null)",
}


def test_no_mart_tests_what_its_sql_or_an_upstream_test_guarantees():
    tests = {(m, name, c) for name, m, c, _ in _tests()}
    assert sorted(k for k in GUARANTEED if k in tests) == []
    # the tests these rest on are there, and every key is still tested for uniqueness (a join could fan out)
    assert {("stg_crm__stage_history", "not_null", "stage_history_id"), ("stg_crm__stage_history", "not_null", "opportunity_id"),
            ("stg_crm__stage_history", "not_null", "entered_at"), ("stg_crm__opportunities", "not_null", "opportunity_id"),
            ("fct_opportunities", "not_null", "is_won")} <= tests
    for model, key in [("int_opportunity_stage_stints", "stage_history_id"), ("fct_stage_history", "stage_history_id"),
                       ("fct_stage_exits", "stage_history_id"), ("fct_coach_stage_exits", "stage_history_id"),
                       ("fct_lost_deals", "opportunity_id"), ("fct_deal_remedies", "opportunity_id")]:
        assert (model, "unique", key) in tests, model


# -- the as-of date through the environment: the next day's run re-parses two models, not the project ------


def test_the_as_of_date_reaches_dbt_through_the_environment_and_keeps_partial_parsing(tmp_path):
    import os
    import subprocess

    from orchestration.assets.dbt import AS_OF_ENV, DBT_BUILD_ARGS
    from sales_supervisor.dbt import dbt_executable
    from sales_supervisor.settings import DBT_PROJECT_DIR

    assert "--vars" not in DBT_BUILD_ARGS

    def compile_dim_reps(as_of: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [dbt_executable(), "compile", "--select", "dim_reps", "--profiles-dir", str(DBT_PROJECT_DIR),
             "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs"), "--log-level", "debug"],
            cwd=DBT_PROJECT_DIR, capture_output=True, text=True, timeout=600,
            env={**os.environ, "DBT_TARGET": "duckdb", "SALES_SUPERVISOR_DUCKDB_PATH": str(tmp_path / "w.duckdb"),
                 AS_OF_ENV: as_of},
        )

    first = compile_dim_reps("2026-10-01")
    assert first.returncode == 0, first.stdout[-3000:]
    assert "cast('2026-10-01' as date)" in first.stdout
    second = compile_dim_reps("2026-10-02")
    assert second.returncode == 0, second.stdout[-3000:]
    assert "cast('2026-10-02' as date)" in second.stdout
    assert "Unable to do partial parsing" not in second.stdout
    assert "Partial parsing enabled" in second.stdout
