"""make bench: Dagster steps map to bench steps, and each step's CPU time and peak memory come
from the process-tree samples inside its window (synthetic samples; the real run is `make bench`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location("bench", Path(__file__).resolve().parent.parent / "benchmarks" / "bench.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_dagster_steps_map_to_bench_steps():
    assert bench.bench_step("crm_landing") == "land"
    assert bench.bench_step("dbt_models") == "dbt"
    assert bench.bench_step("risk__risk_flags") == "risk flags"
    assert bench.bench_step("review__manager_digests") == "digests"
    assert bench.bench_step("raw_opportunities_great_expectations") == "checks"


def test_cpu_and_peak_memory_per_step_window(capsys):
    mb = 2**20
    # (time, cumulative CPU seconds of the tree, tree RSS)
    samples = [(0, 0.0, 10 * mb), (1, 0.5, 20 * mb), (2, 1.5, 300 * mb), (3, 2.5, 50 * mb), (4, 2.6, 40 * mb),
               (5, 3.0, 45 * mb)]
    result = {
        "scale": 1, "success": True, "run_start": 1, "run_end": 5, "failures": [], "rows": {"raw.x": 3},
        "flags_by_rule": {"r": 2}, "floor": {"wall_s": 0.1, "cpu_s": 0.1, "stalled_in_stage": 1, "no_recent_activity": 2},
        "windows": [
            {"step": "generate", "start": 0, "end": 1, "cached": False},
            {"step": "land", "start": 1, "end": 3},
            {"step": "checks", "start": 3, "end": 4},
            {"step": "checks", "start": 4, "end": 5, "unfinished": True},
        ],
    }
    r = bench.summarise(result, samples)
    assert r["steps"]["land"] == {"wall_s": 2, "cpu_s": 2.0, "peak_mb": 300.0, "n": 1}
    assert r["steps"]["checks"]["n"] == 2 and abs(r["steps"]["checks"]["cpu_s"] - 0.5) < 1e-9
    assert r["steps"]["checks"]["unfinished"]
    assert r["end_to_end"]["cpu_s"] == 3.0 and r["end_to_end"]["peak_mb"] == 300.0
    bench.print_result(r)
    out = capsys.readouterr().out
    assert "land" in out and "300" in out and "unfinished" in out and "flags per rule: r 2" in out


def test_the_readme_table_comes_from_a_saved_report_with_cpu_growth_per_step(tmp_path, capsys):
    def result(scale, land_cpu, success=True, **extra):
        return {"scale": scale, "success": success, "rows": {}, "flags_by_rule": {}, "failures": [],
                "floor": {"wall_s": 0.5, "cpu_s": 0.1},
                "steps": {"generate": {"wall_s": 1, "cpu_s": 1, "peak_mb": 1, "n": 1, "cached": True},
                          "land": {"wall_s": land_cpu, "cpu_s": land_cpu, "peak_mb": 700.0, "n": 1},
                          "checks": {"wall_s": 2, "cpu_s": 2, "peak_mb": 600, "n": 38}},
                "end_to_end": {"wall_s": 99.0, "run_wall_s": 98.0, "cpu_s": 50.0, "peak_mb": 700.0}, **extra}

    report = {"started": "2026-12-02T01:00:00+00:00", "machine": {"platform": "Linux", "cpus": 2, "python": "3.11"},
              "results": [result(10, 16.0), result(100, 160.0, success=False, partial=True)]}
    table = bench.markdown_table(report)
    assert "| step | scale 10 | scale 100 (partial) | CPU growth 10 -> 100 |" in table
    assert "| land | 16.0 / 16.0 / 700 | 160.0 / 160.0 / 700 | 10.0x |" in table
    assert "| checks (38 steps) |" in table and "| generate | cached | cached | - |" in table
    saved = tmp_path / "latest.json"
    saved.write_text(__import__("json").dumps(report))
    assert bench.main(["--from", str(saved)]) == 0
    assert "| land | 16.0 / 16.0 / 700 |" in capsys.readouterr().out
    assert bench.main(["--from", str(tmp_path / "missing.json")]) == 2


def test_a_window_between_samples_counts_only_its_share_of_the_neighbouring_intervals():
    # CPU 1.0 s over [0, 1] and 2.0 s over [1, 2]; a step from 0.5 to 1.5 spent half of each: 0.5 + 1.0.
    samples = [(0, 0.0, 0), (1, 1.0, 0), (2, 3.0, 0)]
    result = {"scale": 1, "success": True, "run_start": 0, "run_end": 2, "failures": [], "rows": {},
              "flags_by_rule": {}, "floor": {},
              "windows": [{"step": "generate", "start": 0, "end": 0.5}, {"step": "risk flags", "start": 0.5, "end": 1.5},
                          {"step": "drafts", "start": 1.5, "end": 2}]}
    r = bench.summarise(result, samples)
    assert abs(r["steps"]["risk flags"]["cpu_s"] - 1.5) < 1e-9
    assert abs(sum(s["cpu_s"] for s in r["steps"].values()) - r["end_to_end"]["cpu_s"]) < 1e-9
