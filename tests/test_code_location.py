"""Loading the code location is cheap: importing orchestration.definitions runs no dbt parse,
builds no dlt pipeline, reads no environment variable and opens no file; loading the
definitions reads the prepared dbt manifest but starts no subprocess and builds no dlt
pipeline; unused SDKs (Anthropic, Slack) are not imported on the offline path.

Each check runs in a fresh interpreter, so modules imported by other tests do not hide work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Spies installed after `import dagster` (the library's own import-time work is not ours).
_SPY = r'''
import builtins, json, os, subprocess, sys
import dagster  # noqa: F401

events = []

real_env = os.environ
STDLIB = os.path.dirname(os.__file__)

def record(kind, what):
    # Attributed to the innermost frame outside the standard library and this spy: work done by a
    # library's own import (dagster reading its flags) is not ours; work done by project code is.
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_code.co_filename
        if name != "<string>" and not name.startswith((STDLIB, "<frozen")):
            break
        frame = frame.f_back
    if frame is not None and "site-packages" not in frame.f_code.co_filename:
        events.append([kind, str(what), f"{frame.f_code.co_filename}:{frame.f_lineno}"])

class Env:
    def __init__(self, real): self._real = real
    def __getitem__(self, k): record("env", k); return self._real[k]
    def get(self, k, d=None): record("env", k); return self._real.get(k, d)
    def __contains__(self, k): record("env", k); return k in self._real
    def __getattr__(self, name): return getattr(self._real, name)
    def __iter__(self): record("env", "*"); return iter(self._real)
    def __setitem__(self, k, v): self._real[k] = v
    def __len__(self): record("env", "*"); return len(self._real)
    def items(self): record("env", "*"); return self._real.items()
    def keys(self): record("env", "*"); return self._real.keys()
    def copy(self): record("env", "*"); return self._real.copy()

os.environ = Env(real_env)
real_open = builtins.open
def spy_open(file, *a, **k):
    record("open", file)
    return real_open(file, *a, **k)
builtins.open = spy_open
real_popen_init = subprocess.Popen.__init__
def spy_popen(self, args, *a, **k):
    record("subprocess", args)
    return real_popen_init(self, args, *a, **k)
subprocess.Popen.__init__ = spy_popen

def spy_dlt_pipelines():
    import dlt
    real_pipeline = dlt.pipeline
    def pipeline(*a, **k):
        record("dlt.pipeline", k.get("pipeline_name"))
        return real_pipeline(*a, **k)
    dlt.pipeline = pipeline
'''


def _run(body: str) -> dict:
    code = _SPY + body + "\nprint('RESULT ' + json.dumps(result))\n"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def test_importing_the_code_location_does_no_work():
    result = _run(
        "import orchestration.definitions as m\n"
        "result = {'events': events, 'modules': sorted(n for n in sys.modules if n.split('.')[0] in "
        "('dlt', 'dagster_dbt', 'dagster_dlt', 'anthropic', 'slack_sdk', 'slack_bolt', 'metricflow', "
        "'great_expectations', 'orchestration', 'connectors', 'agents'))}\n"
    )
    assert result["events"] == [], f"work at import: {result['events'][:10]}"
    assert result["modules"] == ["orchestration", "orchestration.definitions"], result["modules"]


def test_loading_the_definitions_runs_no_subprocess_and_builds_no_dlt_pipeline():
    from sales_supervisor.dbt import prepare_dbt_project

    prepare_dbt_project()  # the preparation step, before the code location loads
    result = _run(
        "spy_dlt_pipelines()\n"
        "import orchestration.definitions as m\n"
        "from dagster._core.workspace.autodiscovery import loadable_targets_from_loaded_module\n"
        "targets = loadable_targets_from_loaded_module(m)\n"
        "defs = m.load_definitions()\n"
        "graph = defs.resolve_asset_graph()\n"
        "result = {'targets': [t.attribute for t in targets], 'assets': len(graph.get_all_asset_keys()),\n"
        "          'events': [e for e in events if e[0] in ('subprocess', 'dlt.pipeline')],\n"
        "          'sdks': sorted(n for n in ('anthropic', 'slack_sdk', 'slack_bolt') if n in sys.modules)}\n"
    )
    assert result["targets"] == ["load_definitions"], "Dagster's loader should find the lazy definitions"
    assert result["assets"] > 20
    assert result["events"] == [], f"work when loading: {result['events'][:10]}"
    assert result["sdks"] == [], f"SDKs imported on the offline path: {result['sdks']}"


def test_the_offline_drafting_path_does_not_import_the_anthropic_sdk():
    result = _run(
        "from agents.drafting import DrafterConfig, draft_all, make_drafter\n"
        "drafter = make_drafter(DrafterConfig(api_key=None))\n"
        "offline = 'anthropic' in sys.modules\n"
        "from agents.drafting import ClaudeDrafter\n"  # still importable on demand
        "result = {'offline': offline, 'drafter': type(drafter).__name__, 'claude': ClaudeDrafter.__name__}\n"
    )
    assert result == {"offline": False, "drafter": "TemplateDrafter", "claude": "ClaudeDrafter"}
