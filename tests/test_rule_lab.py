"""The rule lab on a labelled outcome table: lift reproduced with pandas, CIs that tell no lift from too little data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agents.learning.rule_lab import LabError, load_labelled_table, run_rule_lab
from agents.learning.stats import LIFT, NO_LIFT, NOT_ENOUGH, lift_with_ci


def _labelled(n: int = 1500, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    days = rng.exponential(30, n).round(1)
    amount = rng.integers(5_000, 200_000, n)
    p_lost = np.clip(0.2 + days / 150, 0, 0.9)
    outcome = np.where(rng.random(n) < p_lost, "lost", "won").astype(object)
    df = pd.DataFrame({"deal": [f"d{i}" for i in range(n)], "days_in_stage": days, "amount": amount, "outcome": outcome})
    df.loc[:9, "days_in_stage"] = np.nan  # unknown: never flagged
    df.loc[10:19, "outcome"] = "open"  # not closed: skipped
    return df


def test_rule_lab_lift_matches_an_independent_pandas_computation(tmp_path):
    csv = tmp_path / "history.csv"
    _labelled().to_csv(csv, index=False)
    report = run_rule_lab(load_labelled_table(csv), "days_in_stage > 40 and amount >= 20000")

    df = pd.read_csv(csv)
    closed = df[df.outcome.isin(["won", "lost"])]
    flagged = (closed.days_in_stage > 40) & (closed.amount >= 20000)
    lost = closed.outcome.eq("lost")
    expected = lost[flagged].mean() / lost[~flagged].mean()
    assert round(report.estimate.lift, 2) == round(expected, 2)
    assert report.rows == len(closed) and report.excluded_rows == 10
    assert report.estimate.flagged == int(flagged.sum())
    assert round(report.share_flagged, 4) == round(flagged.mean(), 4)
    assert report.estimate.low < report.estimate.lift < report.estimate.high
    assert report.estimate.verdict == LIFT
    assert "Lift" in report.table() and "95% CI" in report.table()


def test_threshold_sweep_uses_won_deal_percentiles_and_finds_the_best_lift(tmp_path):
    df = _labelled()
    report = run_rule_lab(df, "days_in_stage > 40")
    closed = df[df.outcome.isin(["won", "lost"])]
    won_days = closed[closed.outcome == "won"].days_in_stage.dropna()
    assert [s.percentile for s in report.sweep] == list(range(50, 100, 5))
    assert report.sweep[0].threshold == pytest.approx(won_days.quantile(0.5))
    assert report.sweep[-1].threshold == pytest.approx(won_days.quantile(0.95))
    p75 = next(s for s in report.sweep if s.percentile == 75)
    f = closed.days_in_stage > p75.threshold
    lost = closed.outcome.eq("lost")
    assert round(p75.estimate.lift, 2) == round(lost[f].mean() / lost[~f].mean(), 2)
    best = max((s for s in report.sweep if s.estimate.flagged >= 10), key=lambda s: s.estimate.lift)
    assert report.best == best
    assert "Best lift: days_in_stage >" in report.table()


def test_a_boolean_outcome_column_and_a_custom_rule_from_the_policy(tmp_path):
    df = _labelled()
    df = df[df.outcome != "open"].assign(is_won=lambda d: d.outcome.eq("won")).drop(columns="outcome")
    report = run_rule_lab(df, "days_in_stage > 40", outcome="is_won")
    assert "1/true = won" in report.outcome_note
    assert report.estimate.lift > 1.5
    with_open = df.assign(is_closed=True)
    with_open.iloc[:100, with_open.columns.get_loc("is_closed")] = False  # open deals: is_won is false but they are not lost
    assert run_rule_lab(with_open, "days_in_stage > 40", outcome="is_won").rows == len(df) - 100


def test_clear_errors():
    df = _labelled()
    with pytest.raises(LabError, match="no outcome column 'result'"):
        run_rule_lab(df, "days_in_stage > 40", outcome="result")
    with pytest.raises(LabError, match="unknown name.*columns: deal, days_in_stage, amount"):
        run_rule_lab(df, "days_since_activity > 40")
    with pytest.raises(LabError, match="no won/lost values"):
        run_rule_lab(df.assign(outcome="maybe"), "days_in_stage > 40")


def test_verdicts_tell_no_lift_from_not_enough_data():
    assert lift_with_ci(5, 3, 20, 4).verdict == NOT_ENOUGH  # five flagged deals: too few
    big_flat = lift_with_ci(5000, 1000, 20000, 4000)  # lift 1.0 measured on 25,000 deals
    assert big_flat.verdict == NO_LIFT and big_flat.high < 1.1
    small_flat = lift_with_ci(30, 6, 60, 12)  # lift 1.0 on 90 deals: the interval is wide
    assert small_flat.verdict == NOT_ENOUGH and small_flat.high > 1.5
    assert lift_with_ci(500, 250, 500, 100).verdict == LIFT
    assert lift_with_ci(500, 250, 500, 100) == lift_with_ci(500, 250, 500, 100)  # seeded: reproducible


def test_the_backtest_reports_intervals_and_verdicts():
    import datetime as dt

    from agents.risk.quality import BacktestReport, RuleBacktest

    few = RuleBacktest("amount_swing", 4, 2, 400, 80, 1, None)  # 4 flagged deals: lift 2.5, but who knows
    strong = RuleBacktest("stalled_in_stage", 120, 60, 400, 80, 40, 21.0)
    flat = RuleBacktest("no_decision_maker", 3000, 600, 12000, 2400, 300, 30.0)
    assert few.as_row()["verdict"] == NOT_ENOUGH and few.as_row()["lift"] == 2.5
    row = strong.as_row()
    assert row["verdict"] == LIFT and row["lift_ci_low"] > 1 and row["lift_ci_high"] > row["lift"]
    assert flat.as_row()["verdict"] == NO_LIFT
    d = dt.date(2026, 9, 1)
    text = BacktestReport(d, d, 7, [d], d, 30, 500, [few, strong, flat]).table()
    assert "95% CI" in text and "not enough data" in text and "no lift" in text


def test_cli_rule_lab_prints_the_lift_and_writes_the_table(tmp_path):
    import json

    from typer.testing import CliRunner

    from sales_supervisor.cli import app

    csv = tmp_path / "history.csv"
    _labelled().to_csv(csv, index=False)
    out = tmp_path / "lab"
    result = CliRunner().invoke(app, ["rule-lab", "--csv", str(csv), "-e", "days_in_stage > 40", "--out", str(out),
                                      "--home", str(tmp_path / "home")])
    assert result.exit_code == 0, result.output
    assert "Lift 2.04 (95% CI" in result.output and "Best lift:" in result.output
    assert json.loads((out / "rule_lab.json").read_text())["lift"] == pytest.approx(2.04, abs=0.005)
    bad = CliRunner().invoke(app, ["rule-lab", "--csv", str(csv), "--rule", "stalled_in_stage", "--home", str(tmp_path)])
    assert bad.exit_code == 2 and "not a custom rule" in bad.output
