"""The console in a real browser (Playwright + Debian's Chromium, headless, offline): a manager signs in and
decides items with the keyboard and the buttons, another team is refused, an ops admin pauses sending and the
next publish sends nothing. Skips cleanly when Chromium or Playwright is missing (.ci/run installs both)."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from agents.review.channels import LocalCrmNotesChannel
from agents.review.publisher import publish_approved
from sales_supervisor.console.app import create_app
from tests.console_support import PASSWORD, FakeDagster, make_console_home

CHROMIUM = Path("/usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists() and not shutil.which("chromium"), reason="no Chromium at /usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def served(tmp_path):
    import uvicorn

    env = make_console_home(tmp_path)
    app = create_app(env.settings, env.console, ledger=env.ledger, dagster=FakeDagster())
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    env.url = f"http://127.0.0.1:{port}"
    env.app_state = app.state.console
    try:
        yield env
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        env.ledger.close()


@pytest.fixture()
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")), args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def sign_in(page, url: str, login: str) -> None:
    page.goto(f"{url}/login")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def test_manager_decides_in_the_browser_and_another_team_is_refused(served, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    sign_in(page, served.url, "maria")
    assert page.locator("#signed-in-as").inner_text() == "Maria Manager"
    assert "Pipeline review for Maria Manager" in page.locator("h1").first.inner_text()
    assert page.locator("#decide-first tr").count() == 1 + 4
    first = page.locator("li.item.selected")
    deal = first.locator(".deal").inner_text()
    item_id = first.get_attribute("data-item")
    page.keyboard.press("a")  # approve the selected item with the keyboard
    page.wait_for_selector(".flash")
    assert page.locator(".flash").inner_text() == f"Approved: {deal}."
    assert served.ledger.get_decision(item_id).approver_channel == "console"
    # next pending item is selected; dismiss it with a reason typed after 'd', Enter submits
    selected = page.locator("li.item.selected")
    dismissed_id = selected.get_attribute("data-item")
    assert dismissed_id != item_id
    page.keyboard.press("d")
    page.keyboard.type("customer paused the project")
    page.keyboard.press("Enter")
    page.wait_for_selector(".flash")
    d = served.ledger.get_decision(dismissed_id)
    assert (d.action, d.reason) == ("dismiss", "customer paused the project")
    assert "customer paused the project" in page.locator(f"li[data-item='{dismissed_id}']").inner_text()
    # the evidence link opens the query page with its SQL and rows
    page.locator("li.item a[href^='/queries/']").first.click()
    assert "SELECT segment, stage, p75" in page.locator("#query-sql").inner_text()
    assert page.locator("#query-rows tr").count() == 2
    # another team's digest is refused, and the refusal is audited
    before = sum(1 for a in served.ledger.audit_rows() if a.action == "console.refused")
    response = page.goto(f"{served.url}/digest?manager=mgr-2")
    assert response.status == 403 and "not their team" in page.locator("#error-message").inner_text()
    assert sum(1 for a in served.ledger.audit_rows() if a.action == "console.refused") == before + 1
    page.goto(f"{served.url}/digest")
    page.screenshot(path=str(tmp_path / "digest.png"), full_page=True)


def test_admin_pauses_sending_and_the_next_publish_sends_nothing(served, browser, tmp_path):
    ledger = served.ledger
    ledger.set_mode("live", actor="test", reason="gates passed in this test", gates={"eval": True, "shadow_agreement": True})
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    sign_in(page, served.url, "maria")
    item_id = page.locator("li.item.selected").get_attribute("data-item")
    page.locator("li.item.selected button[data-key=a]").click()
    page.wait_for_selector(".flash")
    assert ledger.get_decision(item_id).mode == "live"
    page.click("text=Sign out")
    sign_in(page, served.url, "olga")
    assert page.url.endswith("/ops")
    assert page.locator("[data-card='Sending'] .status-value").inner_text() == "on"
    page.fill("#overrides input[name=reason]", "drafts look wrong today")
    page.click("#pause-sending")
    page.wait_for_selector("#sending-paused")
    assert page.locator("[data-card='Sending'] .status-value").inner_text() == "paused"
    assert "status-red" in page.locator("[data-card='Sending']").get_attribute("class")
    channel = LocalCrmNotesChannel.at_home(ledger, served.home)
    report = publish_approved(ledger, {"crm_note": channel})
    assert report.halted and not report.sent
    assert not ledger.deliveries_for(item_id)
    # the activity feed shows the pause with its severity
    page.reload()
    row = page.locator("#activity tr", has_text="kill_switch.engaged").first
    assert "critical" in row.inner_text() and "drafts look wrong today" in row.inner_text()
    page.screenshot(path=str(tmp_path / "ops.png"), full_page=True)
    # resumed, the same publish delivers the approved item exactly once
    page.click("#resume-sending")
    page.wait_for_selector("#pause-sending")
    report = publish_approved(ledger, {"crm_note": channel})
    assert [s[0] for s in report.sent] == [item_id]


def test_admin_edits_a_threshold_and_rolls_it_back(served, browser):
    pytest.importorskip("agents.risk.versions", reason="the policy version store is not merged yet")
    from agents.risk.versions import PolicyVersionStore

    page = browser.new_page(viewport={"width": 1366, "height": 900})
    sign_in(page, served.url, "olga")
    page.goto(f"{served.url}/ops/config")
    threshold = page.locator("tr[data-rule='stalled_in_stage'] [data-param='multiplier']")
    assert threshold.inner_text() == "2.0"
    text = page.locator("#policy-yaml").input_value()
    page.fill("#policy-yaml", text.replace("multiplier: 2.0", "multiplier: 2.6", 1))
    page.fill("#policy-reason", "negotiations run long this quarter")
    page.click("#propose-policy")
    assert "stalled_in_stage: params.multiplier 2.0 -> 2.6" in page.locator("#threshold-changes").inner_text()
    assert "+      multiplier: 2.6" in page.locator("#policy-diff").inner_text()
    page.click("#apply-proposal")
    assert page.locator("tr[data-rule='stalled_in_stage'] [data-param='multiplier']").inner_text() == "2.6"
    store = PolicyVersionStore(served.ledger)
    assert store.current() is not None
    page.click("#rollback-one-step")
    assert page.locator("tr[data-rule='stalled_in_stage'] [data-param='multiplier']").inner_text() == "2.0"
    assert store.current() is None


def test_manager_asks_a_question_and_sees_its_query(served, browser):
    pytest.importorskip("agents.ask", reason="agents/ask is not merged yet")
    import contextlib

    from agents.ask import Catalog
    from sales_supervisor.dbt import prepare_dbt_project
    from sales_supervisor.settings import DBT_PROJECT_DIR
    from tests.test_ask import RecordingLayer

    prepare_dbt_project()
    layer = RecordingLayer(Catalog.from_manifest_file(DBT_PROJECT_DIR / "target" / "semantic_manifest.json"))
    served.app_state.layer_factory = lambda settings: contextlib.nullcontext(layer)
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    sign_in(page, served.url, "maria")
    page.click("text=Ask")
    page.fill("#question", "How did the enterprise team do last quarter?")
    page.click("#ask-button")
    assert "Win rate" in page.locator("#answer-text").inner_text()
    assert page.locator("code.query-id").first.inner_text().startswith("mfq_")
    page.locator("#answer details summary").first.click()
    assert "MetricFlow SQL" in page.locator("pre.ask-sql").first.inner_text()
