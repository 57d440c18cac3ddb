"""A progress display for `run` and `demo`: steps done of all, the step running now, elapsed time.

The job runs in-process in the main thread; a watcher thread reads the run's step events from the Dagster
instance (the same event log `make dev` shows) and updates a rich progress bar. Nothing here changes how
the job runs; without a terminal (tests, pipes) it prints nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


def _step_label(step_key: str) -> str:
    return step_key.replace("__", "/")


def _watch(stop: threading.Event, started_after: float, progress: Progress, task, total: int) -> None:
    import dagster as dg
    from dagster import DagsterEventType
    from dagster._core.storage.dagster_run import RunsFilter

    instance = None
    while instance is None and not stop.is_set():
        try:  # a fresh DAGSTER_HOME: the run creates the instance's tables at the same moment ("already exists")
            instance = dg.DagsterInstance.get()
        except Exception:
            stop.wait(0.2)
    if instance is None:
        return
    with instance:
        run_id = None
        while not stop.is_set():
            try:
                if run_id is None:
                    runs = instance.get_runs(filters=RunsFilter(created_after=_utc(started_after)), limit=1)
                    run_id = runs[0].run_id if runs else None
                if run_id is not None:
                    events = instance.all_logs(
                        run_id,
                        of_type={DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE},
                    )
                    started = [e.step_key for e in events if e.dagster_event and e.dagster_event.event_type == DagsterEventType.STEP_START]
                    done = {e.step_key for e in events if e.dagster_event and e.dagster_event.event_type != DagsterEventType.STEP_START}
                    running = [s for s in started if s not in done]
                    current = _step_label(running[-1]) if running else ("finishing" if done else "starting")
                    progress.update(task, completed=min(len(done), total), description=f"step: {current}")
            except Exception:  # a display must never break the run
                pass
            stop.wait(0.5)


def _utc(ts: float):
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc)


@contextmanager
def run_progress(console: Console, total_steps: int, *, enabled: bool | None = None) -> Iterator[None]:
    """Show steps done / total, the current step and the elapsed time while the body runs."""
    enabled = console.is_terminal if enabled is None else enabled
    if not enabled:
        yield
        return
    progress = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=False,
    )
    task = progress.add_task("step: starting", total=total_steps)
    stop = threading.Event()
    started_after = time.time() - 1
    watcher = threading.Thread(target=_watch, args=(stop, started_after, progress, task, total_steps), daemon=True)
    try:  # create the instance's storage here, before the watcher and the run open it from two threads
        import dagster as dg

        with dg.DagsterInstance.get():
            pass
    except Exception:  # a display must never break the run
        pass
    with progress:
        watcher.start()
        try:
            yield
        finally:
            stop.set()
            watcher.join(timeout=5)
            progress.update(task, completed=total_steps, description="step: done")


def job_step_count(selection: list[str] | None = None) -> int:
    """Steps the daily job executes (one per op/multi-asset node)."""
    from orchestration.definitions import defs

    job = defs.resolve_job_def("daily_supervisor_job")
    return len(job.graph.nodes) if not selection else len(selection)
