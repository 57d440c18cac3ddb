# sales-supervisor: every set-up step a fresh machine needs lives here.
# `make demo` and `make test` create the environment on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
UV_VERSION := 0.13.8
STAMP  := $(VENV)/.installed
# make test spreads the tests over the cores; PYTEST_XDIST="-n 0" (or -p no:xdist) runs them in one process
# (--dist loadscope: a module's tests run on one worker, so its module-scoped fixtures are built once;
# in collection order, so the long pipeline modules start early)
PYTEST_XDIST ?= -n auto --dist loadscope --no-loadscope-reorder

.PHONY: help install lock prepare demo demo-monday test test-fast eval eval-briefs dev bench lint clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --no-deps --config-settings editable_mode=compat -e .
	@touch $(STAMP)

install: $(STAMP)  ## create .venv from the hashed lock file

lock:  ## re-resolve requirements.lock from pyproject.toml
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 \
	  --no-header --no-emit-index-url --no-emit-find-links -o requirements.lock

prepare: $(STAMP)  ## parse the dbt project when its manifest is stale (the code location only reads it)
	$(BIN)/python -c "from sales_supervisor.dbt import prepare_dbt_project; prepare_dbt_project()"

demo: $(STAMP)  ## run the whole pipeline once on the demo CRM
	$(BIN)/sales-supervisor demo

demo-monday: $(STAMP)  ## the demo as of Monday 2026-09-28: weekly rep scorecards open each digest
	$(BIN)/sales-supervisor run --source demo --as-of 2026-09-28

test: $(STAMP)  ## run the test suite (real DuckDB, dbt, MetricFlow, Dagster), on every core (pytest-xdist)
	$(BIN)/python -m pytest $(PYTEST_XDIST)

eval: $(STAMP)  ## run the drafting eval gate (template drafter offline; Claude when ANTHROPIC_API_KEY is set)
	$(BIN)/sales-supervisor eval

eval-briefs: $(STAMP)  ## run the deal-brief eval gate (45 golden cases across stages and data gaps)
	$(BIN)/sales-supervisor brief-eval

test-fast: $(STAMP)  ## unit tests only (skips full materialisations)
	$(BIN)/python -m pytest -m "not slow"

dev: prepare  ## start the Dagster UI (http://127.0.0.1:3000) with the run history of make demo
	@mkdir -p $${SALES_SUPERVISOR_HOME:-var}/dagster
	@test -f $${SALES_SUPERVISOR_HOME:-var}/dagster/dagster.yaml || printf 'telemetry:\n  enabled: false\n' > $${SALES_SUPERVISOR_HOME:-var}/dagster/dagster.yaml
	DAGSTER_HOME=$$(cd $${SALES_SUPERVISOR_HOME:-var}/dagster && pwd) PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dagster dev -w workspace.yaml

.PHONY: console
console: $(STAMP)  ## serve the supervisor console (web) on http://127.0.0.1:8040; add accounts with `sales-supervisor console add-user`
	$(BIN)/sales-supervisor console

bench: $(STAMP)  ## time the daily job per step at demo scales 1, 10, 100 (SCALES="1 10" for fewer)
	$(BIN)/python benchmarks/bench.py $(if $(SCALES),--scales $(SCALES))

clean:  ## remove local state (var/) and the environment
	rm -rf var $(VENV) dbt_project/target dbt_project/logs
