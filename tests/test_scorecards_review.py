"""Weekly scorecards in the review loop (issue 14): shown first in the digest; praise and warnings
reach the rep only after approval; a PIP or CRITICAL verdict never reaches a rep channel or the CRM,
even when approved (with the explicit second confirmation), in shadow or live mode; all audited."""

from __future__ import annotations

import datetime as dt

import pytest
from slack_sdk import WebClient

from agents.ledger import ConfirmationRequired, ManagerOnly, open_ledger
from agents.review import build_digests, post_digest, publish_approved
from agents.review.blocks import ACTION_APPROVE, ACTION_APPROVE_CONFIRMED, digest_messages
from agents.review.channels import LocalCrmNotesChannel, SlackDmChannel, SmtpEmailChannel
from agents.review.outbox import digest_html, digest_markdown
from agents.risk.models import CrmRecordRef, RiskFlag
from tests.fakes.slack_server import FakeSlackServer
from tests.test_review_fixtures import AS_OF, BOT_TOKEN, MANAGERS, REPS, Clock, pairs
from tests.test_review_publish import GATES, smtp  # noqa: F401  (fixture)

VERDICTS = {"rep-1": "BELOW_FLOOR_PIP", "rep-2": "EXCEEDS", "rep-3": "CRITICAL"}


def scorecard_flag(rep: str, verdict: str) -> RiskFlag:
    return RiskFlag(
        flag_id=RiskFlag.make_id("weekly_scorecard", rep, AS_OF), rule_id="weekly_scorecard", subject="rep", rep_id=rep,
        segment="smb", amount=1.0, observed=verdict, threshold="floors_missed >= 3", severity="high", confidence=1.0,
        message=f"Weekly scorecard over the last 8 complete weeks: {verdict} (three floors missed).",
        policy_version="v1", as_of=AS_OF, crm_records=[CrmRecordRef(object="rep", record_id=rep)],
        semantic_query_ids=["sq_rep_activity"],
        action_hint="manager_only" if verdict in ("BELOW_FLOOR_PIP", "CRITICAL") else None,
    )


def scorecard_pairs():
    draft = {"action": "Share this week's scorecard with the rep by 2026-10-06.", "due_date": "2026-10-06",
             "actor": "manager", "rationale": "Weekly scorecard.", "cited_ids": ["sq_rep_activity"], "confidence": 1.0,
             "drafter": "template"}
    return [(scorecard_flag(rep, v), dict(draft)) for rep, v in VERDICTS.items()]


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def slack(clock):
    with FakeSlackServer(clock=lambda: clock().timestamp()) as server:
        yield server


@pytest.fixture
def ledger(tmp_path, clock):
    with open_ledger(home=tmp_path / "home", clock=clock) as ledger:
        yield ledger


def _post(ledger, tmp_path):
    digest = build_digests([*pairs(), *scorecard_pairs()], REPS, MANAGERS, AS_OF, 5)[0]
    result = post_digest(ledger, digest, None, tmp_path / "outbox")
    by_rule = {}
    for item_id in result.item_ids:
        item = ledger.get_item(item_id)
        key = (item.rule_id, item.rep_id) if item.rule_id == "weekly_scorecard" else item.opportunity_id
        by_rule[key] = item_id
    return digest, by_rule


def test_scorecards_come_first_and_never_take_a_deal_items_place(ledger, tmp_path):
    digest, _ = _post(ledger, tmp_path)
    md = digest_markdown(digest)
    assert md.index("## Weekly scorecards") < md.index("## Decide these first")
    assert [str(e.flag.observed) for e in digest.scorecards] == ["CRITICAL", "BELOW_FLOOR_PIP", "EXCEEDS"]
    assert all(e.flag.rule_id != "weekly_scorecard" for e in digest.decide_first)
    ann = digest.rep("rep-1")
    assert ann.entries[0].flag.rule_id == "weekly_scorecard" and len(ann.entries) == 4  # card + all 3 deal items
    assert "(manager only)" in md and "Weekly scorecards" in digest_html(digest)
    blocks = [b for m in digest_messages(digest) for b in m["blocks"]]
    buttons = {el["action_id"]: el for b in blocks if b["type"] == "actions" for el in b["elements"]}
    pip_actions = next(b for b in blocks if b.get("block_id") == f"actions:{ann.entries[0].item_id}")
    assert [el["action_id"] for el in pip_actions["elements"]][0] == ACTION_APPROVE_CONFIRMED
    assert "confirm" in pip_actions["elements"][0]  # Slack asks again before the click counts
    assert ACTION_APPROVE in buttons


def test_a_pip_verdict_needs_a_second_confirmation_and_is_audited(ledger, tmp_path):
    _, items = _post(ledger, tmp_path)
    pip = items[("weekly_scorecard", "rep-1")]
    with pytest.raises(ConfirmationRequired):
        ledger.record_decision(pip, "approve", "mgr-1", "cli")
    assert ledger.get_decision(pip) is None
    refused = [r for r in ledger.audit_rows(subject_type="item", subject_id=pip) if r.action == "decision.refused"]
    assert refused and "needs_second_confirmation" in refused[-1].payload
    decision = ledger.record_decision(pip, "approve", "mgr-1", "cli", confirmed=True)
    assert decision.action == "approve"
    recorded = [r for r in ledger.audit_rows(subject_type="item", subject_id=pip) if r.action == "decision.recorded"]
    assert '"second_confirmation":true' in recorded[-1].payload
    # Praise needs no second confirmation.
    assert ledger.record_decision(items[("weekly_scorecard", "rep-2")], "approve", "mgr-1", "cli").action == "approve"


def test_a_pip_verdict_never_reaches_a_rep_channel_even_when_approved(ledger, tmp_path, clock, slack, smtp):
    handler, port = smtp
    ledger.set_mode("live", actor="ops", reason="test", gates=GATES)
    _, items = _post(ledger, tmp_path)
    pip, critical = items[("weekly_scorecard", "rep-1")], items[("weekly_scorecard", "rep-3")]
    praise = items[("weekly_scorecard", "rep-2")]
    for item_id in (pip, critical):
        ledger.record_decision(item_id, "approve", "mgr-1", "slack", confirmed=True)
    ledger.record_decision(praise, "approve", "mgr-1", "slack")
    notes = LocalCrmNotesChannel.at_home(ledger, tmp_path / "home")
    channels = {
        "rep_slack": SlackDmChannel(ledger, WebClient(token=BOT_TOKEN, base_url=slack.base_url)),
        "rep_email": SmtpEmailChannel(ledger, "127.0.0.1", port, sender="supervisor@example.test"),
        "crm_note": notes,
    }
    report = publish_approved(ledger, channels, "live")
    sent = {(i, c) for i, c, _ in report.sent}
    # The praise reaches the rep (Slack DM and email) once approved, and is not a CRM note.
    assert sent == {(praise, "rep_slack"), (praise, "rep_email")}, report.counts
    assert [c.params["channel"] for c in slack.calls_to("chat.postMessage")] == [slack.dm_channel_for("UREP2")]
    assert [m.rcpt_tos for m in handler.messages] == [["bob@example.test"]]
    assert notes.notes() == []
    assert ledger.deliveries_for(pip) == [] and ledger.deliveries_for(critical) == []
    # Not even a publisher that asks for it directly, on any channel: refused and audited.
    for channel in ("rep_slack", "rep_email", "crm_note"):
        with pytest.raises(ManagerOnly):
            ledger.claim_delivery(pip, channel, f"sales-supervisor/{channel}/{pip}")
    refusals = [r for r in ledger.audit_rows(subject_type="item", subject_id=pip) if r.action == "delivery.refused"]
    assert len(refusals) == 3 and all("not_for_this_channel" in r.payload for r in refusals)
    assert ledger.deliveries_for(pip) == []
    again = publish_approved(ledger, channels, "live")
    assert not again.sent and not again.failed
    assert ledger.verify_audit().ok


def test_shadow_mode_would_not_send_a_pip_verdict_either(ledger, tmp_path, slack):
    _, items = _post(ledger, tmp_path)
    pip = items[("weekly_scorecard", "rep-1")]
    ledger.record_decision(pip, "approve", "mgr-1", "slack", confirmed=True)
    channels = {"rep_slack": SlackDmChannel(ledger, WebClient(token=BOT_TOKEN, base_url=slack.base_url)),
                "crm_note": LocalCrmNotesChannel.at_home(ledger, tmp_path / "home")}
    report = publish_approved(ledger, channels, "shadow", outbox_dir=tmp_path / "outbox")
    assert report.would_send == []
    assert not (tmp_path / "outbox" / "messages" / "shadow" / "rep_slack" / f"{pip}.json").exists()


def test_a_scorecard_with_unreadable_verdict_counts_as_manager_only():
    from types import SimpleNamespace

    from agents.ledger.audience import allowed_channels, is_manager_only

    item = SimpleNamespace(rule_id="weekly_scorecard", evidence={"flag": {}})
    assert is_manager_only(item) and allowed_channels(item, ("rep_slack", "crm_note")) == ()
    deal = SimpleNamespace(rule_id="stalled_in_stage", evidence={"flag": {"observed": 64}})
    assert allowed_channels(deal, ("rep_slack", "crm_note")) == ("rep_slack", "crm_note")


def test_in_slack_a_pip_verdict_is_recorded_only_through_its_confirm_button(tmp_path):
    """The plain Approve action is refused for a manager-only verdict (ephemeral note, audited); the
    Record verdict button, which Slack shows behind a confirm dialog, records it."""
    from agents.review.slack_app import SlackAppSettings, approver_map, build_app
    from tests.test_review_slack import _block_action, _dispatch

    with FakeSlackServer() as slack, open_ledger(home=tmp_path / "home", clock=Clock()) as ledger:
        client = WebClient(token=BOT_TOKEN, base_url=slack.base_url)
        digest = build_digests([*pairs(), *scorecard_pairs()], REPS, MANAGERS, AS_OF, 5)[0]
        posted = post_digest(ledger, digest, client, tmp_path / "outbox")
        pip = next(i for i in posted.item_ids if ledger.get_item(i).rule_id == "weekly_scorecard"
                   and ledger.get_item(i).rep_id == "rep-1")
        app = build_app(ledger, SlackAppSettings(bot_token=BOT_TOKEN, signing_secret="test-signing-secret-not-real",
                                                 api_base_url=slack.base_url, approvers=approver_map(MANAGERS, {})))
        assert _dispatch(app, _block_action(slack, pip, ACTION_APPROVE, "UMGR1")).status == 200
        assert ledger.get_decision(pip) is None
        [eph] = slack.wait_for("chat.postEphemeral")
        assert "second confirmation" in eph.params["text"]
        assert _dispatch(app, _block_action(slack, pip, ACTION_APPROVE_CONFIRMED, "UMGR1")).status == 200
        assert ledger.get_decision(pip).action == "approve"


def test_in_the_terminal_review_approve_refuses_and_scorecards_confirm_asks_for_the_verdict(tmp_path):
    from typer.testing import CliRunner

    from agents.ledger.identity import current_os_user
    from sales_supervisor.cli import app

    with open_ledger(home=tmp_path) as ledger:
        digest = build_digests(scorecard_pairs(), REPS, MANAGERS, AS_OF, 5)[0]
        items = post_digest(ledger, digest, None, tmp_path / "outbox").item_ids
        pip = next(i for i in items if ledger.get_item(i).rep_id == "rep-1")
        praise = next(i for i in items if ledger.get_item(i).rep_id == "rep-2")
    (tmp_path / "identities.yaml").write_text(f"users:\n  {current_os_user()}: mgr-1\n")
    runner = CliRunner()

    def cli(*args, **kw):
        return runner.invoke(app, [*args, "--home", str(tmp_path)], env={"SALES_SUPERVISOR_TOKEN": ""}, **kw)

    refused = cli("review", "approve", pip)
    assert refused.exit_code == 5 and "scorecards confirm" in refused.output
    wrong = cli("scorecards", "confirm", pip, input="MEETS\n")
    assert wrong.exit_code == 5 and "nothing recorded" in wrong.output
    assert cli("scorecards", "confirm", praise, "--verdict", "EXCEEDS").exit_code == 2  # not a manager-only verdict
    ok = cli("scorecards", "confirm", pip, input="below_floor_pip\n")
    assert ok.exit_code == 0, ok.output
    assert "never sent to the rep" in ok.output
    with open_ledger(home=tmp_path) as ledger:
        decision = ledger.get_decision(pip)
        assert decision.action == "approve" and decision.approver_id == "mgr-1"
        assert decision.reason == "second confirmation: BELOW_FLOOR_PIP"
    assert cli("review", "approve", praise).exit_code == 0


def test_last_weeks_decision_does_not_hold_back_this_weeks_scorecard():
    from agents.review.recurrence import PriorDecision, apply_decisions, subject_key
    from agents.risk.policy import load_policy

    flag = scorecard_flag("rep-2", "MEETS")
    prior = PriorDecision(item_id="i1", action="dismiss", approver_id="mgr-1",
                          decided_at=dt.datetime(2026, 10, 1, 9, tzinfo=dt.timezone.utc), reason="seen it",
                          as_of=AS_OF, flag=flag.model_dump(mode="json"), due_date=None)
    priors = {subject_key(None, "rep-2", "weekly_scorecard"): prior}
    pair = (flag, {"action": "Share the scorecard by 2026-10-13.", "due_date": "2026-10-13"})
    result = apply_decisions([pair], priors, load_policy(None), AS_OF + dt.timedelta(days=7))
    assert [f.flag_id for f, _ in result.shown] == [flag.flag_id] and not result.held_back
    # A rep-level trigger, like a deal flag, keeps the standing decision.
    cov = flag.model_copy(update={"rule_id": "low_coverage", "observed": 1.5, "flag_id": "f-cov"})
    priors = {subject_key(None, "rep-2", "low_coverage"): PriorDecision(
        item_id="i2", action="dismiss", approver_id="mgr-1", decided_at=dt.datetime(2026, 10, 1, 9, tzinfo=dt.timezone.utc),
        reason=None, as_of=AS_OF, flag=cov.model_dump(mode="json"), due_date=None)}
    held = apply_decisions([(cov, pair[1])], priors, load_policy(None), AS_OF + dt.timedelta(days=7))
    assert not held.shown and held.held_back


def test_a_rep_level_trigger_is_snoozed_with_the_rep_id(tmp_path):
    from agents.accountability.policy import TRIGGERS

    flag = scorecard_flag("rep-1", "MEETS").model_copy(update={"rule_id": "low_coverage", "flag_id": "f-cov", "observed": 1.5,
                                                               "action_hint": None})
    draft = {"action": "Review the pipeline by 2026-10-06.", "due_date": "2026-10-06", "actor": "manager"}
    with open_ledger(home=tmp_path) as ledger:
        post_digest(ledger, build_digests([(flag, draft)], REPS, MANAGERS, AS_OF, 5)[0], None, tmp_path / "outbox")
        snooze = ledger.snooze("rep-1", AS_OF + dt.timedelta(days=14), by="mgr-1", reason="new territory",
                               rule_id="low_coverage", known_rules=TRIGGERS)
        assert snooze.opportunity_id == "rep-1" and [s.opportunity_id for s in ledger.active_snoozes(AS_OF)] == ["rep-1"]
