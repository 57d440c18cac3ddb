"""Decisions stick on the demo CRM (issue 12 acceptance): a dismissed item does not return on the next day's
run unless its evidence changed; the test proves both branches on real next-day runs of the risk, drafting
and review steps over the session's demo warehouse (copied, so other tests are not affected)."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest

from agents.ledger import open_ledger
from sales_supervisor.pipeline import run_daily_job
from sales_supervisor.settings import Settings

pytestmark = pytest.mark.slow
STEPS = ["risk/risk_flags", "risk/coaching_drafts", "review/manager_digests"]


def _day(home, day):
    settings = Settings(home=home, crm_source="demo", as_of=day)
    summary = run_daily_job(settings, selection=STEPS)
    assert summary.success, summary.failures
    folder = home / "outbox" / "digests" / day.isoformat()
    held = json.loads((folder / "mgr-0001.held_back.json").read_text())["held_back"]
    return held, (folder / "mgr-0001.md").read_text()


def test_dismissed_items_stay_out_until_their_evidence_changes(built_warehouse, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(built_warehouse.warehouse, home / "warehouse.duckdb")
    shutil.copy(built_warehouse.home / "ledger.sqlite", home / "ledger.sqlite")
    day0 = built_warehouse.settings.effective_as_of()
    with open_ledger(home=home) as ledger:
        items = ledger.pending_items("mgr-0001", latest_only=True)
        quiet = next(i for i in items if i.rule_id == "no_recent_activity")  # grows a day per day: reopens after +14
        no_dm = next(i for i in items if i.rule_id == "no_decision_maker")  # reopens only on a new stage
        ledger.record_decision(quiet.item_id, "dismiss", "mgr-0001", "cli", reason="customer on holiday")
        ledger.record_decision(no_dm.item_id, "dismiss", "mgr-0001", "cli", reason="customer already confirmed new date by email")

    def held_why(held, item):
        return [h["why"] for h in held if h["opportunity_id"] == item.opportunity_id and h["rule_id"] == item.rule_id]

    # The next morning: nothing material changed, both stay out of the items and are listed as held back.
    held, text = _day(home, day0 + dt.timedelta(days=1))
    # Items cite their remedy curve's query (a failure there degrades silently). The Markdown escapes "_" in
    # link labels ("mfq\_..."), so the check reads the text as rendered.
    assert "what worked (mfq_" in text.replace("\\_", "_")
    for item in (quiet, no_dm):
        assert held_why(held, item) and "dismissed on" in held_why(held, item)[0]
    assert "customer already confirmed new date by email" in held_why(held, no_dm)[0]
    with open_ledger(home=home) as ledger:
        latest = ledger.pending_items("mgr-0001", latest_only=True)
    assert not [i for i in latest if (i.opportunity_id, i.rule_id) in {(quiet.opportunity_id, quiet.rule_id), (no_dm.opportunity_id, no_dm.rule_id)}]

    # Fifteen days on, still inside the cool-off: 15 more quiet days is a material change for no_recent_activity
    # (policy: +14), so it returns and says why; the deal without a decision maker has not changed stage.
    held, text = _day(home, day0 + dt.timedelta(days=15))
    assert not held_why(held, quiet)
    note = next(line for line in text.splitlines() if "proposed again" in line and "days without activity" in line)
    assert "since you dismissed it on" in note and "('customer on holiday')" in note
    assert held_why(held, no_dm)

    # Re-running the same day keeps the same items and decisions: no second set of pending items.
    with open_ledger(home=home) as ledger:
        before = sorted(i.item_id for i in ledger.pending_items("mgr-0001", latest_only=False))
    _day(home, day0 + dt.timedelta(days=15))
    with open_ledger(home=home) as ledger:
        after = sorted(i.item_id for i in ledger.pending_items("mgr-0001", latest_only=False))
    assert after == before
