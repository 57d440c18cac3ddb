"""dbt keeps its parse across homes: a run in a new home (a deployment, a test session, a benchmark run, each
with its own warehouse file) starts from the project's prepared parse instead of parsing the whole project again
(sales_supervisor/dbt_main.py). What the parse depends on still invalidates it: a warehouse of another name (the
database dbt names in every relation) parses in full."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from sales_supervisor.dbt import PARSE_KEY_MARKER, dbt_executable, manifest_is_stale, prepare_dbt_project
from sales_supervisor.dbt_main import profile_key
from sales_supervisor.settings import DBT_PROJECT_DIR


def _parse(target: Path, warehouse: Path) -> list[str]:
    """`dbt parse` as the pipeline runs it, for ``warehouse``; dbt's reasons for not parsing partially."""
    proc = subprocess.run(
        [dbt_executable(), "parse", "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(target),
         "--log-format", "json", "--log-path", str(target)],
        cwd=DBT_PROJECT_DIR, capture_output=True, text=True, timeout=600,
        env={**os.environ, "DBT_TARGET": "duckdb", "SALES_SUPERVISOR_DUCKDB_PATH": str(warehouse)},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    reasons = []
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event["info"]["name"] == "UnableToPartialParse":
                reasons.append(event["info"]["msg"])
    return reasons


def test_the_pipelines_dbt_is_the_one_that_keeps_its_parse_across_homes():
    assert Path(dbt_executable()).name == "sales-supervisor-dbt"


def test_a_new_home_reuses_the_prepared_parse(tmp_path):
    # the preparation step (make prepare, the CLI, the test session): the project's own target
    prepared = prepare_dbt_project().parent
    assert (prepared / PARSE_KEY_MARKER).exists()

    # a run in a new home starts from that parse (dagster-dbt copies it into the home's dbt target), whatever
    # home the project was prepared for
    new_home = tmp_path / "home_target"
    new_home.mkdir()
    shutil.copy(prepared / "partial_parse.msgpack", new_home)
    assert _parse(new_home, tmp_path / "home" / "warehouse.duckdb") == []  # plain dbt: "profile has changed"


def test_a_parse_state_made_by_plain_dbt_is_prepared_again(tmp_path):
    prepared = prepare_dbt_project().parent
    target = tmp_path / "target"
    target.mkdir()
    for name in ("manifest.json", PARSE_KEY_MARKER):
        shutil.copy(prepared / name, target)
    assert not manifest_is_stale(DBT_PROJECT_DIR, str(target))
    (target / PARSE_KEY_MARKER).unlink()  # keyed to one warehouse path: parsed again, once
    assert manifest_is_stale(DBT_PROJECT_DIR, str(target))


def test_the_profile_key_drops_only_the_folder_of_a_duckdb_file():
    """Another file name (the database every relation names), schema or setting still changes the key."""
    base = [("database", "warehouse"), ("schema", "main"), ("path", "/srv/a/warehouse.duckdb")]
    moved = [("database", "warehouse"), ("schema", "main"), ("path", "/home/b/var/warehouse.duckdb")]
    assert profile_key(base) == profile_key(moved)
    assert profile_key(base) != profile_key([*base[:2], ("path", "/srv/a/other.duckdb")])
    assert profile_key(base) != profile_key([("database", "warehouse"), ("schema", "marts"), base[2]])
    # in-memory and remote databases keep their whole path
    assert ("path", "md:prod") in profile_key([("path", "md:prod")])
    assert ("path", ":memory:") in profile_key([("path", ":memory:")])
