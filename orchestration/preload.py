"""What each step process of a multiprocess run (a server warehouse, orchestration/jobs.py) starts with.

Imported only by the executor's forkserver, never by the code location: it builds the definitions and imports
the heavy libraries once, and every step process forks from it with them loaded, instead of spawning a fresh
interpreter that imports Dagster, dagster-dbt, MetricFlow and Great Expectations and loads the dbt manifest
again (about a minute per step on a busy 2-core machine, for steps whose work takes a second).
"""

from __future__ import annotations

import importlib

for _module in ("agents.semantic_layer", "agents.risk.engine", "agents.risk.store", "expectations.validation"):
    importlib.import_module(_module)

from sales_supervisor.pipeline import daily_job  # noqa: E402

daily_job()
