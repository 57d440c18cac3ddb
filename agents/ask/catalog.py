"""What may be asked: the governed metrics, saved queries and group-by items, read from the semantic manifest.

Built from the manifest alone (MetricFlow's engine lists the group-by items a
metric admits without touching the warehouse), so the parser and Claude's
listing tools work before any query runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

_GRAINS = ("day", "week", "month", "quarter", "year")
NAME_RE = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class MetricInfo:
    name: str
    label: str
    description: str


@dataclass(frozen=True)
class GroupByInfo:
    """A name a query may group or filter by: ``kind`` is categorical, time or entity."""

    name: str
    kind: str
    description: str = ""


class Catalog:
    def __init__(self, semantic_manifest: Any) -> None:
        from metricflow.engine.metricflow_engine import MetricFlowEngine
        from metricflow_semantics.model.semantic_manifest_lookup import SemanticManifestLookup

        self.manifest = semantic_manifest
        self.metrics: dict[str, MetricInfo] = {
            m.name: MetricInfo(m.name, m.label or m.name, " ".join((m.description or "").split()))
            for m in sorted(semantic_manifest.metrics, key=lambda m: m.name)
        }
        self.saved_queries: dict[str, str] = {
            q.name: " ".join((q.description or q.label or "").split()) for q in semantic_manifest.saved_queries
        }
        # Listing needs no SQL client: nothing here reaches the warehouse.
        self._engine = MetricFlowEngine(semantic_manifest_lookup=SemanticManifestLookup(semantic_manifest), sql_client=None)

    @classmethod
    def from_layer(cls, layer: Any) -> Catalog:
        return cls(layer.semantic_manifest)

    @classmethod
    def from_manifest_file(cls, path: Any) -> Catalog:
        from pathlib import Path

        from metricflow_semantics.model.dbt_manifest_parser import parse_manifest_from_dbt_generated_manifest

        return cls(parse_manifest_from_dbt_generated_manifest(Path(path).read_text()))

    def group_bys(self, metrics: tuple[str, ...] | list[str]) -> dict[str, GroupByInfo]:
        return _group_bys(self, tuple(sorted(metrics)))

    def time_dimensions(self, metrics: tuple[str, ...] | list[str]) -> set[str]:
        return {n for n, g in self.group_bys(metrics).items() if g.kind == "time"}


@lru_cache(maxsize=256)
def _group_bys(catalog: Catalog, metrics: tuple[str, ...]) -> dict[str, GroupByInfo]:
    out: dict[str, GroupByInfo] = {}
    for item in catalog._engine.list_group_bys(list(metrics)):
        dunder = getattr(item, "dunder_name", None)
        if dunder is None:  # an entity
            out.setdefault(item.name, GroupByInfo(item.name, "entity", item.description or ""))
            continue
        kind = "time" if str(getattr(item.type, "value", item.type)) == "time" else "categorical"
        name = dunder
        if kind == "time":
            for grain in _GRAINS:
                if name.endswith("__" + grain):
                    name = name[: -len(grain) - 2]
                    break
        out.setdefault(name, GroupByInfo(name, kind, " ".join((item.description or "").split())))
    return dict(sorted(out.items()))


def time_grains() -> tuple[str, ...]:
    return _GRAINS
