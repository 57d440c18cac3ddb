"""Fault and abuse: the approval sensor requests exactly one publish run per new batch of decisions.

Driven through Dagster's own sensor context (``build_sensor_context``) against a real ledger:
no decision -> no run; an approval -> one RunRequest whose run key is stable (so a replayed tick
is deduplicated by Dagster); an evaluation that already advanced the cursor requests nothing more.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from agents.ledger import open_ledger
from orchestration.assets.review import approval_sensor, publish_job
from orchestration.resources import SupervisorSettings


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


def _items(home, n=3):
    with open_ledger(home=home) as ledger:
        digest = ledger.create_digest("run-1", "mgr-1", dt.date(2026, 10, 1))
        return [
            ledger.add_item(
                digest.digest_id, flag_id=f"flag_{i}", rule_id="stalled_in_stage", severity="high",
                draft={"action": f"Book a pricing review on opp-{i}."}, evidence={"crm_records": [f"opp-{i}"]},
                opportunity_id=f"opp-{i}", rep_id="rep-1",
            ).item_id
            for i in range(n)
        ]


def _decide(home, item_id, action="approve"):
    with open_ledger(home=home) as ledger:
        ledger.record_decision(item_id, action, "mgr-1", "cli", reason="test" if action == "dismiss" else None)


def _tick(home, cursor):
    context = dg.build_sensor_context(cursor=cursor, resources={"supervisor": SupervisorSettings(home=str(home))})
    result = approval_sensor(context)
    return result, context.cursor


def test_no_new_decision_requests_no_run(home):
    _items(home)
    result, cursor = _tick(home, None)
    assert isinstance(result, dg.SkipReason) and "no new decisions" in result.skip_message
    assert cursor in (None, "0")


def test_an_approval_requests_one_run_with_a_stable_key_and_never_a_second(home):
    items = _items(home)
    _decide(home, items[0])
    result, cursor = _tick(home, None)
    assert isinstance(result, dg.RunRequest)
    assert result.run_key == "decisions-1" and cursor == "1"
    # the next tick, from the advanced cursor, requests nothing: no duplicate run for the same decision
    again, cursor_after = _tick(home, cursor)
    assert isinstance(again, dg.SkipReason) and cursor_after == "1"
    # a tick replayed from the old cursor (its cursor update lost) asks for the same run key,
    # which Dagster deduplicates per sensor: still one run for that decision
    replay, _ = _tick(home, None)
    assert isinstance(replay, dg.RunRequest) and replay.run_key == result.run_key
    # a later decision gets its own run
    _decide(home, items[1])
    later, cursor_later = _tick(home, cursor)
    assert isinstance(later, dg.RunRequest) and later.run_key == "decisions-2" and cursor_later == "2"


def test_dismissals_advance_the_cursor_without_a_run(home):
    items = _items(home)
    _decide(home, items[0], "dismiss")
    result, cursor = _tick(home, None)
    assert isinstance(result, dg.SkipReason) and "none approved" in result.skip_message
    assert cursor == "1"


def test_the_sensor_is_in_the_definitions_and_targets_the_publish_job():
    from orchestration.definitions import defs

    sensor = defs.get_sensor_def("approval_sensor")
    assert sensor.job_name == publish_job.name == "publish_job"
    assert sensor.minimum_interval_seconds == 30
    daily = defs.resolve_job_def("daily_supervisor_job")
    assert dg.AssetKey(["review", "published_coaching"]) not in daily.asset_layer.executable_asset_keys
