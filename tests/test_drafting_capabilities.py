"""Invariant 2 for the drafting agent: it can draft and nothing else.

Walks every module of agents/drafting and checks what it imports (statically, and
at runtime in a fresh interpreter): no Slack, no email, no CRM writer or outbound
channel, no Dagster, nothing from orchestration/.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import agents.drafting

PACKAGE_DIR = Path(agents.drafting.__file__).parent
REPO_ROOT = PACKAGE_DIR.parents[1]

FORBIDDEN_PREFIXES = (
    "slack_sdk", "slack_bolt", "slack",
    "smtplib", "email", "aiosmtpd", "imaplib", "poplib",
    "dagster", "dagster_dbt", "orchestration",
    "agents.outbound", "agents.channels", "agents.publish", "agents.publisher", "agents.slack", "agents.email",
    "agents.ledger", "agents.review",
    "connectors",  # CRM clients (readers and the note writer) live there; drafting needs neither
    "requests", "urllib.request", "http.client", "socket",  # no raw network path besides the anthropic SDK
)
ALLOWED_THIRD_PARTY = {"anthropic", "pydantic", "yaml"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _forbidden(name: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in FORBIDDEN_PREFIXES)


def test_drafting_modules_import_no_outbound_channel():
    files = sorted(PACKAGE_DIR.rglob("*.py"))
    assert len(files) >= 7
    offenders = {str(f.relative_to(REPO_ROOT)): sorted(n for n in _imports(f) if _forbidden(n)) for f in files}
    offenders = {k: v for k, v in offenders.items() if v}
    assert offenders == {}


def test_drafting_imports_only_known_third_party_packages():
    stdlib = set(sys.stdlib_module_names)
    seen = set()
    for f in PACKAGE_DIR.rglob("*.py"):
        for name in _imports(f):
            top = name.split(".")[0]
            if top not in stdlib and top not in {"agents", "__future__"}:
                seen.add(top)
    assert seen <= ALLOWED_THIRD_PARTY, seen - ALLOWED_THIRD_PARTY


def test_importing_drafting_loads_no_outbound_module_at_runtime():
    code = (
        "import json, sys; import agents.drafting, agents.drafting.claude; "
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    bad = [m for m in loaded if m.split(".")[0] in {"slack_sdk", "slack_bolt", "smtplib", "dagster", "orchestration", "connectors"}
           or m.startswith(("agents.outbound", "agents.channels", "agents.publish"))]
    assert bad == []


def test_the_only_tool_records_a_draft():
    from agents.drafting.prompts import DRAFT_TOOL, DRAFT_TOOL_NAME

    assert DRAFT_TOOL["name"] == DRAFT_TOOL_NAME == "submit_coaching_draft"
    props = set(DRAFT_TOOL["input_schema"]["properties"])
    assert props == {"action", "due_date", "actor", "rationale", "cited_ids", "confidence"}
    assert DRAFT_TOOL["input_schema"]["properties"]["actor"]["enum"] == ["rep", "manager"]
