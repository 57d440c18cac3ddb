"""The console over the session's built demo home (the daily job already materialised by the built_warehouse
fixture; nothing is run again): the ops page reads the real run from the Dagster instance, a manager's digest
page shows the real items, and their query pages open with the SQL and rows the run stored."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from agents.ledger import open_ledger
from agents.ledger.accounts import AccountsFile
from sales_supervisor.console.app import create_app
from sales_supervisor.console.settings import ConsoleSettings

pytestmark = pytest.mark.slow


def test_console_over_the_built_demo(built_warehouse, tmp_path):
    settings = built_warehouse.settings
    cs = ConsoleSettings(secret="s", users_file=tmp_path / "users.yaml", dagster_url="http://127.0.0.1:9")
    with open_ledger(settings.ledger_url, home=settings.home_dir) as ledger:
        manager = ledger.pending_items()[0].manager_id
        accounts = AccountsFile(cs.users_file)
        accounts.add("boss", "demo password 1", role="manager", approver_id=manager)
        accounts.add("ops", "demo password 1", role="ops_admin")
        app = create_app(settings, cs, ledger=ledger)

        def client_for(login):
            c = TestClient(app, base_url="http://127.0.0.1")
            token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)
            c.post("/login", data={"login": login, "password": "demo password 1", "csrf_token": token})
            return c

        page = client_for("boss").get("/digest").text
        assert "Decide these first" in page and page.count('class="item ') >= 5
        query = re.search(r'href="(/queries/2026-10-01/[^"]+)"', page).group(1)
        q = client_for("boss").get(query)
        assert q.status_code == 200 and "SELECT" in q.text.upper() and "<td>" in q.text
        ops = client_for("ops").get("/ops").text
        run_id = built_warehouse.summary.run_id
        assert f"run {run_id[:8]}" in ops and 'data-card="Last run"' in ops
        assert re.search(r'data-card="Last run"><div class="small muted">Last run</div><div class="status-value">success<', ops)
