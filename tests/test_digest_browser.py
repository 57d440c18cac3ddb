"""The HTML digest in a real browser (issue 12.7): headless Chromium renders it, and the header, the held-back
count and the whole decide-first list are visible without scrolling on a 1366x768 laptop window. Skips cleanly
when Chromium or Playwright is not installed (.ci/run installs them)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agents.review.digests import build_digests
from agents.review.outbox import write_digest
from agents.review.recurrence import HeldBack
from tests.test_review_fixtures import AS_OF, MANAGERS, REPS, make_draft, make_flag

CHROMIUM = Path("/usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists() and not shutil.which("chromium"), reason="no Chromium at /usr/bin/chromium")


def _digest_page(tmp_path: Path) -> Path:
    flags = [
        make_flag(f"opp-{i:02d}", rep, amount=5_000.0 * (i + 1), severity=("critical", "high", "medium")[i % 3])
        for i, rep in enumerate(["rep-1", "rep-2", "rep-1", "rep-2", "rep-1", "rep-2", "rep-1", "rep-2", "rep-1"])
    ]
    drafts = [{**make_draft(f.opportunity_id), "action": (
        f"Ask Dana Lee (VP Finance) to introduce Sam Ortiz (Chief Financial Officer) on {f.opportunity_id} and book a "
        "meeting with them by Friday 2 Oct.")} for f in flags]
    held = [HeldBack(flag_id=f"h{i}", rule_id="no_recent_activity", opportunity_id=f"opp-h{i}", rep_id="rep-1", severity="low",
                     amount=100.0, kind="cap", why="below the top 5 of this rep", deal_name=f"Held deal {i}") for i in range(12)]
    digest = build_digests(list(zip(flags, drafts)), REPS, MANAGERS, AS_OF, 4, held_back=held,
                           deal_names={f.opportunity_id: f"Northwind Freight Partners - Platform Renewal {f.opportunity_id}" for f in flags})[0]
    for e in digest.entries:
        e.item_id = f"{abs(hash(e.flag.flag_id)):032x}"[:32]
    _, page = write_digest(digest, tmp_path / "outbox")
    return page


def test_digest_renders_and_the_top_list_is_visible_without_scrolling(tmp_path):
    page_path = _digest_page(tmp_path)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")),
                                    args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.goto(page_path.as_uri())
            assert page.title().startswith("Pipeline review")
            top = page.locator("#decide-first")
            box = top.bounding_box()
            assert box is not None and box["y"] >= 0
            assert box["y"] + box["height"] <= 768, f"decide-first list ends at {box['y'] + box['height']:.0f}px"
            assert page.locator("#decide-first tr").count() == 1 + 5  # header + the top five
            held = page.locator("#held-back-summary").bounding_box()
            assert held is not None and held["y"] + held["height"] <= 768
            # The styles are inline: a severity badge has its colour without any stylesheet.
            colour = page.locator("#decide-first span").first.evaluate("el => getComputedStyle(el).backgroundColor")
            assert colour not in ("rgba(0, 0, 0, 0)", "transparent")
            shot = page.screenshot(path=str(tmp_path / "digest.png"))
            assert len(shot) > 20_000  # a rendered page, not a blank one
        finally:
            browser.close()
