"""`sales-supervisor run` tells the truth: exit code, first line, landing accounting, missing objects."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from sales_supervisor.cli import app
from sales_supervisor.pipeline import RunSummary, landing_summary

# The real Salesforce Data Export shared beside the checkout (../shared/datasets); tests that read it skip without it.
SALESFORCE_EXPORT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "salesforce_de_sample_export"
needs_export = pytest.mark.skipif(not SALESFORCE_EXPORT.exists(), reason="shared Salesforce sample not present")

runner = CliRunner()


def _summary(tmp_path, checks):
    return RunSummary(success=True, run_id="run-123456789", as_of=dt.date(2026, 10, 1), warehouse=tmp_path / "w.duckdb", checks=checks)


@pytest.mark.parametrize(
    ("checks", "exit_code", "first_line"),
    [
        ([{"asset": "raw/reps", "check": "gx", "passed": True, "severity": "ERROR", "description": ""}], 0, "succeeded in"),
        ([{"asset": "raw/reps", "check": "gx", "passed": False, "severity": "WARN", "description": "w"}], 0, "succeeded in"),
        (
            [{"asset": "raw/reps", "check": "gx", "passed": False, "severity": "ERROR", "description": "e"},
             {"asset": "raw/x", "check": "gx", "passed": False, "severity": "ERROR", "description": "e"}],
            1,
            "succeeded with 2 failed checks",
        ),
    ],
)
def test_run_exits_non_zero_when_an_error_check_failed(tmp_path, monkeypatch, checks, exit_code, first_line):
    import sales_supervisor.pipeline as pipeline

    monkeypatch.setattr(pipeline, "run_daily_job", lambda settings, **kw: _summary(tmp_path, checks))
    result = runner.invoke(app, ["run", "--home", str(tmp_path / "var")])
    assert result.exit_code == exit_code, result.output
    assert f"Run run-1234 {first_line}" in " ".join(result.output.split())


@pytest.mark.parametrize(("source", "setting"), [("hubspot", "HUBSPOT_TOKEN"), ("salesforce", "SALESFORCE_INSTANCE_URL"), ("pipedrive", "PIPEDRIVE_API_TOKEN")])
def test_a_source_without_credentials_fails_with_one_line_naming_the_setting(tmp_path, monkeypatch, source, setting):
    for name in ("HUBSPOT_TOKEN", "SALESFORCE_INSTANCE_URL", "SALESFORCE_ACCESS_TOKEN", "PIPEDRIVE_API_TOKEN", "PIPEDRIVE_COMPANY_DOMAIN"):
        monkeypatch.delenv(name, raising=False)
    result = runner.invoke(app, ["run", "--home", str(tmp_path / "var"), "--source", source])
    assert result.exit_code == 2
    assert setting in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) <= 2  # one message (wrapped at most once)


def test_run_help_lists_every_source():
    result = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    for source in ("demo", "csv", "hubspot", "salesforce", "pipedrive"):
        assert source in result.output


def test_landing_summary_names_missing_objects_absent_fields_and_rules_not_applicable(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema raw; create schema risk")
        con.execute(
            "create table raw.landing_reports (landing_id VARCHAR, loaded_at TIMESTAMP, object VARCHAR, source_system VARCHAR, "
            "source_file VARCHAR, present BOOLEAN, rows BIGINT, rejected BIGINT, skipped BIGINT, input_rows BIGINT, reasons VARCHAR, "
            "absent_fields VARCHAR, notes VARCHAR, max_quarantine_share DOUBLE)"
        )
        con.execute(
            "insert into raw.landing_reports values "
            "('r1', now(), 'opportunities', 's', 'Opportunity.csv', true, 30, 1, 2, 33, '{}', 'source_url', null, 0.2), "
            "('r1', now(), 'reps', 's', 'User.csv', false, 0, 0, 0, 0, '{}', null, null, 0.2), "
            "('r1', now(), 'managers', 's', 'Team.csv', true, 2, 0, 5, 7, '{}', null, '5 identical repeated row(s) kept once', 0.2), "
            "('r1', now(), 'activities', 's', null, false, 0, 0, 0, 0, '{}', null, null, 0.2), "
            "('old', now(), 'quotas', 's', null, false, 0, 0, 0, 0, '{}', null, null, 0.2)"
        )
        con.execute("create table risk.not_applicable (run_id VARCHAR, as_of DATE, rule_id VARCHAR, reason VARCHAR, subjects BIGINT)")
        con.execute("insert into risk.not_applicable values ('r1', '2026-10-01', 'no_recent_activity', 'the source has no activity log', 12)")
    out = landing_summary(warehouse, "r1")
    assert "opportunities: 33 input = 30 landed + 1 quarantined + 2 skipped (Opportunity.csv)" in out.lines
    assert any(line.startswith("managers: 7 input = 2 landed") and "5 identical repeated" in line for line in out.lines)
    assert any("no users/reps file in the export: flags reach no manager" in m for m in out.missing)
    assert any("no activity log" in m for m in out.missing)
    assert not any("quotas" in m for m in out.missing)  # another landing's report
    assert out.not_applicable == ["no_recent_activity: the source has no activity log (12)"]


@needs_export
def test_a_file_exports_default_as_of_is_its_latest_timestamp(tmp_path, monkeypatch):
    from pathlib import Path

    import sales_supervisor.pipeline as pipeline
    from connectors.registry import export_as_of
    from sales_supervisor.settings import Settings

    export = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "salesforce_de_sample_export"
    mapping = Path(__file__).resolve().parents[1] / "connectors" / "mappings" / "salesforce_data_export.yaml"
    settings = Settings(home=tmp_path, crm_source="csv", csv_folder=export, csv_mapping=mapping)
    assert export_as_of(settings) == dt.date(2018, 10, 13)  # every record was created 2018-10-13 17:16:45
    assert export_as_of(settings.model_copy(update={"as_of": dt.date(2019, 1, 1)})) is None  # --as-of wins
    seen = {}

    def fake_run(settings, **kw):
        seen["as_of"] = settings.effective_as_of()
        return _summary(tmp_path, [])

    monkeypatch.setattr(pipeline, "run_daily_job", fake_run)
    result = runner.invoke(app, ["run", "--home", str(tmp_path), "--source", "csv", "--csv-folder", str(export), "--mapping", str(mapping)])
    assert result.exit_code == 0, result.output
    assert seen["as_of"] == dt.date(2018, 10, 13)
    assert "as of 2018-10-13 (the export's latest timestamp" in " ".join(result.output.split())


@needs_export
def test_a_run_the_schedule_or_the_ui_starts_reads_a_file_export_as_of_its_latest_timestamp(tmp_path):
    """The Dagster resource (schedule, UI launches) gives a CSV source the same default as `run`; an
    explicit as-of still wins, and other sources keep theirs."""
    from pathlib import Path

    from orchestration.resources import SupervisorSettings

    export = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "salesforce_de_sample_export"
    mapping = Path(__file__).resolve().parents[1] / "connectors" / "mappings" / "salesforce_data_export.yaml"
    resource = SupervisorSettings(home=str(tmp_path), crm_source="csv", csv_folder=str(export), csv_mapping=str(mapping))
    assert resource.as_of_date() == dt.date(2018, 10, 13)
    assert resource.settings().effective_as_of() == dt.date(2018, 10, 13)
    pinned = SupervisorSettings(home=str(tmp_path), crm_source="csv", csv_folder=str(export), csv_mapping=str(mapping), as_of="2019-01-01")
    assert pinned.as_of_date() == dt.date(2019, 1, 1)
    assert SupervisorSettings(home=str(tmp_path), crm_source="demo").as_of_date() == dt.date(2026, 10, 1)
