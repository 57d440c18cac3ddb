"""The local Dagster instance's event log (orchestration/event_log.py): Dagster's SQLite event log, in the
same files, with one engine per shard instead of one per statement and no fsync per commit (synchronous=NORMAL
in WAL mode). The run overhead outside steps at scale 1 was mostly these writes (~750 events, ~2,300
connections)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import dagster as dg
import pytest

from sales_supervisor.pipeline import use_local_dagster_home
from sales_supervisor.settings import Settings


@pytest.fixture()
def instance(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    use_local_dagster_home(Settings(home=tmp_path))
    with dg.DagsterInstance.get() as inst:
        yield inst


def _job(n: int = 5):
    defs = []
    for i in range(n):
        @dg.asset(name=f"a{i}")
        def a():
            return None

        @dg.asset_check(asset=f"a{i}", name=f"c{i}")
        def c():
            return dg.AssetCheckResult(passed=True, metadata={"rows": 3})

        defs += [a, c]
    return dg.Definitions(assets=defs).resolve_implicit_global_asset_job_def()


def test_the_local_instance_uses_the_event_log_in_dagsters_own_place(instance, tmp_path):
    from orchestration.event_log import SupervisorSqliteEventLogStorage

    text = (tmp_path / "dagster" / "dagster.yaml").read_text()
    assert "class: SupervisorSqliteEventLogStorage" in text
    storage = instance.event_log_storage
    assert isinstance(storage, SupervisorSqliteEventLogStorage)
    # Dagster's default layout: the bench, the progress display and `dagster dev` read these files.
    assert Path(storage._base_dir) == (tmp_path / "dagster" / "history" / "runs").resolve()


def test_commits_do_not_wait_for_the_disk(instance):
    with instance.event_log_storage.index_connection() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL (Dagster's default: FULL, 2)
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_a_run_writes_through_one_engine_per_shard_and_every_event_is_stored(instance):
    import sqlalchemy

    engines: list = []  # every engine a connection was made through (kept alive, so none is counted twice)

    def seen(conn) -> None:
        if not any(e is conn.engine for e in engines):
            engines.append(conn.engine)

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "engine_connect", seen)
    try:
        result = _job().execute_in_process(instance=instance)
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "engine_connect", seen)
    assert result.success
    event_log_engines = [e for e in engines if str(e.url).startswith("sqlite") and "/history/runs/" in str(e.url)]
    # Dagster's own storage makes an engine per statement (dozens for this run); ours one per shard.
    assert 1 <= len(event_log_engines) <= 2, [str(e.url).rsplit("/", 1)[-1] for e in event_log_engines]

    storage = instance.event_log_storage
    run_db = storage.path_for_shard(result.run_id)
    # What a reader in another process (`dagster dev`, the bench) sees, through its own connection:
    with sqlite3.connect(run_db) as con:
        stored = con.execute("select count(*) from event_logs").fetchone()[0]
    assert stored == len(instance.all_logs(result.run_id)) > 20
    checks = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey("a0"), "c0")]
    )
    assert list(checks.values())[0].status.value == "SUCCEEDED"
    assert instance.get_latest_materialization_event(dg.AssetKey("a4")) is not None
    # A fresh instance on the same folder (the bench reads the steps' windows this way) sees the same run.
    with dg.DagsterInstance.from_ref(instance.get_ref()) as again:
        assert len(again.all_logs(result.run_id)) == stored


def test_a_yaml_written_by_hand_is_left_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    (tmp_path / "dagster").mkdir()
    mine = "telemetry:\n  enabled: true\n"
    (tmp_path / "dagster" / "dagster.yaml").write_text(mine)
    use_local_dagster_home(Settings(home=tmp_path))
    assert (tmp_path / "dagster" / "dagster.yaml").read_text() == mine


def test_a_batch_of_events_is_stored_through_one_connection_to_the_run(instance, monkeypatch):
    """Dagster batches the planned events of a new run when DAGSTER_EVENT_BATCH_SIZE is set (the daily job's
    runs set it): they are all stored, in order, through one connection to the run's file (its creation
    aside), however many there are; Dagster's own storage opens the file once per event."""
    import sqlalchemy

    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
    storage = instance.event_log_storage

    def new_run(n: int):
        opened: list[str] = []

        def seen(dbapi_connection, _record) -> None:
            opened.append(dbapi_connection.execute("pragma database_list").fetchone()[2].rsplit("/", 1)[-1])

        sqlalchemy.event.listen(sqlalchemy.engine.Engine, "connect", seen)
        try:
            run = instance.create_run_for_job(_job(n))  # stores the planned events
        finally:
            sqlalchemy.event.remove(sqlalchemy.engine.Engine, "connect", seen)
        return run, opened.count(f"{run.run_id}.db")

    small, opened_small = new_run(3)
    large, opened_large = new_run(30)
    assert opened_large == opened_small <= 5  # the file's creation (Dagster's schema check) and one connection
    planned = [e for e in instance.all_logs(large.run_id) if "PLANNED" in str(e.dagster_event_type)]
    assert len(planned) == 60  # 30 assets and their 30 checks
    keys = [e.dagster_event.event_specific_data.asset_key.to_user_string() for e in planned
            if e.dagster_event_type == dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED]
    assert keys == sorted(keys)
    with sqlite3.connect(storage.path_for_shard(large.run_id)) as con:  # on disk, for other processes
        assert con.execute("select count(*) from event_logs").fetchone()[0] == len(instance.all_logs(large.run_id))
    assert not storage._held  # released


def test_each_write_reaches_the_run_file_that_dagster_devs_watcher_follows(instance):
    """The live run view of `dagster dev` follows a run through a file watcher on ``<run_id>.db``: each write
    is checkpointed into that file (as Dagster's close of a connection did), so the watcher sees every event."""
    import threading
    import time

    storage = instance.event_log_storage
    run = instance.create_run_for_job(_job(2))
    seen: list[str] = []
    arrived = threading.Event()

    def callback(entry, _cursor):
        text = entry.dagster_event.message if entry.dagster_event else entry.user_message
        seen.append(text)
        if text == "third":
            arrived.set()

    storage.watch(run.run_id, None, callback)
    try:
        for text in ("first", "second", "third"):
            instance.report_engine_event(text, run)
            # What the file itself holds (a reader that ignores the WAL): the event is there already.
            uri = f"file:{storage.path_for_shard(run.run_id)}?immutable=1"
            with sqlite3.connect(uri, uri=True) as con:
                assert con.execute("select count(*) from event_logs").fetchone()[0] == len(instance.all_logs(run.run_id))
            time.sleep(0.3)
        assert arrived.wait(20), seen
    finally:
        storage.end_watch(run.run_id, callback)
    assert [m for m in seen if m in ("first", "second", "third")] == ["first", "second", "third"]


def test_wiping_the_instance_closes_the_runs_files_first(instance):
    first = _job(1).execute_in_process(instance=instance)
    instance.wipe()
    assert not instance.all_logs(first.run_id)
    second = _job(1).execute_in_process(instance=instance)
    assert second.success and len(instance.all_logs(second.run_id)) > 5
