"""The real Salesforce Data Export (../shared/datasets) through the whole pipeline via its CSV mapping."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from sales_supervisor.pipeline import landing_summary, run_daily_job
from sales_supervisor.settings import Settings

REPO = Path(__file__).resolve().parents[1]
EXPORT = REPO.parent / "shared" / "datasets" / "salesforce_de_sample_export"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not EXPORT.exists(), reason="shared Salesforce sample not present"),
]


def test_salesforce_export_lands_in_the_marts_and_raises_past_due_flags(tmp_path):
    settings = Settings(
        home=tmp_path / "var",
        crm_source="csv",
        csv_folder=EXPORT,
        csv_mapping=REPO / "connectors" / "mappings" / "salesforce_data_export.yaml",
        as_of=dt.date(2018, 11, 1),
    )
    summary = run_daily_job(settings)
    assert summary.success, summary.failures
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        assert con.execute("select count(*) from marts.fct_opportunities").fetchone()[0] == 31
        assert con.execute("select count(*) from marts.fct_opportunities where is_won").fetchone()[0] == 18
        # OpportunityHistory repeats the stage on every change: one stint per deal remains
        assert con.execute("select count(*) from marts.fct_stage_history").fetchone()[0] == 31
        flags = con.execute(
            "select opportunity_id, observed from risk.risk_flags where rule_id = 'close_date_slipped'"
        ).fetchall()
        open_past_due = con.execute(
            "select count(*) from marts.fct_opportunities where not is_closed and close_date < date '2018-11-01'"
        ).fetchone()[0]
        not_applicable = dict(
            con.execute("select rule_id, reason from risk.not_applicable where rule_id = 'no_recent_activity'").fetchall()
        )
    assert flags and all("past_due" in str(observed) for _, observed in flags)
    assert open_past_due == 13
    assert not_applicable == {"no_recent_activity": "the source has no activity log"}
    # no User.csv in this export: the summary names the missing file and what it disables, no ERROR check fails
    assert not summary.failed_error_checks, summary.failed_error_checks
    landing = landing_summary(settings.warehouse_path, summary.run_id)
    assert any(m.startswith("no users/reps file in the export: flags reach no manager") for m in landing.missing)
    assert "opportunities: 31 input = 31 landed + 0 quarantined + 0 skipped (Opportunity.csv)" in landing.lines
