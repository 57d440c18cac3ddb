"""What each step process of a multiprocess run (a server warehouse, orchestration/jobs.py) starts with.

Imported only by the executor's forkserver, never by the code location: it builds the definitions, imports
the heavy libraries and runs one Great Expectations validation on a one-row frame, once; every step process
forks from it with all that loaded. A spawned interpreter would import Dagster, dagster-dbt, MetricFlow and
Great Expectations and load the dbt manifest again: about a minute per step on the busy 2-core machine
(a GX check: 75 s in a fresh process, 1.4 s forked after the warm-up), for steps whose work takes seconds.
"""

from __future__ import annotations

import importlib

for _module in ("agents.semantic_layer", "agents.risk.engine", "agents.risk.store", "expectations.validation"):
    importlib.import_module(_module)


def _warm_up_great_expectations() -> None:
    """One validation of a one-row frame: GX registers its expectations and metrics on first use."""
    import great_expectations as gx
    import pandas as pd

    from expectations.validation import _gx_context

    context = _gx_context()
    batch = context.data_sources.add_pandas("warm_up").add_dataframe_asset("t").add_batch_definition_whole_dataframe("all")
    suite = context.suites.add(
        gx.ExpectationSuite(name="warm_up", expectations=[gx.expectations.ExpectColumnValuesToNotBeNull(column="a")])
    )
    definition = context.validation_definitions.add(gx.ValidationDefinition(name="warm_up", data=batch, suite=suite))
    definition.run(batch_parameters={"dataframe": pd.DataFrame({"a": [1]})})


_warm_up_great_expectations()

from sales_supervisor.pipeline import daily_job  # noqa: E402

daily_job()
