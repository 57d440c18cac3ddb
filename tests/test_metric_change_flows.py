"""Analytics engineers own the metric definitions: a change in semantic_models/ changes the
risk baselines (and so the flags) on the next run, with no Python edited."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from agents.risk.baselines import fetch_baselines
from agents.risk.engine import assess
from agents.risk.policy import load_policy
from agents.semantic_layer import SemanticLayer
from sales_supervisor.dbt import DBT_EXECUTABLE
from sales_supervisor.settings import DBT_PROJECT_DIR, SEMANTIC_MODELS_DIR

pytestmark = pytest.mark.slow


def _project_copy(tmp_path, edit=None):
    """dbt_project/ and semantic_models/ side by side (the layout the model-paths expect), parsed."""
    root = tmp_path / "repo"
    shutil.copytree(DBT_PROJECT_DIR, root / "dbt_project", ignore=shutil.ignore_patterns("target", "logs", ".user.yml"))
    shutil.copytree(SEMANTIC_MODELS_DIR, root / "semantic_models")
    if edit:
        edit(root / "semantic_models")
    subprocess.run(
        [DBT_EXECUTABLE, "parse", "--profiles-dir", ".", "--quiet"], cwd=root / "dbt_project", check=True,
        capture_output=True, text=True,
    )
    return root / "dbt_project"


def _make_p75_a_p95(folder):
    path = folder / "stage_stints.yml"
    text = path.read_text()
    marker = "      - name: stage_duration_p75\n"
    head, tail = text.split(marker, 1)
    tail = tail.replace("percentile: 0.75", "percentile: 0.95", 1)  # only this measure's percentile
    path.write_text(head + marker + tail)


def test_editing_a_percentile_in_yaml_moves_the_baselines_and_the_flags(built_warehouse, tmp_path):
    as_of = built_warehouse.settings.effective_as_of()
    policy = load_policy()
    before_dir = _project_copy(tmp_path / "a")
    after_dir = _project_copy(tmp_path / "b", _make_p75_a_p95)

    with SemanticLayer(before_dir, before_dir, before_dir / "target", built_warehouse.warehouse) as layer:
        before = fetch_baselines(layer, as_of)
        run_before, _ = assess(built_warehouse.warehouse, layer, policy, as_of, baselines=before)
    with SemanticLayer(after_dir, after_dir, after_dir / "target", built_warehouse.warehouse) as layer:
        after = fetch_baselines(layer, as_of)
        run_after, _ = assess(built_warehouse.warehouse, layer, policy, as_of, baselines=after)

    b = before.stage_duration("mid_market", "Discovery")
    a = after.stage_duration("mid_market", "Discovery")
    assert a.value > b.value  # the 95th percentile is longer than the 75th
    assert a.semantic_query_id != b.semantic_query_id  # a new definition is a new, citable query
    assert before.stage_by_segment.manifest_hash != after.stage_by_segment.manifest_hash
    stalled_before = run_before.flags_by_rule().get("stalled_in_stage", set())
    stalled_after = run_after.flags_by_rule().get("stalled_in_stage", set())
    assert stalled_after < stalled_before or len(stalled_after) < len(stalled_before)
