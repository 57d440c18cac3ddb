"""The bytecode cache is kept under the home folder when the environment disables it, for the
CLI's process and the processes it starts (dbt)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_cli_keeps_the_bytecode_cache_under_the_home_folder(tmp_path):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPYCACHEPREFIX"}
    env.update(PYTHONDONTWRITEBYTECODE="1", SALES_SUPERVISOR_HOME=str(home))
    code = (
        "import sys, os, subprocess\n"
        "from sales_supervisor import cli\n"
        "sys.argv = ['sales-supervisor', '--help']\n"
        "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
        "import agents.risk.rules\n"  # imported by the command, after the setup
        # a child process (as dbt is) inherits the setting and caches too
        "subprocess.run([sys.executable, '-c', 'import agents.risk.expressions'], check=True)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    cached = {p.name.split(".")[0] for p in (home / "pycache").rglob("*.pyc")}
    assert {"rules", "expressions"} <= cached, sorted(cached)[:20]


def test_nothing_changes_when_the_cache_is_on(tmp_path, monkeypatch):
    from sales_supervisor.pycache import keep_bytecode_cache

    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    assert keep_bytecode_cache(tmp_path) is None
    assert not (tmp_path / "pycache").exists()


def test_the_cli_keeps_the_cache_under_the_home_given_on_the_command_line(tmp_path):
    """`sales-supervisor <command> --home X` caches under X/pycache, not under ./var of wherever it was started."""
    home = tmp_path / "elsewhere"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPYCACHEPREFIX", "SALES_SUPERVISOR_HOME")}
    env.update(PYTHONDONTWRITEBYTECODE="1")
    code = (
        "import sys, os\n"
        "from sales_supervisor import cli\n"
        f"sys.argv = ['sales-supervisor', 'run', '--home', {str(home)!r}, '--help']\n"
        "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
        "print(os.environ['PYTHONPYCACHEPREFIX'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == str((home / "pycache").resolve())
    assert not (tmp_path / "var").exists()


def test_home_option_parsing():
    from sales_supervisor.cli import _home_option

    assert _home_option(["run", "--home", "/x/y"]) == Path("/x/y")
    assert _home_option(["run", "--home=/x/z", "--as-of", "2026-01-01"]) == Path("/x/z")
    assert _home_option(["run"]) is None
