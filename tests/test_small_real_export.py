"""An export shaped like a small real one runs end to end to digests, from the README command.

tests/fixtures/small_real_export: only each deal's current stage, engage and close dates (no
creation date on prospecting deals), a teams file repeating the manager on every rep's row (and
one manager listed as a rep), regions as segments, no activity log, no user active flag.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from sales_supervisor.cli import app

EXPORT = Path(__file__).parent / "fixtures" / "small_real_export"

pytestmark = pytest.mark.slow


def test_small_real_export_runs_to_digests_with_every_rep_active_and_no_error_check(tmp_path):
    home = tmp_path / "var"
    result = CliRunner().invoke(
        app, ["run", "--home", str(home), "--source", "csv", "--csv-folder", str(EXPORT), "--mapping", str(EXPORT / "mapping.yaml")]
    )
    out = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert "as of 2017-12-31 (the export's latest timestamp" in out  # not today
    assert "Traceback" not in out and "failed check" not in out
    assert "managers: 9 input = 5 landed + 0 quarantined + 4 skipped (sales_teams.csv); 4 identical repeated row(s) kept once" in out
    assert "no active flag for reps: every rep counted active" in out
    assert "no activity log in the export" in out
    assert "no_recent_activity: the source has no activity log" in out
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        reps = con.execute("select rep_id, is_active, segment from marts.dim_reps order by 1").fetchall()
        assert len(reps) == 8 and all(active for _, active, _ in reps)  # Dustin Brinkmann manages: not a rep
        assert "Dustin Brinkmann" not in {r for r, _, _ in reps}
        assert {s for _, _, s in reps} == {"central", "west", "east"}
        assert con.execute("select count(*) from marts.dim_managers").fetchone()[0] == 5
        no_created = con.execute("select count(*) from marts.fct_opportunities where created_at is null").fetchone()[0]
        assert no_created == 10  # prospecting deals without an engage date land
        urls = {r[0] for r in con.execute("select source_url from marts.fct_opportunities").fetchall()}
        assert all(u.startswith("https://crm.smallco.test/deals/") for u in urls)
    digests = list((home / "outbox" / "digests" / "2017-12-31").glob("*.md"))
    assert len(digests) == 4
