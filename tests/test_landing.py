"""Landing: the CSV folder source, its mapping, quarantine of bad rows, and the Dagster assets."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from connectors.csv_folder import CsvFolderSource
from connectors.mapping import MappingError, load_mapping
from connectors.schema import RAW_OBJECTS

FIXTURES = Path(__file__).parent / "fixtures"
BAD_ROWS = FIXTURES / "csv_bad_rows"
SALESFORCE_EXPORT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "salesforce_de_sample_export"
REPO = Path(__file__).resolve().parents[1]


def _read_all(source: CsvFolderSource, name: str):
    rows, rejected = [], []
    for batch in source.read(name, batch_size=2):
        rows += batch.row_dicts()
        rejected += batch.rejected
    return rows, rejected


def test_bad_rows_are_quarantined_with_file_row_field_and_reason():
    source = CsvFolderSource(BAD_ROWS, BAD_ROWS / "mapping.yaml")
    rows, rejected = _read_all(source, "opportunities")
    assert [r["opportunity_id"] for r in rows] == ["D-1", "D-7"]
    by_row = {r["row_number"]: r for r in rejected}
    assert set(by_row) == {2, 3, 4, 5, 6}
    assert all(r["source_file"] == "Deals.csv" and r["object"] == "opportunities" for r in rejected)
    assert by_row[2]["field"] == "opportunity_id" and "missing required value" in by_row[2]["reason"]
    assert by_row[3]["field"] == "created_at" and "unparseable timestamp: '31/02/2026'" in by_row[3]["reason"]
    assert by_row[4]["field"] == "amount" and "negative amount" in by_row[4]["reason"]
    assert by_row[5]["field"] == "stage" and "unknown stage 'Limbo'" in by_row[5]["reason"]
    assert by_row[6]["field"] == "stage, amount"  # every problem of a row is named
    # nothing is lost: the row as read travels with the rejection
    assert json.loads(by_row[4]["raw_record"])["Deal Name"] == "Negative value"
    assert source.reports["opportunities"].rows == 2 and source.reports["opportunities"].rejected == 5


def test_typed_values_follow_the_canonical_schema():
    source = CsvFolderSource(BAD_ROWS, BAD_ROWS / "mapping.yaml")
    rows, _ = _read_all(source, "opportunities")
    good = rows[0]
    assert good["amount"] == 12000.0
    assert good["created_at"].isoformat() == "2026-01-05T09:00:00"
    assert good["close_date"].isoformat() == "2026-11-30"
    assert good["next_step"] == "call Friday"
    stages, _ = _read_all(source, "stages")
    assert [(s["stage"], s["stage_order"], s["is_closed"], s["is_won"]) for s in stages][-2:] == [
        ("Won", 3, True, True),
        ("Lost", 4, True, False),
    ]


def test_optional_objects_may_be_absent_but_opportunities_are_required(tmp_path):
    source = CsvFolderSource(BAD_ROWS, BAD_ROWS / "mapping.yaml")
    assert list(source.read("activities")) == []
    assert source.reports["activities"].present is False
    (tmp_path / "stages.csv").write_text("stage,stage_order,is_closed,is_won\nOpen,1,false,false\n")
    with pytest.raises(MappingError, match="required object 'opportunities' not found"):
        list(CsvFolderSource(tmp_path).read("opportunities"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("objects: {opportunities: {file: a.csv}}\n", "stages: list the CRM's stages"),
        ("stages: [{name: A, order: 1}]\nobjects: {deals: {file: a.csv}}\n", "unknown object 'deals'"),
        (
            "stages: [{name: A, order: 1}]\nobjects: {opportunities: {file: a.csv, columns: {price: Value}}}\n",
            "unknown canonical field 'price'",
        ),
        ("stages: [{name: A, order: 1, won: true}]\nobjects: {opportunities: {file: a.csv}}\n", "won: true requires closed: true"),
        ("- just\n- a list\n", "expected a mapping at the top level"),
    ],
)
def test_mapping_errors_name_the_file_and_the_field(tmp_path, text, message):
    path = tmp_path / "mapping.yaml"
    path.write_text(text)
    with pytest.raises(MappingError) as info:
        load_mapping(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_a_mapped_column_missing_from_the_file_is_a_clear_error(tmp_path):
    (tmp_path / "Deals.csv").write_text("Id,Stage\n1,Open\n")
    (tmp_path / "m.yaml").write_text(
        "stages: [{name: Open, order: 1}]\nobjects: {opportunities: {file: Deals.csv, columns: {opportunity_id: Id, created_at: Created}}}\n"
    )
    with pytest.raises(MappingError, match=r"Deals.csv: mapped column\(s\) 'Created' not in the file's header"):
        list(CsvFolderSource(tmp_path, tmp_path / "m.yaml").read("opportunities"))


@pytest.mark.skipif(not SALESFORCE_EXPORT.exists(), reason="shared Salesforce sample not present")
def test_the_real_salesforce_data_export_reads_through_its_mapping():
    source = CsvFolderSource(SALESFORCE_EXPORT, REPO / "connectors" / "mappings" / "salesforce_data_export.yaml")
    opps, rejected = _read_all(source, "opportunities")
    assert len(opps) == 31 and rejected == []
    history, rejected = _read_all(source, "stage_history")
    assert len(history) == 62 and rejected == []
    accounts, rejected = _read_all(source, "accounts")
    assert len(accounts) == 12 and rejected == []
    won = [o for o in opps if o["is_won"]]
    assert len(won) == 18 and all(o["is_closed"] for o in won)


def test_landing_assets_quarantine_bad_rows_and_the_check_reports_them(tmp_path):
    """A real Dagster materialisation of the landing assets and their checks on a CSV export with bad rows."""
    from dagster_dlt import DagsterDltResource

    from orchestration.assets.landing import crm_landing
    from orchestration.checks import rejected_rows_checks
    from orchestration.resources import SupervisorSettings

    supervisor = SupervisorSettings(
        home=str(tmp_path / "var"), crm_source="csv", csv_folder=str(BAD_ROWS), csv_mapping=str(BAD_ROWS / "mapping.yaml")
    )
    result = dg.materialize(
        [crm_landing, *rejected_rows_checks],
        resources={"supervisor": supervisor, "dlt": DagsterDltResource()},
        raise_on_error=False,
    )
    assert result.success
    warehouse = tmp_path / "var" / "warehouse.duckdb"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select opportunity_id, source_url from raw.opportunities order by 1").fetchall() == [
            ("D-1", "https://crm.acme.invalid/deals/D-1"), ("D-7", "https://crm.acme.invalid/deals/D-7")]
        rejected = con.execute(
            "select object, source_file, row_number, field from raw.rejected_rows order by object, row_number"
        ).fetchall()
        # every table exists, even for objects the export lacks
        assert con.execute("select count(*) from raw.activities").fetchone()[0] == 0
        assert con.execute("select _source_system from raw.opportunities limit 1").fetchone()[0] == "acme_crm"
    assert ("accounts", "Companies.csv", 2, "employees") in rejected
    assert [r[2] for r in rejected if r[0] == "opportunities"] == [2, 3, 4, 5, 6]

    evaluations = {
        (e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()
    }
    opp_check = evaluations[("raw/opportunities", "no_rejected_rows")]
    assert not opp_check.passed
    # 5 of 7 quarantined is above the 20% limit: an ERROR naming the commonest reason
    assert opp_check.severity == dg.AssetCheckSeverity.ERROR
    assert opp_check.description.startswith("71% of opportunities quarantined (limit 20%): ")
    assert "opportunities: 7 input row(s) = 2 landed + 5 quarantined + 0 skipped (from Deals.csv)" in opp_check.description
    assert "row 2: opportunity_id: missing required value" in opp_check.description
    accounts_check = evaluations[("raw/accounts", "no_rejected_rows")]
    assert not accounts_check.passed and accounts_check.severity == dg.AssetCheckSeverity.ERROR  # 1 of 2
    assert evaluations[("raw/stages", "no_rejected_rows")].passed
    mats = {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert mats["raw/opportunities"]["rows_rejected"].value == 5
    assert mats["raw/opportunities"]["rows_landed"].value == 2
    assert mats["raw/opportunities"]["rows_input"].value == 7 and mats["raw/opportunities"]["rows_skipped"].value == 0


def test_quarantine_verdict_names_the_likely_cause_and_checks_the_accounting():
    from connectors.landing import quarantine_verdict

    report = {"object": "opportunities", "rows": 0, "rejected": 31, "skipped": 0, "input_rows": 31, "source_file": "Opportunity.csv",
              "reasons": '{"stage: unknown stage \'Closed Won\'": 31}', "max_quarantine_share": 0.2}
    severity, accounted, within, text = quarantine_verdict(report)
    assert (severity, accounted, within) == ("ERROR", True, False)
    assert text.startswith("all 31 opportunities quarantined (limit 20%): 31 x stage: unknown stage 'Closed Won' - is the stage list complete")
    ok = dict(report, rows=30, rejected=1, reasons='{"amount: negative amount: -1": 1}')
    assert quarantine_verdict(ok)[:3] == ("WARN", True, True)
    lost = dict(report, rows=20, rejected=1, reasons="{}")
    severity, accounted, _, text = quarantine_verdict(lost)
    assert severity == "ERROR" and not accounted and "unaccounted for" in text
    assert quarantine_verdict(dict(ok, max_quarantine_share=0.01))[0] == "ERROR"


def test_the_mappings_crm_base_url_becomes_each_deals_source_url(tmp_path):
    source = CsvFolderSource(BAD_ROWS, BAD_ROWS / "mapping.yaml")
    rows, _ = _read_all(source, "opportunities")
    assert [r["source_url"] for r in rows] == ["https://crm.acme.invalid/deals/D-1", "https://crm.acme.invalid/deals/D-7"]
    mapping = load_mapping(BAD_ROWS / "mapping.yaml").model_copy(update={"crm_base_url": "https://acme.example/r/{record_id}/view"})
    rows, _ = _read_all(CsvFolderSource(BAD_ROWS, mapping), "opportunities")
    assert rows[0]["source_url"] == "https://acme.example/r/D-1/view"


def test_api_row_batches_go_to_dlt_as_arrow_tables_of_the_declared_types():
    import datetime as dt

    import pyarrow as pa

    from connectors.landing import _as_arrow
    from connectors.pipedrive.tables import TABLES

    acts = TABLES["activities"]
    row = {f.name: None for f in acts.fields} | {"id": "3001", "done": True, "add_time": dt.datetime(2026, 8, 10),
                                                 "_source_system": "pipedrive", "_extra": "{}", "_is_deleted": False}
    table = _as_arrow(acts, [row, dict(row, id="3002", done=False)])
    assert isinstance(table, pa.Table) and table.num_rows == 2
    assert table.schema.field("done").type == pa.bool_() and table.schema.field("add_time").type == pa.timestamp("us")
    assert not table.schema.field("id").nullable
    # a key outside the declared shape: the rows go as they are (nothing dropped)
    odd = [dict(row, surprise=1)]
    assert _as_arrow(acts, odd) is odd


def test_reasons_of_an_api_landing_are_counted_from_its_quarantined_rows(tmp_path):
    from connectors.landing import quarantine_verdict, with_reasons
    from connectors.schema import create_rejected_rows_sql

    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute("create schema raw")
        con.execute(create_rejected_rows_sql("raw"))
        for i in range(3):
            con.execute(
                "insert into raw.rejected_rows (object, row_number, field, reason, landing_id) values "
                "('opportunities', ?, 'stage', 'stage: unknown stage ''Closed Won'' (known: )', 'L1')", [i]
            )
        report = {"landing_id": "L1", "object": "opportunities", "rows": 0, "rejected": 3, "skipped": 0,
                  "input_rows": None, "reasons": "{}", "source_file": "raw_salesforce.opportunity (0)"}
        text = quarantine_verdict(with_reasons(con, report))[3]
    assert text.startswith("all 3 opportunities quarantined (limit 20%): 3 x stage: unknown stage 'Closed Won' - is the stage list complete")


def test_a_warehouse_landed_before_the_columnar_path_lands_again(tmp_path):
    """Row-by-row dlt loads created dlt's bookkeeping columns NOT NULL; Parquet loads leave them
    empty. A warehouse from before must re-land (once, it failed with 'NOT NULL constraint failed:
    stages._dlt_load_id') and keep its rows' lineage."""
    from connectors.landing import land_source
    from connectors.schema import create_table_sql

    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema raw")
        for obj in RAW_OBJECTS.values():
            ddl = create_table_sql(obj, "raw")  # as dlt's row-by-row loads left them:
            con.execute(ddl[:-1] + ", _dlt_load_id VARCHAR NOT NULL, _dlt_id VARCHAR NOT NULL)")
        con.execute("alter table raw.opportunities drop column source_url")  # a column added since

    land_source(CsvFolderSource(BAD_ROWS, BAD_ROWS / "mapping.yaml"), warehouse, tmp_path / "work", landing_id="again")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select opportunity_id, source_url from raw.opportunities order by 1").fetchall() == [
            ("D-1", "https://crm.acme.invalid/deals/D-1"), ("D-7", "https://crm.acme.invalid/deals/D-7")]
        not_null = con.execute(
            "select table_name, column_name from information_schema.columns where table_schema = 'raw' "
            "and column_name in ('_dlt_load_id', '_dlt_id') and is_nullable = 'NO' and table_name not like '\\_dlt%' escape '\\'").fetchall()
        assert not_null == []
