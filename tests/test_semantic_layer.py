"""The governed semantic layer: YAML in semantic_models/, queried through MetricFlow.

* parse: dbt reads semantic_models/ from outside the dbt folder
  (model-paths: ../semantic_models, not officially supported by dbt), and
  the semantic manifest passes MetricFlow's validations;
* numbers: MetricFlow's win_rate and cycle_length_p75 per segment equal a
  direct SQL computation on the marts (demo data built through dbt);
* saved queries: the deal curve and activity baseline have a row for every
  segment x open stage;
* provenance: query ids, SQL and manifest hashes are stable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import duckdb
import pytest

from agents.semantic_layer import (
    SemanticLayer,
    SemanticLayerError,
    SemanticQueryRequest,
    manifest_hash,
)

REPO = Path(__file__).resolve().parent.parent
DBT_PROJECT = REPO / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"
SEGMENTS = ("smb", "mid_market", "enterprise")
SAVED_QUERIES = ("deal_curve_by_segment_stage", "deal_outcomes_by_segment", "activity_baseline_by_segment_stage")
REQUIRED_METRICS = {
    "win_rate",
    "cycle_length_p50",
    "cycle_length_p75",
    "stage_duration_p50",
    "stage_duration_p75",
    "meetings_per_week",
    "open_pipeline_amount",
    "stage_win_rate",
}


def _dbt(args: list[str], warehouse: Path, target: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SALES_SUPERVISOR_DUCKDB_PATH": str(warehouse),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    cmd = [
        str(DBT),
        *args,
        "--project-dir", str(DBT_PROJECT),
        "--profiles-dir", str(DBT_PROJECT),
        "--target-path", str(target),
        "--log-path", str(target / "logs"),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    return proc


# -- parse (not slow: this guards the paths-outside-the-project trick) ------------------


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> types.SimpleNamespace:
    tmp = tmp_path_factory.mktemp("sl_parse")
    target = tmp / "target"
    _dbt(["parse"], tmp / "warehouse.duckdb", target)
    return types.SimpleNamespace(target=target, warehouse=tmp / "warehouse.duckdb")


def test_dbt_parse_reads_top_level_semantic_models(parsed: types.SimpleNamespace) -> None:
    manifest = json.loads((parsed.target / "semantic_manifest.json").read_text())
    semantic_models = {m["name"]: m for m in manifest["semantic_models"]}
    assert {"opportunities", "stage_stints", "activities"} <= set(semantic_models)
    # Each semantic model reads a mart built by dbt (refs resolved, not raw tables).
    assert semantic_models["opportunities"]["node_relation"]["alias"] == "fct_opportunities"
    assert semantic_models["stage_stints"]["node_relation"]["alias"] == "fct_stage_history"
    assert semantic_models["opportunities"]["node_relation"]["schema_name"] == "marts"
    assert REQUIRED_METRICS <= {m["name"] for m in manifest["metrics"]}
    assert set(SAVED_QUERIES) <= {q["name"] for q in manifest["saved_queries"]}
    assert manifest["project_configuration"]["time_spines"], "metricflow_time_spine is not configured"


def test_semantic_manifest_validates(parsed: types.SimpleNamespace) -> None:
    sl = SemanticLayer(DBT_PROJECT, target_path=parsed.target, warehouse=parsed.warehouse)
    results = sl.validate()  # raises SemanticLayerValidationError on blocking issues
    assert not results.errors
    assert REQUIRED_METRICS <= set(sl.metric_names)
    assert set(SAVED_QUERIES) <= set(sl.saved_query_names)


def test_every_metric_and_measure_is_described(parsed: types.SimpleNamespace) -> None:
    manifest = json.loads((parsed.target / "semantic_manifest.json").read_text())
    undescribed = [m["name"] for m in manifest["metrics"] if not (m.get("description") or "").strip()]
    for model in manifest["semantic_models"]:
        undescribed += [
            f"{model['name']}.{x['name']}" for x in model.get("measures", []) if not (x.get("description") or "").strip()
        ]
    assert not undescribed


def test_query_id_hashes_request_and_manifest() -> None:
    a = SemanticQueryRequest(metrics=("win_rate",), group_by=("opportunity__segment",))
    assert a.query_id("m1") == SemanticQueryRequest(("win_rate",), ("opportunity__segment",)).query_id("m1")
    assert a.query_id("m1").startswith("mfq_")
    assert a.query_id("m1") != a.query_id("m2")
    assert a.query_id("m1") != SemanticQueryRequest(("win_rate",), ("opportunity__segment",), where=("x",)).query_id("m1")


def test_missing_manifest_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SemanticLayerError, match="dbt parse"):
        SemanticLayer(DBT_PROJECT, target_path=tmp_path)


# -- demo data built through dbt ------------------------------------------------------


@pytest.fixture(scope="module")
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> types.SimpleNamespace:
    """The lead's session fixture ``built_warehouse`` when conftest has it; else our own build."""
    try:
        shared = request.getfixturevalue("built_warehouse")
        return types.SimpleNamespace(warehouse=Path(shared.warehouse), target=Path(shared.dbt_target))
    except pytest.FixtureLookupError:
        pass
    generator = pytest.importorskip("connectors.demo.generator", reason="demo generator not available")
    from sales_supervisor.settings import DEMO_AS_OF
    from tests.support import load_canonical_folder_unvalidated

    tmp = tmp_path_factory.mktemp("sl_built")
    generator.generate_demo_crm(tmp / "crm", seed=7, scale=1)
    warehouse = tmp / "warehouse.duckdb"
    load_canonical_folder_unvalidated(warehouse, tmp / "crm")
    target = tmp / "target"
    _dbt(["build", "--vars", json.dumps({"as_of_date": DEMO_AS_OF.isoformat()})], warehouse, target)
    return types.SimpleNamespace(warehouse=warehouse, target=target)


@pytest.fixture(scope="module")
def marts(built: types.SimpleNamespace) -> dict[str, object]:
    """Direct SQL on the marts, read before MetricFlow opens the file."""
    with duckdb.connect(str(built.warehouse), read_only=True) as con:
        # MetricFlow renders agg: percentile (continuous) on DuckDB as
        # PERCENTILE_CONT(p) WITHIN GROUP (ORDER BY x); DuckDB's quantile_cont(x, p)
        # is the same interpolated quantile, spelled independently here.
        per_segment = con.execute(
            """
            select
                segment,
                cast(sum(case when is_won then 1 else 0 end) as double)
                    / nullif(sum(case when is_closed then 1 else 0 end), 0) as win_rate,
                quantile_cont(case when is_won then cycle_days end, 0.75) as cycle_length_p75,
                quantile_cont(case when is_won then cycle_days end, 0.5) as cycle_length_p50
            from marts.fct_opportunities
            group by segment
            """
        ).fetchall()
        open_stages = [r[0] for r in con.execute("select stage from staging.stg_crm__stages where not is_closed").fetchall()]
        segments = [r[0] for r in con.execute("select distinct segment from marts.fct_opportunities where segment is not null").fetchall()]
    return {
        "per_segment": {seg: (wr, p75, p50) for seg, wr, p75, p50 in per_segment},
        "open_stages": sorted(open_stages),
        "segments": sorted(segments),
    }


@pytest.fixture(scope="module")
def semantic_layer(built: types.SimpleNamespace, marts: dict[str, object]):
    with SemanticLayer(DBT_PROJECT, target_path=built.target, warehouse=built.warehouse) as sl:
        yield sl


@pytest.mark.slow
def test_win_rate_and_cycle_p75_match_direct_sql(semantic_layer: SemanticLayer, marts: dict) -> None:
    result = semantic_layer.query(
        ["win_rate", "cycle_length_p50", "cycle_length_p75"], ["opportunity__segment"]
    )
    got = {r["opportunity__segment"]: r for r in result.rows}
    expected = marts["per_segment"]
    assert set(marts["segments"]) <= set(SEGMENTS)
    assert set(got) == set(expected)
    for segment, (win_rate, p75, p50) in expected.items():
        assert got[segment]["win_rate"] == pytest.approx(win_rate, rel=1e-9), segment
        assert got[segment]["cycle_length_p75"] == pytest.approx(p75, rel=1e-9), segment
        assert got[segment]["cycle_length_p50"] == pytest.approx(p50, rel=1e-9), segment
    assert "PERCENTILE_CONT(0.75)" in result.sql


@pytest.mark.slow
@pytest.mark.parametrize("name", ["deal_curve_by_segment_stage", "activity_baseline_by_segment_stage"])
def test_saved_queries_cover_every_segment_and_open_stage(semantic_layer: SemanticLayer, marts: dict, name: str) -> None:
    result = semantic_layer.saved_query(name)
    assert result.columns[:2] == ("stage_stint__stage", "opportunity__segment") or set(result.columns) >= {
        "opportunity__segment",
        "stage_stint__stage",
    }
    value = "stage_duration_p75" if name.startswith("deal_curve") else "meetings_per_week"
    missing = []
    for segment in marts["segments"]:
        for stage in marts["open_stages"]:
            row = result.find(opportunity__segment=segment, stage_stint__stage=stage)
            if row is None or row[value] is None:
                missing.append((segment, stage))
    assert marts["open_stages"] and marts["segments"]
    assert not missing, f"{name}: no {value} for {missing}"


@pytest.mark.slow
def test_deal_outcomes_saved_query_has_every_segment(semantic_layer: SemanticLayer, marts: dict) -> None:
    result = semantic_layer.saved_query("deal_outcomes_by_segment")
    for segment in marts["segments"]:
        row = result.find(opportunity__segment=segment)
        assert row is not None and row["win_rate"] is not None and row["cycle_length_p75"] is not None


@pytest.mark.slow
def test_results_carry_stable_provenance(semantic_layer: SemanticLayer, built: types.SimpleNamespace) -> None:
    first = semantic_layer.saved_query("deal_curve_by_segment_stage")
    again = semantic_layer.saved_query("deal_curve_by_segment_stage")
    assert first.query_id == again.query_id and first.query_id.startswith("mfq_")
    assert first.result_hash == again.result_hash
    assert first.sql == again.sql == semantic_layer.explain(saved_query="deal_curve_by_segment_stage")
    assert first.manifest_hash == manifest_hash(built.target / "semantic_manifest.json")
    assert first.request.metrics[0] == "stage_win_rate" and first.request.saved_query == "deal_curve_by_segment_stage"
    # Asking the same thing ad hoc is a different request (no saved-query name): a different id.
    adhoc = semantic_layer.query(list(first.request.metrics), ["opportunity__segment", "stage_stint__stage"])
    assert adhoc.query_id != first.query_id
    provenance = first.provenance()
    assert json.loads(json.dumps(provenance)) == provenance
    assert {"query_id", "sql", "manifest_hash", "request", "result_hash"} <= set(provenance)


@pytest.mark.slow
def test_filters_and_time_slicing(semantic_layer: SemanticLayer) -> None:
    smb = semantic_layer.query(
        ["win_rate"],
        ["opportunity__segment", "metric_time__quarter"],
        where="{{ Dimension('opportunity__segment') }} = 'smb'",
        order_by=["metric_time__quarter"],
    )
    assert smb.rows and {r["opportunity__segment"] for r in smb.rows} == {"smb"}
    assert smb.filters == ("{{ Dimension('opportunity__segment') }} = 'smb'",)
    by_stage = semantic_layer.query(["stage_duration_p50"], ["stage_stint__stage", "metric_time__month"], limit=5)
    assert len(by_stage) == 5


@pytest.mark.slow
def test_warehouse_checks_pass(semantic_layer: SemanticLayer) -> None:
    """MetricFlow's data-warehouse validations: every semantic model, dimension and metric queries."""
    results = semantic_layer.validate(data_warehouse=True)
    assert not results.errors


@pytest.mark.slow
def test_warehouse_is_released_between_queries(semantic_layer: SemanticLayer, built: types.SimpleNamespace) -> None:
    assert semantic_layer.query(["closed_deals"]).rows
    # DuckDB admits one writer process per file: between queries the client holds
    # nothing, so a dbt run (or this read-write handle) can take the file.
    code = f"import duckdb; duckdb.connect({str(built.warehouse)!r}).close()"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    with duckdb.connect(str(built.warehouse)) as con:  # and so can this process
        assert con.execute("select count(*) from marts.fct_opportunities").fetchone()[0] > 0
    semantic_layer.close()
    assert semantic_layer.query(["closed_deals"]).rows  # reopens lazily after close()


@pytest.mark.slow
def test_a_session_opens_the_warehouse_once_for_many_queries_and_releases_it(
    semantic_layer: SemanticLayer, built: types.SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run's semantic step asks its ~28 queries in one session: DuckDB is opened once, not per query
    (same answers), and the file is released when the session ends."""
    opened = []
    real_connect = duckdb.connect
    monkeypatch.setattr(duckdb, "connect", lambda *a, **k: opened.append(a) or real_connect(*a, **k))
    alone = [semantic_layer.query(["closed_deals"]), semantic_layer.query(["won_deals"])]
    assert len(opened) == 2  # one open per query outside a session
    opened.clear()
    with semantic_layer.session():
        batched = [semantic_layer.query(["closed_deals"]), semantic_layer.query(["won_deals"]),
                   semantic_layer.saved_query("deal_outcomes_by_segment")]
    assert len(opened) == 1
    assert [(r.query_id, r.sql, r.rows) for r in batched[:2]] == [(r.query_id, r.sql, r.rows) for r in alone]
    monkeypatch.undo()
    code = f"import duckdb; duckdb.connect({str(built.warehouse)!r}).close()"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)  # released after the session


def test_the_answer_hash_ignores_a_parallel_sums_last_bit_but_not_a_real_change() -> None:
    from agents.semantic_layer import answer_hash

    columns = ("opportunity__segment", "win_rate")
    total = sum([0.1] * 10)  # 0.9999999999999999: a sum in another order gives 1.0
    assert total != 1.0
    same = answer_hash(columns, [{"opportunity__segment": "SMB", "win_rate": total}])
    assert same == answer_hash(columns, [{"opportunity__segment": "SMB", "win_rate": 1.0}])
    assert same != answer_hash(columns, [{"opportunity__segment": "SMB", "win_rate": 1.0001}])
    assert same != answer_hash(columns, [{"opportunity__segment": "MM", "win_rate": 1.0}])
