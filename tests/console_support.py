"""A console over a small review ledger (no pipeline run): two managers' digests from the review fixtures,
accounts for a manager of each team, a delegate and an ops admin, and a query page in the outbox."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from agents.ledger import open_ledger
from agents.ledger.accounts import AccountsFile
from agents.review.digests import build_digests
from agents.review.posting import post_digest
from agents.review.recurrence import HeldBack
from sales_supervisor.console.settings import ConsoleSettings
from sales_supervisor.settings import Settings
from tests.test_review_fixtures import AS_OF, MANAGERS, REPS, pairs

PASSWORD = "correct horse battery"
_USERS: dict[str, str] = {}
DELEGATES = {"mgr-1": ["dlg-1"]}


class FakeDagster:
    """Stands in for the running Dagster (tested against a GraphQL server in test_console.py)."""

    def __init__(self):
        self.calls: list[tuple[str, bool | None]] = []

    def schedule_status(self):
        from sales_supervisor.console.dagster_control import DagsterUnavailable

        raise DagsterUnavailable("not running in this test")

    sensor_status = schedule_status

    def set_schedule(self, running):
        self.calls.append(("schedule", running))
        return "RUNNING" if running else "STOPPED"

    def set_sensor(self, running):
        self.calls.append(("sensor", running))
        return "RUNNING" if running else "STOPPED"

    def run_now(self, job="daily_supervisor_job"):
        self.calls.append(("run", None))
        return "0123456789abcdef"


def make_console_home(tmp_path: Path) -> SimpleNamespace:
    home = tmp_path / "var"
    home.mkdir(parents=True)
    delegates_file = home / "delegates.yaml"
    delegates_file.write_text("mgr-1: [dlg-1]\n")
    settings = Settings(home=home, delegates_file=delegates_file)
    ledger = open_ledger(home=home, delegates=DELEGATES)
    held = [HeldBack(flag_id="h1", rule_id="no_recent_activity", opportunity_id="opp-h1", rep_id="rep-1", severity="low",
                     amount=900.0, kind="cap", why="below the top 5 of this rep", deal_name="Held Deal One")]
    digests = build_digests(pairs(), REPS, MANAGERS, AS_OF, 5, run_id=AS_OF.isoformat(), held_back=held,
                            deal_names={f.opportunity_id: f"Deal {f.opportunity_id.upper()}" for f, _ in pairs()})
    outbox = home / "outbox"
    for d in digests:
        post_digest(ledger, d, None, outbox)
    # the query page the digest cites (the pipeline writes it from semantic.semantic_queries)
    qdir = outbox / "digests" / AS_OF.isoformat() / "queries"
    qdir.mkdir(parents=True, exist_ok=True)
    (qdir / "sq_stage_duration.json").write_text(json.dumps({
        "query_id": "sq_stage_duration", "saved_query": "stage_duration_by_segment", "metricflow_version": "0.207",
        "executed_at": "2026-10-01T06:31:00", "row_count": 1, "sql": "SELECT segment, stage, p75 FROM stage_durations",
        "metrics": [{"name": "stage_duration_p75", "type": "simple", "description": "p75 days in stage"}],
        "group_by": ["opportunity__segment"], "filters": [], "rows": [{"segment": "smb", "stage": "Proposal", "p75": 30.0}],
    }))
    cs = ConsoleSettings(secret="test-secret-not-real", dagster_url="http://127.0.0.1:9")
    users = cs.users_path(home)
    if "text" not in _USERS:  # argon2 hashing is deliberately slow: hash the four accounts once per test session
        accounts = AccountsFile(users)
        accounts.add("maria", PASSWORD, role="manager", approver_id="mgr-1", name="Maria Manager")
        accounts.add("omar", PASSWORD, role="manager", approver_id="mgr-2", name="Omar Other")
        accounts.add("dana", PASSWORD, role="delegate", approver_id="dlg-1", name="Dana Delegate")
        accounts.add("olga", PASSWORD, role="ops_admin", name="Olga Ops")
        _USERS["text"] = users.read_text()
    else:
        users.write_text(_USERS["text"])
    return SimpleNamespace(home=home, settings=settings, console=cs, ledger=ledger, outbox=outbox)
