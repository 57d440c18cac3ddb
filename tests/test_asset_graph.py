"""A snapshot of the asset graph: keys, dependencies, groups and checks.

A change to the graph (a new model, a renamed asset, a check added or lost)
fails here until the snapshot is updated on purpose:

    UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/test_asset_graph.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"


def _graph() -> dict:
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "checks": sorted(c.name for c in graph.asset_check_keys if c.asset_key == key),
            "has_description": bool(node.description),
            "owners": sorted(node.owners),
        }
    return {
        "assets": assets,
        "jobs": sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")),
        "schedules": sorted(s.name for s in defs.get_repository_def().schedule_defs),
        "sensors": {
            s.name: {"job": s.job_name, "minimum_interval_seconds": s.minimum_interval_seconds, "default_status": s.default_status.value}
            for s in defs.get_repository_def().sensor_defs
        },
    }


def test_asset_graph_matches_snapshot():
    current = _graph()
    if os.getenv("UPDATE_SNAPSHOTS") or not SNAPSHOT.exists():
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    assert current == expected, "asset graph changed; if on purpose, rerun with UPDATE_SNAPSHOTS=1"


def test_graph_flows_from_landing_through_marts_to_the_semantic_layer():
    assets = _graph()["assets"]
    groups = {a["group"] for a in assets.values()}
    assert {"landing", "staging", "marts", "semantic_layer"} <= groups
    # the canonical staging reads the active source: the canonical landing or a native CRM's staging
    assert set(assets["staging/stg_crm__opportunities"]["deps"]) == {
        "raw/opportunities", "raw/active_source",
        "staging/stg_hubspot__opportunities", "staging/stg_salesforce__opportunities", "staging/stg_pipedrive__opportunities",
    }
    # a native CRM's landed tables are drawn as the landing asset of the object they feed, so the
    # landing group is one asset per canonical object (plus the active source) for every CRM
    from connectors.schema import RAW_OBJECTS

    landing = {name for name, a in assets.items() if a["group"] == "landing"}
    assert landing == {f"raw/{o}" for o in RAW_OBJECTS} | {"raw/active_source"}
    assert not [name for name in assets if name.startswith("raw_")]
    assert "raw/opportunities" in assets["staging/stg_hubspot__opportunities"]["deps"]
    assert "raw/opportunities" in assets["staging/stg_salesforce__opportunities"]["deps"]
    assert "marts/fct_opportunities" in assets["semantic/deal_outcomes_by_segment"]["deps"]
    assert "marts/fct_stage_history" in assets["semantic/deal_curve_by_segment_stage"]["deps"]
    # every landed table has the quarantine check and a Great Expectations suite
    for name, asset in assets.items():
        if name.startswith("raw/") and name != "raw/active_source":
            assert {"no_rejected_rows", "great_expectations"} <= set(asset["checks"]), name
        assert asset["has_description"], f"{name} has no description"
        assert asset["owners"], f"{name} has no owner"
    # dbt tests surface as checks on the marts
    assert any(c.startswith("unique_") for c in assets["marts/fct_opportunities"]["checks"])
