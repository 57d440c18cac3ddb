"""`make test` spreads the suite over the cores with pytest-xdist (``-n auto --dist loadgroup``); the hooks in
tests/conftest.py keep the tests of a module- or class-scoped fixture on one worker, and do nothing in a serial run."""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests import conftest

ROOT = Path(__file__).resolve().parents[1]


class FakeItem:
    def __init__(self, nodeid: str, scopes: dict[str, str], cls: type | None = None):
        self.nodeid = nodeid
        self.cls = cls
        self._fixtureinfo = SimpleNamespace(
            name2fixturedefs={name: [SimpleNamespace(scope=scope)] for name, scope in scopes.items()})
        self.marks: list[pytest.Mark] = []

    def add_marker(self, marker):
        self.marks.append(marker.mark)


def _items():
    class TestThing:
        pass

    return [
        FakeItem("tests/test_a.py::test_reads_the_landing", {"landed": "module", "tmp_path": "function"}),
        FakeItem("tests/test_a.py::test_alone", {"tmp_path": "function", "built_warehouse": "session"}),
        FakeItem("tests/test_b.py::TestThing::test_one", {"thing": "class"}, cls=TestThing),
        FakeItem("tests/test_b.py::TestThing::test_two", {"thing": "class", "other": "module"}, cls=TestThing),
    ]


def test_a_worker_groups_the_tests_of_a_module_or_class_scoped_fixture():
    items = _items()
    conftest.pytest_collection_modifyitems(SimpleNamespace(workerinput={"workerid": "gw0"}), items)
    groups = [[(m.name, m.args) for m in i.marks] for i in items]
    assert groups == [
        [("xdist_group", ("tests/test_a.py",))],
        [],  # a session fixture is built once per worker: the test may run anywhere
        [("xdist_group", ("tests/test_b.py",))],  # a class fixture: the whole module on one worker too
        [("xdist_group", ("tests/test_b.py",))],
    ]


def test_a_serial_run_marks_nothing():
    items = _items()
    conftest.pytest_collection_modifyitems(SimpleNamespace(), items)
    assert all(not i.marks for i in items)
    assert conftest._xdist_worker(SimpleNamespace()) is None


def test_make_test_runs_the_suite_on_every_core_and_can_run_serially():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^PYTEST_XDIST \?= -n auto --dist loadgroup$", makefile, re.M)
    assert "$(BIN)/python -m pytest $(PYTEST_XDIST)" in makefile
    addopts = re.search(r'^addopts = "(.*)"$', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert "-n" not in addopts.split()  # `python -m pytest tests/x.py` stays one process (and -p no:xdist works)


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
