"""Governed autonomy at the publisher: L5 is earned by the rule's own agreement and lost when it falls,
high-risk actions are never sent at L5, and a send in quiet hours waits and then goes exactly once."""

from __future__ import annotations

import datetime as dt

import pytest
from slack_sdk import WebClient

from agents.autonomy.config import AutonomySettings
from agents.autonomy.governor import AutonomyGovernor
from agents.ledger import open_ledger
from agents.review import build_digests, publish_approved
from agents.review.channels import LocalCrmNotesChannel, SlackDmChannel
from agents.review.posting import record_digest
from agents.risk.policy import PolicyError, RiskPolicy, load_policy
from tests.fakes.slack_server import FakeSlackServer
from tests.test_review_fixtures import AS_OF, BOT_TOKEN, MANAGERS, REPS, Clock, make_draft, make_flag

GATES = {"eval": True, "shadow_agreement": True}
RULE = "stalled_in_stage"
UTC = dt.timezone.utc


def settings(**overrides) -> AutonomySettings:
    data = {
        "rules": {RULE: {"level": 5, "low_risk": True}},
        "l5": {"min_agreement": 0.9, "window_business_days": 10, "min_decisions": 10},
        "preferences": {"default": {"timezone": "UTC", "quiet_hours_off": True}},
    }
    data.update(overrides)
    return AutonomySettings.model_validate(data)


@pytest.fixture
def clock():
    return Clock(dt.datetime(2026, 10, 1, 9, 0, tzinfo=UTC))  # a Thursday morning


@pytest.fixture
def slack(clock):
    with FakeSlackServer(clock=lambda: clock().timestamp()) as server:
        yield server


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


@pytest.fixture
def ledger(home, clock):
    with open_ledger(home=home, clock=clock) as ledger:
        ledger.set_mode("live", actor="ops", reason="test", gates=GATES)
        ledger.record_eval("template", {"pass_rate": 0.95}, actor="test")
        yield ledger


def channels_for(ledger, slack, home):
    return {"rep_slack": SlackDmChannel(ledger, WebClient(token=BOT_TOKEN, base_url=slack.base_url)),
            "crm_note": LocalCrmNotesChannel.at_home(ledger, home)}


def add_items(ledger, run_id: str, specs, *, rule=RULE) -> list[str]:
    """specs: (opportunity, rep, severity, amount); returns the new item ids in order."""
    pairs = [(make_flag(o, r, severity=s, amount=a, rule=rule), make_draft(o)) for o, r, s, a in specs]
    ids = {}
    for digest in build_digests(pairs, REPS, MANAGERS, AS_OF, 100, run_id=run_id):
        record_digest(ledger, digest)
        ids.update({e.flag.opportunity_id: e.item_id for e in digest.entries})
    return [ids[o] for o, *_ in specs]


def history(ledger, run_id: str, approved: int, dismissed: int, *, rule=RULE) -> None:
    """Manager decisions (in shadow mode) on earlier items of ``rule``: the record a rule earns L5 by."""
    ledger.set_mode("shadow", actor="ops", reason="test history")
    specs = [(f"{run_id}-{i}", "rep-2", "medium", 1_000.0) for i in range(approved + dismissed)]
    for n, item_id in enumerate(add_items(ledger, run_id, specs, rule=rule)):
        if n < approved:
            ledger.record_decision(item_id, "approve", "mgr-1", "slack")
        else:
            ledger.record_decision(item_id, "dismiss", "mgr-1", "slack", reason="not useful")
    ledger.set_mode("live", actor="ops", reason="test", gates=GATES)


def actions(ledger, action: str):
    return [r for r in ledger.audit_rows(subject_type="autonomy") if r.action == action]


# --------------------------------------------------------------------------- 1. earned and lost


def test_a_rule_below_its_agreement_bar_cannot_reach_l5(ledger, slack, home, clock):
    history(ledger, "h1", approved=8, dismissed=2)  # 80% < 90%
    clock.advance(minutes=5)
    [item] = add_items(ledger, "today", [("opp-a", "rep-1", "medium", 20_000.0)])
    report = publish_approved(ledger, channels_for(ledger, slack, home), "live", autonomy=AutonomyGovernor(settings()))
    assert report.autonomous == [] and report.sent == []
    assert ledger.get_decision(item) is None  # waits for the manager, as at L4
    assert slack.calls_to("chat.postMessage") == []
    [refused] = actions(ledger, "autonomy.l5_refused")
    assert "agreement 80% < 90%" in refused.payload


def test_too_few_decisions_or_a_failing_eval_keep_a_rule_at_l4(ledger, home, clock, slack):
    history(ledger, "h1", approved=5, dismissed=0)  # 100%, but only 5 of the 10 decisions needed
    gov = AutonomyGovernor(settings())
    assert gov.start(ledger)[RULE][0] == 4
    history(ledger, "h2", approved=5, dismissed=0)
    ledger.record_eval("template", {"pass_rate": 0.5}, actor="test")
    levels = gov.start(ledger)
    assert levels[RULE][0] == 4 and "eval pass rate 50% < 90%" in levels[RULE][1].describe()
    ledger.record_eval("template", {"pass_rate": 0.95}, actor="test")
    assert gov.start(ledger)[RULE][0] == 5


def test_a_rule_earns_l5_sends_on_its_own_and_drops_back_to_l4_with_a_notice(ledger, slack, home, clock):
    history(ledger, "h1", approved=10, dismissed=0)
    clock.advance(minutes=5)
    gov = AutonomyGovernor(settings())
    assert gov.start(ledger)[RULE][0] == 5
    clock.advance(minutes=5)
    [item] = add_items(ledger, "today", [("opp-a", "rep-1", "medium", 20_000.0)])
    channels = channels_for(ledger, slack, home)
    report = publish_approved(ledger, channels, "live", autonomy=gov)
    assert report.autonomous == [item]
    assert [(i, c) for i, c, _ in report.sent] == [(item, "rep_slack")]
    decision = ledger.get_decision(item)
    assert (decision.approver_id, decision.approver_channel, decision.mode) == ("autonomy:L5", "autonomy", "live")
    assert channels["crm_note"].notes() == []  # an L5 send reaches the rep only: no CRM write without a manager
    assert any(c == "crm_note" and "does not go to the rep" in why for i, c, why in report.held)
    assert ledger.verify_audit().ok  # the autonomous decision is cross-checked like any other

    # Managers disagree with the rule's next items: 10 of 12 approved = 83% < 90%.
    history(ledger, "h2", approved=0, dismissed=2)
    clock.advance(minutes=5)
    [later] = add_items(ledger, "later", [("opp-c", "rep-1", "low", 2_000.0)])
    report = publish_approved(ledger, channels, "live", autonomy=AutonomyGovernor(settings()))
    assert report.autonomous == [] and report.sent == []
    assert ledger.get_decision(later) is None
    [demoted] = actions(ledger, "autonomy.demoted")
    assert '"to":4' in demoted.payload.replace(" ", "") and "dropped from L5 to L4" in demoted.payload
    assert len(slack.calls_to("chat.postMessage")) == 1


def test_the_bar_is_checked_again_before_every_send(ledger, slack, home, clock):
    """Approved at L5 inside quiet hours; by the time the hours end the rule has fallen: nothing goes."""
    history(ledger, "h1", approved=10, dismissed=0)
    clock.advance(minutes=5)
    gov_settings = settings(preferences={"default": {"timezone": "UTC"}})  # default quiet hours 18:00-08:00
    AutonomyGovernor(gov_settings).start(ledger)
    clock.now = dt.datetime(2026, 10, 1, 20, 0, tzinfo=UTC)
    [item] = add_items(ledger, "evening", [("opp-a", "rep-1", "medium", 20_000.0)])
    channels = {"rep_slack": channels_for(ledger, slack, home)["rep_slack"]}
    report = publish_approved(ledger, channels, "live", autonomy=AutonomyGovernor(gov_settings))
    assert report.autonomous == [item] and report.deferred and not report.sent
    history(ledger, "h2", approved=0, dismissed=3)
    clock.now = dt.datetime(2026, 10, 2, 8, 30, tzinfo=UTC)
    report = publish_approved(ledger, channels, "live", autonomy=AutonomyGovernor(gov_settings))
    assert report.sent == [] and any("dropped to L4 before the send" in why for _, _, why in report.held)
    assert slack.calls_to("chat.postMessage") == []


# --------------------------------------------------------------------------- 2. high-risk never at L5


def test_high_risk_actions_are_never_sent_at_l5(ledger, slack, home, clock):
    history(ledger, "h1", approved=10, dismissed=0)
    clock.advance(minutes=5)
    s = settings(high_risk={"max_amount": 30_000, "severities": ["critical"], "rules": ["rep_overload"]})
    AutonomyGovernor(s).start(ledger)
    clock.advance(minutes=5)
    low, big, critical = add_items(ledger, "today", [
        ("opp-a", "rep-1", "medium", 20_000.0), ("opp-b", "rep-1", "medium", 45_000.0), ("opp-c", "rep-2", "critical", 5_000.0),
    ])
    channels = channels_for(ledger, slack, home)
    report = publish_approved(ledger, channels, "live", autonomy=AutonomyGovernor(s))
    assert report.autonomous == [low]
    assert [(i, c) for i, c, _ in report.sent] == [(low, "rep_slack")]
    reasons = {i: why for i, _, why in report.held}
    assert "large deal" in reasons[big] and "severity critical" in reasons[critical]
    assert ledger.get_decision(big) is None and ledger.get_decision(critical) is None
    # A performance verdict can never be configured at L5, nor a rule the policy does not mark low-risk.
    with pytest.raises(ValueError, match="high-risk rule"):
        AutonomySettings.model_validate({"rules": {"rep_overload": {"level": 5, "low_risk": True}}})
    with pytest.raises(ValueError, match="low_risk: true"):
        AutonomySettings.model_validate({"rules": {RULE: {"level": 5}}})


def test_the_policy_file_carries_the_autonomy_section_and_defaults_keep_l3():
    import yaml

    default = load_policy()
    assert default.spec.autonomy.configured_level(RULE) == 3 and default.spec.autonomy.l5_rules() == []
    data = yaml.safe_load(load_policy().source and open(load_policy().source).read())
    data["autonomy"] = {"rules": {RULE: {"level": 5}}}
    with pytest.raises(PolicyError, match="low_risk"):
        RiskPolicy.from_dict(data)


def test_l1_and_l2_rules_send_nothing_even_when_approved(ledger, slack, home):
    [item] = add_items(ledger, "today", [("opp-a", "rep-1", "medium", 20_000.0)])
    ledger.record_decision(item, "approve", "mgr-1", "slack")
    s = settings(rules={RULE: {"level": 2}})
    report = publish_approved(ledger, channels_for(ledger, slack, home), "live", autonomy=AutonomyGovernor(s))
    assert report.sent == [] and {c for _, c, _ in report.held} == {"rep_slack", "crm_note"}
    report = publish_approved(ledger, channels_for(ledger, slack, home), "live", autonomy=AutonomyGovernor(settings(rules={})))
    assert len(report.sent) == 2  # at the default L3 it goes, as before


# --------------------------------------------------------------------------- 3. quiet hours


def test_a_send_in_quiet_hours_waits_survives_a_restart_and_goes_exactly_once(home, slack, clock):
    s = settings(preferences={
        "default": {"timezone": "UTC"},
        "reps": {"rep-1": {"timezone": "America/New_York"}},
    })
    clock.now = dt.datetime(2026, 10, 2, 21, 0, tzinfo=UTC)  # Friday 17:00 in New York: still working hours
    with open_ledger(home=home, clock=clock) as ledger:
        ledger.set_mode("live", actor="ops", reason="test", gates=GATES)
        ny, = add_items(ledger, "fri", [("opp-a", "rep-1", "medium", 20_000.0)])
        ledger.record_decision(ny, "approve", "mgr-1", "slack")
        clock.now = dt.datetime(2026, 10, 2, 22, 30, tzinfo=UTC)  # 18:30 in New York: quiet
        report = publish_approved(ledger, {"rep_slack": channels_for(ledger, slack, home)["rep_slack"]}, "live",
                                  autonomy=AutonomyGovernor(s))
        assert report.sent == [] and report.deferred == [(ny, "rep_slack", "2026-10-05T12:00:00+00:00")]  # Monday 08:00 EDT
    assert slack.calls_to("chat.postMessage") == []

    # A restart (a new process: new ledger handle, new governor) during the weekend: still waiting, recorded once.
    for when in (dt.datetime(2026, 10, 3, 15, 0, tzinfo=UTC), dt.datetime(2026, 10, 5, 11, 59, tzinfo=UTC)):
        clock.now = when
        with open_ledger(home=home, clock=clock) as ledger:
            channels = {"rep_slack": channels_for(ledger, slack, home)["rep_slack"]}
            report = publish_approved(ledger, channels, "live", autonomy=AutonomyGovernor(s))
            assert report.sent == [] and len(report.deferred) == 1
            from agents.ledger.autonomy import waiting_sends

            assert [(w.item_id, w.channel) for w in waiting_sends(ledger.uow)] == [(ny, "rep_slack")]
    assert slack.calls_to("chat.postMessage") == []

    clock.now = dt.datetime(2026, 10, 5, 12, 1, tzinfo=UTC)
    for _ in range(2):  # the first run after the quiet hours sends it; the next finds it sent
        with open_ledger(home=home, clock=clock) as ledger:
            channels = {"rep_slack": channels_for(ledger, slack, home)["rep_slack"]}
            publish_approved(ledger, channels, "live", autonomy=AutonomyGovernor(s))
    assert len(slack.calls_to("chat.postMessage")) == 1
    with open_ledger(home=home, clock=clock) as ledger:
        from agents.ledger.autonomy import waiting_sends

        assert waiting_sends(ledger.uow) == []
        events = [r.action for r in ledger.audit_rows(subject_type="item", subject_id=ny)]
        assert events.count("delivery.deferred") == 1 and events.count("delivery.deferral_released") == 1
        assert ledger.verify_audit().ok


def test_the_reps_preferred_channel_wins_and_a_missing_one_falls_back(ledger, slack, home):
    [item] = add_items(ledger, "today", [("opp-a", "rep-1", "medium", 20_000.0)])
    ledger.record_decision(item, "approve", "mgr-1", "slack")
    s = settings(rules={}, preferences={"default": {"timezone": "UTC", "quiet_hours_off": True},
                                        "teams": {"mgr-1": {"channel": "email"}}})
    report = publish_approved(ledger, channels_for(ledger, slack, home), "live", autonomy=AutonomyGovernor(s))
    # No email channel is configured here: the preference cannot be met, so Slack (the configured one) is used.
    assert {c for _, c, _ in report.sent} == {"rep_slack", "crm_note"}


def test_quiet_hours_default_to_evenings_and_weekends_in_the_recipients_zone():
    from agents.autonomy.preferences import resolve

    prefs = AutonomySettings().preferences
    r = resolve(prefs, "rep-1", "mgr-1")
    assert (r.timezone, r.tone, r.channel) == ("UTC", "formal", None)
    assert r.next_allowed(dt.datetime(2026, 10, 1, 12, 0, tzinfo=UTC)) is None
    assert r.next_allowed(dt.datetime(2026, 10, 1, 18, 0, tzinfo=UTC)) == dt.datetime(2026, 10, 2, 8, 0, tzinfo=UTC)
    assert r.next_allowed(dt.datetime(2026, 10, 2, 18, 0, tzinfo=UTC)) == dt.datetime(2026, 10, 5, 8, 0, tzinfo=UTC)
    tokyo = resolve(prefs, "rep-1", "mgr-1", rep_timezone="Asia/Tokyo")
    assert tokyo.next_allowed(dt.datetime(2026, 10, 1, 12, 0, tzinfo=UTC)) == dt.datetime(2026, 10, 1, 23, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="unknown time zone"):
        AutonomySettings.model_validate({"preferences": {"reps": {"r": {"timezone": "Mars/Olympus"}}}})


def test_the_approval_sensor_requests_one_publish_run_when_a_deferred_send_falls_due(home):
    import dagster as dg

    from agents.ledger.autonomy import defer_send
    from orchestration.assets.review import approval_sensor
    from orchestration.resources import SupervisorSettings

    def tick(cursor):
        context = dg.build_sensor_context(cursor=cursor, resources={"supervisor": SupervisorSettings(home=str(home))})
        return approval_sensor(context), context.cursor

    with open_ledger(home=home) as ledger:
        [item] = add_items(ledger, "fri", [("opp-a", "rep-1", "medium", 20_000.0)])
        far = ledger.uow.now() + dt.timedelta(hours=10)
        defer_send(ledger.uow, item, "rep_slack", far, "quiet hours", actor="test")
    result, cursor = tick(None)
    assert isinstance(result, dg.SkipReason)  # not due yet
    with open_ledger(home=home) as ledger:
        due = ledger.uow.now() - dt.timedelta(minutes=1)
        defer_send(ledger.uow, item, "rep_slack", due, "quiet hours", actor="test")
    first, cursor = tick(cursor)
    again, _ = tick(cursor)
    assert isinstance(first, dg.RunRequest) and first.run_key == f"deferred-{due.isoformat()}"
    assert again.run_key == first.run_key  # the same due time: Dagster runs one run per key


# --------------------------------------------------------------------------- sent on your behalf, recall


def test_an_l5_send_is_in_the_managers_next_digest_and_can_be_recalled(ledger, slack, home, clock):
    from agents.autonomy.recall import RecallRefused, recall_send
    from agents.ledger import NotAuthorised
    from agents.ledger.autonomy import rule_agreement
    from agents.review.posting import post_digest

    history(ledger, "h1", approved=10, dismissed=0)
    clock.advance(minutes=5)
    [manual] = add_items(ledger, "manual", [("opp-d", "rep-2", "high", 5_000.0)], rule="no_decision_maker")
    ledger.record_decision(manual, "approve", "mgr-1", "slack")
    [item] = add_items(ledger, "today", [("opp-a", "rep-1", "medium", 20_000.0)])
    client = WebClient(token=BOT_TOKEN, base_url=slack.base_url)
    report = publish_approved(ledger, channels_for(ledger, slack, home), "live", autonomy=AutonomyGovernor(settings()))
    assert report.autonomous == [item]
    [delivery] = [d for d in ledger.deliveries_for(item) if d.channel == "rep_slack"]

    clock.advance(days=1)
    digest = build_digests([(make_flag("opp-z", "rep-1"), make_draft("opp-z"))], REPS, MANAGERS, AS_OF, 5, run_id="next")[0]
    posted = post_digest(ledger, digest, None, home / "outbox")
    markdown = next(p for p in posted.outbox_paths if p.suffix == ".md").read_text()
    html = next(p for p in posted.outbox_paths if p.suffix == ".html").read_text()
    assert 'id="on-your-behalf"' in html and "except the low-risk nudges sent on your behalf" in html
    from agents.review.blocks import digest_messages

    blocks = digest_messages(digest)[0]["blocks"]
    [section] = [b for b in blocks if b.get("block_id") == "on_your_behalf"]
    assert "Sent on your behalf to Ann Rep" in section["text"]["text"]
    assert "## Sent on your behalf" in markdown and "Sent on your behalf to Ann Rep by Slack DM" in markdown
    assert f"autonomy recall {delivery.delivery_id}" in markdown

    with pytest.raises(NotAuthorised):
        recall_send(ledger, str(delivery.delivery_id), by="mgr-2", slack_client=client)
    [manual_delivery] = [d for d in ledger.deliveries_for(manual) if d.channel == "rep_slack"]
    with pytest.raises(RecallRefused, match="only autonomous sends"):
        recall_send(ledger, str(manual_delivery.delivery_id), by="mgr-1", slack_client=client)
    before = rule_agreement(ledger.uow, RULE, AS_OF, clock().date())
    result = recall_send(ledger, str(delivery.delivery_id), by="mgr-1", slack_client=client, note="wrong deal")
    assert result["deleted"] and [m.ts for m in slack.deleted] == [delivery.external_ref.split(":")[1]]
    assert rule_agreement(ledger.uow, RULE, AS_OF, clock().date()) == (before[0], before[1] + 1)  # counts against the rule
    again = recall_send(ledger, delivery.idempotency_key, by="mgr-1", slack_client=client)
    assert not again["deleted"]  # already gone: recorded once
    assert [r.action for r in ledger.audit_rows(subject_type="delivery", subject_id=delivery.idempotency_key)].count("autonomy.recalled") == 1
    assert ledger.verify_audit().ok


def test_cli_autonomy_status_and_spend(tmp_path, monkeypatch):
    import json as _json

    import yaml
    from typer.testing import CliRunner

    from sales_supervisor.cli import app

    data = yaml.safe_load(open(load_policy().source).read())
    data["autonomy"] = {"rules": {RULE: {"level": 5, "low_risk": True}, "close_date_slipped": {"level": 2}}}
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("COLUMNS", "250")
    runner = CliRunner()
    out = runner.invoke(app, ["autonomy", "status", "--policy", str(policy), "--home", str(tmp_path / "h")], terminal_width=200)
    assert out.exit_code == 0, out.output
    assert "stalled_in_stage" in out.output and "L4 publish after approval" in out.output
    assert "0 manager decision(s) in the window" in out.output and "L2 recommend" in out.output
    out = runner.invoke(app, ["autonomy", "spend", "--json", "--home", str(tmp_path / "h")])
    assert out.exit_code == 0, out.output
    assert _json.loads(out.output)["spend_daily_cap_usd"] == 10.0


def test_l1_flags_are_held_back_and_counted_and_l2_flags_say_nothing_will_be_sent(ledger):
    import yaml

    from agents.review.run import prepare_digests

    data = yaml.safe_load(open(load_policy().source).read())
    data["autonomy"] = {"rules": {RULE: {"level": 1}, "no_decision_maker": {"level": 2}}}
    policy = RiskPolicy.from_dict(data)
    pairs = [(make_flag("opp-a", "rep-1"), make_draft("opp-a")),
             (make_flag("opp-b", "rep-1", rule="no_decision_maker"), make_draft("opp-b"))]
    inputs = {"pairs": pairs, "reps": REPS, "managers": MANAGERS, "deal_names": {}, "saved_query_names": {}}
    [digest] = [d for d in prepare_digests(ledger, inputs, policy, AS_OF, 5) if d.manager_id == "mgr-1"]
    assert [e.flag.opportunity_id for e in digest.entries] == ["opp-b"]
    assert "L2 recommend: nothing is sent" in digest.entries[0].note
    assert "1 at autonomy level L1 (answered when asked)" in digest.held_back_summary
    assert [h.opportunity_id for h in digest.held_back] == ["opp-a"]


def test_the_readme_autonomy_example_is_a_valid_policy_section():
    from pathlib import Path

    import yaml

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme[readme.index("```yaml\nautonomy:") + len("```yaml\n"):]
    block = block[: block.index("```")]
    data = yaml.safe_load(open(load_policy().source).read())
    data.update(yaml.safe_load(block))
    policy = RiskPolicy.from_dict(data)  # the whole policy with the section: unknown keys are refused
    assert policy.spec.autonomy.l5_rules() == ["no_recent_activity"]


def test_cli_recall_as_the_manager_deletes_the_dm_and_others_are_refused(tmp_path, slack, monkeypatch):
    import getpass

    from typer.testing import CliRunner

    from sales_supervisor.cli import app

    home = tmp_path / "var"
    with open_ledger(home=home) as ledger:  # the real clock, as the CLI has
        ledger.record_eval("template", {"pass_rate": 0.95}, actor="test")
        history(ledger, "h1", approved=10, dismissed=0)
        AutonomyGovernor(settings()).start(ledger)
        [item] = add_items(ledger, "today", [("opp-a", "rep-1", "medium", 20_000.0)])
        report = publish_approved(ledger, channels_for(ledger, slack, home), "live", autonomy=AutonomyGovernor(settings()))
        assert report.autonomous == [item]
        [delivery] = [d for d in ledger.deliveries_for(item) if d.channel == "rep_slack"]
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_API_BASE_URL", slack.base_url)
    monkeypatch.setenv("COLUMNS", "250")
    runner = CliRunner()
    (home / "identities.yaml").write_text(f"users:\n  {getpass.getuser()}: mgr-2\n")
    out = runner.invoke(app, ["autonomy", "recall", str(delivery.delivery_id), "--home", str(home)])
    assert out.exit_code == 4 and "may not recall" in out.output and slack.deleted == []
    (home / "identities.yaml").write_text(f"users:\n  {getpass.getuser()}: mgr-1\n")
    out = runner.invoke(app, ["autonomy", "recall", str(delivery.delivery_id), "--home", str(home), "--note", "wrong deal"])
    assert out.exit_code == 0, out.output
    assert "deleted from the rep's Slack DM" in out.output and len(slack.deleted) == 1
    out = runner.invoke(app, ["autonomy", "sent", "--home", str(home)])
    assert out.exit_code == 0 and "by mgr-1" in out.output
