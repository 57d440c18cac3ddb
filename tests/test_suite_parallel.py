"""`make test` spreads the suite over the cores with pytest-xdist (``-n auto --dist loadscope``): a module's
tests stay on one worker (its module-scoped fixtures are built once); tests/conftest.py gives each worker the
controller's terminal size and parses dbt once; a serial run stays possible."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from tests import conftest

ROOT = Path(__file__).resolve().parents[1]


def _make_xdist_args() -> list[str]:
    return re.search(r"^PYTEST_XDIST \?= (.*)$", (ROOT / "Makefile").read_text(), re.M).group(1).split()


def test_make_test_runs_the_suite_on_every_core_and_can_run_serially():
    assert _make_xdist_args() == ["-n", "auto", "--dist", "loadscope", "--no-loadscope-reorder"]
    assert "$(BIN)/python -m pytest $(PYTEST_XDIST)" in (ROOT / "Makefile").read_text()
    addopts = re.search(r'^addopts = "(.*)"$', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert "-n" not in addopts.split()  # `python -m pytest tests/x.py` stays one process (and -p no:xdist works)


def test_make_tests_distribution_builds_a_module_fixture_once(tmp_path):
    """With make test's options on two workers, the tests of a module sharing a module-scoped fixture run in
    one worker, and the fixture is built once (pytest-xdist's loadgroup cannot group with pytest 9)."""
    (tmp_path / "test_shared.py").write_text(
        "import os, pytest\n"
        "@pytest.fixture(scope='module')\n"
        "def built():\n"
        "    with open(os.environ['BUILT_LOG'], 'a') as f: f.write(os.environ['PYTEST_XDIST_WORKER'] + '\\n')\n"
        + "".join(f"def test_{i}(built): pass\n" for i in range(6))
    )
    (tmp_path / "test_other.py").write_text("".join(f"def test_{i}(): pass\n" for i in range(6)))
    log = tmp_path / "built.log"
    args = [a if a != "auto" else "2" for a in _make_xdist_args()]
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args, str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "BUILT_LOG": str(log)},
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "12 passed" in proc.stdout
    assert len(log.read_text().split()) == 1  # built once, on one worker


def test_a_worker_gets_the_controllers_terminal_size_not_the_80_columns_it_starts_with(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setenv("LINES", "50")
    node = SimpleNamespace(workerinput={"workerid": "gw0"})
    conftest.pytest_configure_node(node)  # in the controller
    assert node.workerinput["terminal_env"] == {"COLUMNS": None, "LINES": "50"}
    monkeypatch.setenv("COLUMNS", "80")  # what a worker process starts with
    monkeypatch.setenv("LINES", "24")
    conftest.pytest_configure(SimpleNamespace(workerinput=node.workerinput))  # in the worker
    assert "COLUMNS" not in os.environ and os.environ["LINES"] == "50"


def test_a_serial_run_leaves_the_terminal_size_alone(monkeypatch):
    monkeypatch.setenv("COLUMNS", "132")
    conftest.pytest_configure(SimpleNamespace())
    assert os.environ["COLUMNS"] == "132" and conftest._xdist_worker(SimpleNamespace()) is None
