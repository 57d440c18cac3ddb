"""Decisions stick (issue 12.1) and nothing is hidden (12.2): a dismissed deal x rule stays out of the
next day's digest unless its evidence changed materially or the cool-off passed; an approved action is
not proposed again while due; re-running a day keeps its items and decisions; held-back flags are
counted and listed per rep with why."""

from __future__ import annotations

import datetime as dt

import pytest

from agents.ledger import open_ledger
from agents.review.digests import build_digests
from agents.review.outbox import digest_html, digest_markdown
from agents.review.posting import record_digest
from agents.review.recurrence import HeldBack, apply_decisions, prior_decisions
from agents.review.run import prepare_digests
from agents.risk.models import RiskFlag
from agents.risk.policy import load_policy
from tests.test_review_fixtures import AS_OF, MANAGERS, REPS, make_draft, make_flag

NEXT = AS_OF + dt.timedelta(days=1)


def _next_day(flag: RiskFlag, **changes) -> RiskFlag:
    """The same deal x rule flagged again on a later day (a new flag id, as the engine makes it)."""
    as_of = changes.pop("as_of", NEXT)
    return flag.model_copy(update={"as_of": as_of, "flag_id": RiskFlag.make_id(flag.rule_id, flag.opportunity_id, as_of), **changes})


def _inputs(pairs):
    return {"pairs": pairs, "reps": REPS, "managers": MANAGERS, "deal_names": {}, "saved_query_names": {}, "held_back": []}


@pytest.fixture
def ledger(tmp_path):
    with open_ledger(home=tmp_path) as led:
        yield led


def _day_one(ledger, flags):
    digests = prepare_digests(ledger, _inputs([(f, make_draft(f.opportunity_id)) for f in flags]), load_policy(), AS_OF, 5)
    for d in digests:
        record_digest(ledger, d)
    return {e.flag.opportunity_id: e.item_id for d in digests for e in d.entries}


def test_dismissed_flag_is_held_back_until_its_evidence_changes(ledger):
    a, b = make_flag("opp-a", "rep-1"), make_flag("opp-b", "rep-1")
    items = _day_one(ledger, [a, b])
    ledger.record_decision(items["opp-a"], "dismiss", "mgr-1", "cli", reason="customer already confirmed new date by email")
    ledger.record_decision(items["opp-b"], "dismiss", "mgr-1", "cli", reason="in legal review")

    same = _next_day(a, observed=65)  # one more day in the stage: not material (policy: +14 days)
    moved = _next_day(b, stage="Negotiation")  # a new stage: material
    d = prepare_digests(ledger, _inputs([(same, make_draft("opp-a")), (moved, make_draft("opp-b"))]), load_policy(), NEXT, 5)[0]
    shown = {e.flag.opportunity_id: e for e in d.entries}
    assert set(shown) == {"opp-b"}
    assert shown["opp-b"].note.startswith("proposed again: the deal moved from Proposal to Negotiation since you dismissed it on")
    assert "('in legal review')" in shown["opp-b"].note
    held = d.rep("rep-1").held_back
    assert [(h.opportunity_id, h.kind) for h in held] == [("opp-a", "dismissed")]
    assert "customer already confirmed new date by email" in held[0].why
    assert "1 of 2 shown, 1 held back: 1 dismissed earlier, evidence unchanged" == d.rep("rep-1").held_back_summary
    text = digest_markdown(d)
    assert "proposed again: the deal moved from Proposal to Negotiation" in text and "Appendix: held back" in text


def test_observed_growth_and_cool_off_reopen_a_dismissal(ledger):
    a = make_flag("opp-a", "rep-1")
    items = _day_one(ledger, [a])
    ledger.record_decision(items["opp-a"], "dismiss", "mgr-1", "cli", reason="waiting on budget")
    priors = prior_decisions(ledger, NEXT)
    policy = load_policy()
    grown = _next_day(a, observed=64 + 14)
    result = apply_decisions([(grown, {})], priors, policy, NEXT)
    assert result.notes[grown.flag_id].startswith("proposed again: days in the stage went from 64 to 78")
    later = AS_OF + dt.timedelta(days=policy.decisions.cool_off_days)
    unchanged = _next_day(a, as_of=later)
    result = apply_decisions([(unchanged, {})], prior_decisions(ledger, later), policy, later)
    assert "21-day cool-off has passed" in result.notes[unchanged.flag_id]
    early = _next_day(a, as_of=later - dt.timedelta(days=1))
    assert apply_decisions([(early, {})], prior_decisions(ledger, early.as_of), policy, early.as_of).shown == []


def test_approved_action_is_not_proposed_again_while_due(ledger):
    a = make_flag("opp-a", "rep-1")
    items = _day_one(ledger, [a])
    ledger.record_decision(items["opp-a"], "approve", "mgr-1", "cli")
    policy = load_policy()
    due = dt.date(2026, 10, 6)  # make_draft's due date
    before = _next_day(a, as_of=due)
    result = apply_decisions([(before, {})], prior_decisions(ledger, due), policy, due)
    assert result.shown == [] and result.held_back[0].kind == "approved"
    after = _next_day(a, as_of=due + dt.timedelta(days=1))
    result = apply_decisions([(after, {})], prior_decisions(ledger, after.as_of), policy, after.as_of)
    assert len(result.shown) == 1 and "is past due and the deal is still flagged" in result.notes[after.flag_id]


def test_rerunning_the_same_day_keeps_items_and_decisions(ledger):
    a, b = make_flag("opp-a", "rep-1"), make_flag("opp-b", "rep-1")
    first = _day_one(ledger, [a, b])
    ledger.record_decision(first["opp-a"], "dismiss", "mgr-1", "cli", reason="dup")
    again = _day_one(ledger, [a, b])  # the same as-of run again (e.g. a retried or repeated morning run)
    assert again == first
    rerun = prepare_digests(ledger, _inputs([(f, make_draft(f.opportunity_id)) for f in (a, b)]), load_policy(), AS_OF, 5)[0]
    record_digest(ledger, rerun)
    assert {e.flag.opportunity_id: e.decision for e in rerun.entries} == {"opp-a": "dismiss by mgr-1", "opp-b": None}
    assert "Decided: dismiss by mgr-1" in digest_markdown(rerun)
    assert ledger.get_decision(first["opp-a"]).action == "dismiss"
    pending = ledger.pending_items("mgr-1", latest_only=False)
    assert [it.item_id for it in pending] == [first["opp-b"]]  # no second set of pending items


def test_held_back_counts_per_rep_and_in_the_header():
    flags = [make_flag(f"opp-{i}", "rep-1", amount=1000.0 * (i + 1)) for i in range(4)]
    engine_capped = HeldBack(
        flag_id="f-x", rule_id="no_recent_activity", opportunity_id="opp-x", rep_id="rep-1", severity=None,
        amount=500.0, kind="cap", why="rep rep-1 already has 5 deals flagged", deal_name="Tiny deal",
    )
    d = build_digests([(f, make_draft(f.opportunity_id)) for f in flags], REPS, MANAGERS, AS_OF, 2, held_back=[engine_capped])[0]
    rep1 = d.rep("rep-1")
    assert [e.number for e in rep1.entries] == [1, 2]
    assert rep1.flagged == 5 and rep1.omitted == 3
    assert rep1.held_back_summary == "2 of 5 shown, 3 held back: 3 lower severity x amount than the ones shown"
    assert d.held_back_summary.startswith("2 of 5 shown, 3 held back")
    assert [e.flag.opportunity_id for e in d.decide_first] == ["opp-3", "opp-2"]
    page = digest_html(d)
    assert "Decide these first" in page and "Tiny deal" in page and "3 held back" in page


def test_slack_digest_has_the_same_content_rules():
    from agents.review.blocks import digest_messages

    flags = [make_flag(f"opp-{i}", "rep-1", amount=1000.0 * (i + 1)) for i in range(4)]
    again = flags[3]
    d = build_digests(
        [(f, make_draft(f.opportunity_id)) for f in flags], REPS, MANAGERS, AS_OF, 2,
        notes={again.flag_id: "proposed again: the deal moved from Proposal to Negotiation since you dismissed it on Thu 1 Oct"},
    )[0]
    blocks = [b for m in digest_messages(d) for b in m["blocks"]]
    text = "\n".join(str(b) for b in blocks)
    assert "2 of 4 shown, 2 held back" in text
    assert any(b.get("block_id") == "decide_first" for b in blocks)
    assert "proposed again: the deal moved from Proposal to Negotiation" in text
    assert "*1. " in text and "*2. " in text and "confidence 80%" in text


def test_query_links_open_a_page_beside_the_digest(tmp_path):
    from agents.review.outbox import write_digest

    detail = {
        "query_id": "sq_stage_duration", "saved_query": None, "sql": "SELECT percentile_cont(0.75) ...", "row_count": 1,
        "rows": [{"opportunity__segment": "smb", "stage_duration_p75": 30.0}], "metricflow_version": "0.x",
        "executed_at": "2026-10-01 06:30:00", "manifest_hash": "abc",
        "request": {"metrics": ["stage_duration_p75"], "group_by": ["opportunity__segment"], "where": ["metric_time <= '2026-10-01'"]},
    }
    defs = {"stage_duration_p75": {"label": "Stage duration p75", "description": "75th percentile of days in a stage.", "type": "simple", "inputs": []}}
    d = build_digests([(make_flag("opp-a", "rep-1"), make_draft("opp-a"))], REPS, MANAGERS, AS_OF, 5,
                      query_details={"sq_stage_duration": detail}, metric_defs=defs)[0]
    assert d.entries[0].query_links[0].url == "queries/sq_stage_duration.html"
    _, page_html = write_digest(d, tmp_path)
    assert 'href="queries/sq_stage_duration.html"' in page_html.read_text()
    page = (page_html.parent / "queries" / "sq_stage_duration.html").read_text()
    for text in ("75th percentile of days in a stage.", "SELECT percentile_cont(0.75)", "metric_time &lt;= &#x27;2026-10-01&#x27;", "<td", "30"):
        assert text in page


def test_demoted_rules_are_informational_and_named_in_the_footer(tmp_path):
    from agents.review.blocks import digest_messages
    from agents.review.demotion import demoted_rules, load_backtest_lifts, save_backtest_lifts

    save_backtest_lifts(tmp_path, {"stalled_in_stage": 0.95, "no_recent_activity": 1.8, "amount_swing": None}, start="a", end="b")
    lifts = load_backtest_lifts(tmp_path)
    demoted = demoted_rules(lifts, 1.1)
    assert demoted == {"stalled_in_stage": 0.95}
    flags = [make_flag("opp-a", "rep-1", amount=90_000.0), make_flag("opp-b", "rep-1", rule="no_recent_activity")]
    d = build_digests([(f, make_draft(f.opportunity_id)) for f in flags], REPS, MANAGERS, AS_OF, 5,
                      demoted=demoted, lift_floor=1.1)[0]
    assert [e.flag.opportunity_id for e in d.entries] == ["opp-b"]
    assert [e.flag.opportunity_id for e in d.informational] == ["opp-a"]
    assert all(e.flag.rule_id != "stalled_in_stage" for e in d.decide_first)  # the biggest deal, but demoted
    page = digest_html(d)
    assert "Informational: 1 flag(s) from demoted rules" in page and "<details" in page
    assert "stalled_in_stage (lift 0.95)" in page and "stalled_in_stage (lift 0.95)" in digest_markdown(d)
    assert any("stalled_in_stage (lift 0.95)" in str(b) for m in digest_messages(d) for b in m["blocks"])
    assert demoted_rules(lifts, 1.1, enabled=False) == {}


def test_engine_cap_reasons_read_like_the_digest():
    from agents.review.run import _cap_why

    assert _cap_why("rep rep-0004 already has 5 deals flagged in this run (ranked by severity x amount)") == (
        "below the top 5 of this rep by severity x amount")
    assert _cap_why(None) == "per-rep cap"


def test_a_rerun_that_adds_items_posts_again(tmp_path):
    from slack_sdk import WebClient

    from agents.review.posting import post_digest
    from tests.fakes.slack_server import FakeSlackServer
    from tests.test_review_fixtures import BOT_TOKEN

    first = [(make_flag("opp-a", "rep-1"), make_draft("opp-a"))]
    more = first + [(make_flag("opp-z", "rep-1", amount=99_000.0), make_draft("opp-z"))]
    with FakeSlackServer() as slack, open_ledger(home=tmp_path) as ledger:
        client = WebClient(token=BOT_TOKEN, base_url=slack.base_url)
        post_digest(ledger, build_digests(first, REPS, MANAGERS, AS_OF, 5)[0], client, tmp_path / "outbox")
        same = post_digest(ledger, build_digests(first, REPS, MANAGERS, AS_OF, 5)[0], client, tmp_path / "outbox")
        assert same.already_posted and len(slack.calls_to("chat.postMessage")) == 1
        grown = post_digest(ledger, build_digests(more, REPS, MANAGERS, AS_OF, 5)[0], client, tmp_path / "outbox")
        assert not grown.already_posted and len(grown.item_ids) == 2
        assert len(slack.calls_to("chat.postMessage")) == 2  # the new item does not wait unseen in the ledger
