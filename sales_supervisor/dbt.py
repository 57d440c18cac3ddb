"""Running the dbt CLI of this environment (the one beside the running Python)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from sales_supervisor.settings import DBT_PROJECT_DIR



def dbt_executable() -> str:
    """This environment's dbt: ``sales-supervisor-dbt`` beside the running Python (dbt itself, its parse state kept
    across homes: sales_supervisor/dbt_main.py), else the dbt beside it, else the one on PATH."""
    here = Path(sys.executable)
    for name in ("sales-supervisor-dbt", "dbt"):
        if here.with_name(name).exists():
            return str(here.with_name(name))
    return shutil.which("dbt") or "dbt"


def __getattr__(name: str):
    # DBT_EXECUTABLE, resolved on first use rather than at import (importing reads no environment).
    if name == "DBT_EXECUTABLE":
        return dbt_executable()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class DbtError(RuntimeError):
    pass


def parse_dbt_project(
    project_dir: Path = DBT_PROJECT_DIR, target_path: str = "target", env: dict[str, str] | None = None
) -> Path:
    """`dbt parse`: writes manifest.json and semantic_manifest.json; raises with dbt's own message.
    ``env``: extra environment (the warehouse's dbt target, agents.warehouse.Warehouse.dbt_env)."""
    import os

    proc = subprocess.run(
        [dbt_executable(), "parse", "--profiles-dir", str(project_dir), "--target-path", target_path, "--quiet"],
        cwd=project_dir,
        capture_output=True,
        text=True,
        env={**os.environ, **env} if env else None,
    )
    if proc.returncode != 0:
        raise DbtError(f"dbt parse failed in {project_dir}:\n{proc.stdout}\n{proc.stderr}".strip())
    if _keys_parse_by_file_name():
        (project_dir / target_path / PARSE_KEY_MARKER).write_text("sales-supervisor-dbt: parse state keyed to the file name\n")
    return project_dir / target_path / "manifest.json"


# Written beside the manifest by a parse whose state other homes can reuse (sales_supervisor/dbt_main.py); a parse
# state without it (plain dbt's, keyed to one warehouse path) counts as stale, so it is parsed again once.
PARSE_KEY_MARKER = "parse_key_file_name"


def _keys_parse_by_file_name() -> bool:
    return Path(dbt_executable()).name == "sales-supervisor-dbt"


def manifest_is_stale(project_dir: Path = DBT_PROJECT_DIR, target_path: str = "target") -> bool:
    """True when the manifest is missing or older than any model, macro, test or semantic YAML.

    A stale manifest would give Dagster an asset graph that disagrees with what
    `dbt build` runs, so the code location re-parses instead.
    """
    manifest = project_dir / target_path / "manifest.json"
    if not manifest.exists():
        return True
    if _keys_parse_by_file_name() and not (project_dir / target_path / PARSE_KEY_MARKER).exists():
        return True  # a parse state only the warehouse path it was made for can reuse
    built = manifest.stat().st_mtime
    roots = [project_dir / "models", project_dir / "macros", project_dir / "tests", project_dir.parent / "semantic_models"]
    files = [project_dir / "dbt_project.yml", project_dir / "profiles.yml"]
    for root in roots:
        if root.exists():
            files.extend(p for p in root.rglob("*") if p.suffix in {".sql", ".yml", ".yaml"})
    return any(f.stat().st_mtime > built for f in files if f.exists())


def prepare_dbt_project(
    project_dir: Path = DBT_PROJECT_DIR, target_path: str = "target", env: dict[str, str] | None = None
) -> Path:
    """The preparation step: `dbt parse` when the manifest is missing or stale, else nothing.
    Run before the code location loads (``make prepare``, the CLI, ``dagster dev``), never at import.

    Without ``env`` it parses for the configured DuckDB warehouse (SALES_SUPERVISOR_HOME): dbt keys its
    partial-parse state to the profile, warehouse path included, so the first run in that home reuses this
    parse (its dbt target starts from the project's partial_parse.msgpack) instead of parsing from scratch."""
    if manifest_is_stale(project_dir, target_path):
        return parse_dbt_project(project_dir, target_path, env if env is not None else _configured_duckdb_env())
    return project_dir / target_path / "manifest.json"


def _configured_duckdb_env() -> dict[str, str] | None:
    """The dbt profile's environment for the configured warehouse when it is a DuckDB file, else None."""
    try:
        from sales_supervisor.settings import Settings

        wh = Settings().warehouse_handle()
    except Exception:  # noqa: BLE001 - a settings problem is reported by the command that needs them
        return None
    return wh.dbt_env() if wh.dialect == "duckdb" else None


def semantic_manifest_dir(settings) -> Path:
    """Where the semantic manifest for the configured warehouse is. MetricFlow's SQL names each table by the
    database dbt parsed it for: the project's own target/ for the DuckDB file; for a server warehouse, a
    parse for that database under the home folder (re-parsed when the project changes)."""
    wh = settings.warehouse_handle()
    if wh.dialect == "duckdb":
        return DBT_PROJECT_DIR / "target"
    import hashlib

    where = hashlib.sha256(wh.label.encode()).hexdigest()[:10]  # database and server, never the password
    target = settings.home_dir / f"dbt_target_{wh.dialect}_{where}"
    return prepare_dbt_project(DBT_PROJECT_DIR, str(target), env=wh.dbt_env()).parent
