"""The progress display during `run`/`demo` (issue 12.9): steps done of all, the current step, elapsed time,
read from the Dagster instance's event log while the job runs in-process."""

from __future__ import annotations

import io
import time

import dagster as dg
from rich.console import Console

from sales_supervisor.progress import run_progress


@dg.op
def slow_step():
    time.sleep(1.5)


@dg.op
def second_step(_x=None):
    time.sleep(0.6)


@dg.job
def tiny_job():
    second_step(slow_step())


def test_progress_shows_steps_done_and_the_current_step(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with run_progress(console, 2, enabled=True):
        with dg.DagsterInstance.get() as instance:
            assert tiny_job.execute_in_process(instance=instance).success
    text = out.getvalue()
    assert "step: slow_step" in text  # the step running while the display refreshed
    assert "2/2" in text and "step: done" in text
    quiet = io.StringIO()
    with run_progress(Console(file=quiet), 2):  # not a terminal: prints nothing
        pass
    assert quiet.getvalue() == ""
