"""Charts beside the tables: PNG files that render, and HTML pages showing them with the numbers."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import numpy as np
import pandas as pd

from agents.learning.charts import backtest_charts, effectiveness_charts, rule_lab_charts
from agents.learning.rule_lab import run_rule_lab
from agents.risk.quality import BacktestReport, RuleBacktest

PNG = b"\x89PNG\r\n\x1a\n"


def _png_ok(path) -> bool:
    data = path.read_bytes()
    return data.startswith(PNG) and len(data) > 10_000


def test_backtest_chart_shows_every_rule_with_its_interval(tmp_path):
    d = dt.date(2026, 9, 1)
    rules = [RuleBacktest("stalled_in_stage", 120, 60, 400, 80, 40, 21.0), RuleBacktest("amount_swing", 4, 2, 400, 80, 1, None),
             RuleBacktest("no_decision_maker", 3000, 600, 12000, 2400, 300, 30.0), RuleBacktest("rep_x", 0, 0, 400, 0, 0, None)]
    png, page = backtest_charts(BacktestReport(d, d, 7, [d], d, 30, 500, rules), tmp_path, floor=1.1)
    assert _png_ok(png)
    text = page.read_text()
    assert 'src="lift_per_rule.png"' in text and "not enough data" in text and "no lift" in text


def test_effectiveness_and_sweep_charts(tmp_path):
    outcomes = []
    for k in range(60):
        week = dt.date(2026, 8, 10) + dt.timedelta(days=7 * (k % 4))
        outcomes.append(SimpleNamespace(
            rule_id=["stalled_in_stage", "no_decision_maker"][k % 2], manager_id="mgr-1", rep_id="rep-1",
            decision="approved" if k % 3 else "dismissed", achieved=bool(k % 5), flagged_on=week,
            aimed_change="stage_advanced" if k % 2 == 0 else "decision_maker_meeting", final_result="won"))
    paths = effectiveness_charts(outcomes, tmp_path / "outcomes")
    assert [p.name for p in paths] == ["effectiveness_per_rule.png", "effectiveness_over_time.png", "outcomes.html"]
    assert all(_png_ok(p) for p in paths[:2])
    assert "stage advanced" in paths[2].read_text()

    rng = np.random.default_rng(1)
    days = rng.exponential(30, 500)
    df = pd.DataFrame({"days": days, "outcome": np.where(rng.random(500) < 0.2 + days / 200, "lost", "won")})
    files = rule_lab_charts(run_rule_lab(df, "days > 30"), tmp_path / "lab")
    assert [p.name for p in files] == ["threshold_sweep.png", "rule_lab.html"]
    assert _png_ok(files[0]) and "p95" in files[1].read_text()
