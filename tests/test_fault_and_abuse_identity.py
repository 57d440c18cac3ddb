"""Fault-and-abuse (issue 11 item 6): who decided is who really decided.

The CLI establishes its operator from an identities file (OS user or a
per-user token), ``--as`` works only for yourself or as that manager's
delegate, and the audit trail records both. Snooze rules live in the ledger,
so the Slack app's snooze button gets the same refusals as the CLI.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json

import pytest
from typer.testing import CliRunner

from agents.ledger import NotAuthorised, SnoozeRefused, open_ledger
from agents.ledger.identity import Identities, UnknownOperator, token_digest
from agents.review.blocks import ACTION_SNOOZE
from sales_supervisor.cli import app
from tests.test_review_fixtures import AS_OF
from tests.test_review_slack import _block_action, _dispatch, app as slack_app, client, digests, ledger, posted, slack  # noqa: F401

runner = CliRunner()
ME = getpass.getuser()


@pytest.fixture
def home(tmp_path):
    with open_ledger(home=tmp_path) as ledger:
        digest = ledger.create_digest("run-1", "mgr-0001", dt.date(2026, 10, 1))
        item = ledger.add_item(
            digest.digest_id, flag_id="flag_1", rule_id="stalled_in_stage", severity="high",
            draft={"action": "Book the call by 2026-10-05."}, evidence={}, opportunity_id="opp-000001", rep_id="rep-0001",
        )
    (tmp_path / "delegates.yaml").write_text("mgr-0001: [dlg-0007]\n")
    return tmp_path, item.item_id


def _identities(home, **users):
    (home / "identities.yaml").write_text("users:\n" + "".join(f"  {k}: {v}\n" for k, v in users.items()))


def _cli(home, *args, env=None):
    base = {"SALES_SUPERVISOR_DELEGATES_FILE": str(home / "delegates.yaml"), "SALES_SUPERVISOR_TOKEN": ""}
    return runner.invoke(app, [*args, "--home", str(home)], env={**base, **(env or {})})


def _decision_audit(home, item_id):
    with open_ledger(home=home) as ledger:
        rows = [r for r in ledger.audit_rows(subject_type="item", subject_id=item_id) if r.action.startswith("decision.")]
    return [(r.action, r.actor, json.loads(r.payload)) for r in rows]


def test_without_an_identities_file_the_cli_does_not_decide(home):
    home, item_id = home
    result = _cli(home, "review", "approve", item_id, "--as", "mgr-0001")
    assert result.exit_code == 3 and "no identities file" in result.output
    with open_ledger(home=home) as ledger:
        assert ledger.get_decision(item_id) is None


def test_as_someone_else_is_refused_and_audited(home):
    home, item_id = home
    _identities(home, **{ME: "mgr-0002"})
    result = _cli(home, "review", "approve", item_id, "--as", "mgr-0001")
    assert result.exit_code == 3 and "mgr-0002 may not act as mgr-0001" in result.output
    [(action, actor, payload)] = _decision_audit(home, item_id)
    assert (action, actor, payload["refusal"], payload["operator"]) == ("decision.refused", "mgr-0002", "operator_may_not_act_as", "mgr-0002")


def test_a_delegate_may_act_as_the_manager_and_both_are_recorded(home):
    home, item_id = home
    _identities(home, **{ME: "dlg-0007"})
    result = _cli(home, "review", "approve", item_id, "--as", "mgr-0001")
    assert result.exit_code == 0, result.output
    assert "by mgr-0001 (operator dlg-0007)" in result.output
    [(action, actor, payload)] = _decision_audit(home, item_id)
    assert (action, payload["approver_id"], payload["operator"]) == ("decision.recorded", "mgr-0001", "dlg-0007")


def test_without_as_you_act_as_yourself(home):
    home, item_id = home
    _identities(home, **{ME: "mgr-0001"})
    assert _cli(home, "review", "dismiss", item_id).exit_code == 0
    [(_, _, payload)] = _decision_audit(home, item_id)
    assert (payload["approver_id"], payload["operator"]) == ("mgr-0001", "mgr-0001")


def test_a_token_names_the_operator_and_an_unknown_token_is_refused(home):
    home, item_id = home
    (home / "identities.yaml").write_text(
        f"users:\n  {ME}: mgr-0002\ntokens:\n  \"{token_digest('s3cret-maria')}\": mgr-0001\n"
    )
    bad = _cli(home, "review", "approve", item_id, env={"SALES_SUPERVISOR_TOKEN": "guessed"})
    assert bad.exit_code == 3 and "matches no entry" in bad.output  # no fallback to the OS user
    ok = _cli(home, "review", "approve", item_id, env={"SALES_SUPERVISOR_TOKEN": "s3cret-maria"})
    assert ok.exit_code == 0, ok.output
    assert "s3cret" not in (home / "identities.yaml").read_text()


def test_identities_file_is_validated(tmp_path):
    (tmp_path / "ids.yaml").write_text("tokens:\n  plaintext-token: mgr-1\n")
    with pytest.raises(ValueError, match="sha256"):
        Identities.load(tmp_path / "ids.yaml")
    with pytest.raises(UnknownOperator, match="not in"):
        Identities(users={"alice": "mgr-1"}, source="x").operator(os_user="mallory")


def test_snooze_rules_live_in_the_ledger(tmp_path):
    """No CLI here: the domain call itself refuses (and audits) what the CLI used to check."""
    with open_ledger(home=tmp_path, delegates={"mgr-1": ["dlg-1"]}) as ledger:
        digest = ledger.create_digest("run-1", "mgr-1", AS_OF)
        ledger.add_item(digest.digest_id, flag_id="f", rule_id="r", severity="high", draft={}, evidence={}, opportunity_id="opp-1")
        until = AS_OF + dt.timedelta(days=7)
        with pytest.raises(NotAuthorised):
            ledger.snooze("opp-1", until, by="mgr-2", reason="mine now")
        with pytest.raises(NotAuthorised, match="may not act as"):
            ledger.snooze("opp-1", until, by="mgr-1", reason="x", operator="mgr-2")
        with pytest.raises(SnoozeRefused, match="never been flagged"):
            ledger.snooze("opp-9", until, by="mgr-1", reason="x")
        with pytest.raises(SnoozeRefused, match="needs a reason"):
            ledger.snooze("opp-1", until, by="mgr-1", reason=" ")
        with pytest.raises(SnoozeRefused, match="not after the flag's date"):
            ledger.snooze("opp-1", AS_OF, by="mgr-1", reason="x")
        snooze = ledger.snooze("opp-1", until, by="mgr-1", reason="on holiday", operator="dlg-1")
        refusals = [json.loads(r.payload)["refusal"] for r in ledger.audit_rows(subject_type="opportunity") if r.action == "snooze.refused"]
        assert refusals == ["not_authorised", "operator_may_not_act_as", "unknown_deal", "no_reason", "ends_before_flag"]
        assert (snooze.by, snooze.until) == ("mgr-1", until)


def test_slack_snooze_button_snoozes_for_the_manager_and_refuses_anyone_else(slack_app, ledger, slack, posted):  # noqa: F811
    item_id = posted.item_ids[0]
    item = ledger.get_item(item_id)
    assert _dispatch(slack_app, _block_action(slack, item_id, ACTION_SNOOZE, "UMGR2")).status == 200
    [eph] = slack.wait_for("chat.postEphemeral")
    assert "not authorised to snooze" in eph.params["text"]
    assert ledger.active_snoozes(AS_OF) == []
    refused = [r for r in ledger.audit_rows(subject_type="opportunity", subject_id=item.opportunity_id) if r.action == "snooze.refused"]
    assert len(refused) == 1 and json.loads(refused[0].payload)["channel"] == "slack"

    assert _dispatch(slack_app, _block_action(slack, item_id, ACTION_SNOOZE, "UMGR1")).status == 200
    slack.wait_for("chat.postEphemeral", count=2)  # bolt acks first and handles the action after
    [snooze] = ledger.active_snoozes(AS_OF)
    assert (snooze.opportunity_id, snooze.rule_id, snooze.by, snooze.until) == (
        item.opportunity_id, item.rule_id, "mgr-1", AS_OF + dt.timedelta(days=14),
    )
