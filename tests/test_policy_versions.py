"""The policy version store: propose (validated), apply, roll back, diff; audited; what a run reads."""

from __future__ import annotations

import sqlite3

import pytest

from agents.ledger import open_ledger
from agents.risk.policy import DEFAULT_POLICY_PATH, PolicyError
from agents.risk.versions import (
    PolicyVersionError,
    PolicyVersionStore,
    UnknownPolicyVersion,
    effective_policy,
)

DEFAULT_TEXT = DEFAULT_POLICY_PATH.read_text()


def _variant(multiplier: str = "3.0", version: str = "2026.12.1") -> str:
    text = DEFAULT_TEXT.replace('version: "2026.10.1"', f'version: "{version}"', 1)
    # the base stalled_in_stage multiplier (the first `multiplier: 2.0` in the file)
    return text.replace("multiplier: 2.0", f"multiplier: {multiplier}", 1)


@pytest.fixture
def ledger(tmp_path):
    with open_ledger(home=tmp_path) as led:
        yield led


def test_propose_validates_and_stores_without_applying(ledger):
    store = PolicyVersionStore(ledger)
    v = store.propose(_variant(), "ops-1", "stalled deals run long this quarter", evidence={"dismissals": 7})
    assert (v.status, v.author, v.policy_version, v.evidence) == ("proposed", "ops-1", "2026.12.1", {"dismissals": 7})
    assert len(v.digest) == 64
    assert store.current() is None  # nothing applied: the shipped default is in force
    assert effective_policy(ledger=ledger).version == "2026.10.1"
    assert [x.version_id for x in store.list()] == [v.version_id]


def test_invalid_yaml_or_policy_is_refused_with_the_policy_error_and_audited(ledger):
    store = PolicyVersionStore(ledger)
    bad = DEFAULT_TEXT.replace("multiplier: 2.0", "multiplier: -1", 1)
    with pytest.raises(PolicyError, match="stalled_in_stage.*multiplier"):
        store.propose(bad, "ops-1", "typo")
    with pytest.raises(PolicyError, match="not valid YAML"):
        store.propose("rules: [unclosed", "ops-1", "typo")
    assert store.list() == []
    actions = [r.action for r in ledger.audit_rows()]
    assert actions == ["policy.proposal_refused", "policy.proposal_refused"]


def test_apply_then_rollback_one_step_and_to_the_default(ledger):
    store = PolicyVersionStore(ledger)
    v1 = store.propose(_variant("3.0", "p1"), "ops-1", "first")
    v2 = store.propose(_variant("4.0", "p2"), "ops-1", "second")
    store.apply(v1.version_id, "lead-1")
    assert effective_policy(ledger=ledger).version == "p1"
    store.apply(v2.version_id, "lead-1")
    assert store.get(v1.version_id).status == "superseded"
    assert store.current().version_id == v2.version_id
    assert effective_policy(ledger=ledger).resolve("stalled_in_stage").params.multiplier == 4.0

    back = store.rollback(actor="lead-1")  # one step: to what v2 replaced
    assert back.version_id == v1.version_id and back.status == "applied"
    assert store.get(v2.version_id).status == "rolled back"
    assert effective_policy(ledger=ledger).version == "p1"

    assert store.rollback(actor="lead-1") is None  # v1 replaced nothing: the shipped default again
    assert store.current() is None
    assert effective_policy(ledger=ledger).version == "2026.10.1"
    with pytest.raises(PolicyVersionError, match="already in force"):
        store.rollback(actor="lead-1")

    store.rollback(v2.version_id, actor="lead-1")  # any earlier applied version, by id
    assert store.current().version_id == v2.version_id
    actions = [r.action for r in ledger.audit_rows()]
    assert actions == ["policy.proposed", "policy.proposed", "policy.applied", "policy.applied",
                       "policy.rolled_back", "policy.rolled_back", "policy.rolled_back"]
    assert ledger.verify_audit().ok


def test_refusals(ledger):
    store = PolicyVersionStore(ledger)
    v1 = store.propose(_variant(), "ops-1", "first")
    with pytest.raises(UnknownPolicyVersion, match="no policy version 99"):
        store.apply(99, "lead-1")
    with pytest.raises(PolicyVersionError, match="never applied"):
        store.rollback(v1.version_id, actor="lead-1")
    store.apply(v1.version_id, "lead-1")
    with pytest.raises(PolicyVersionError, match="is applied, not proposed"):
        store.apply(v1.version_id, "lead-1")
    with pytest.raises(ValueError, match="reason"):
        store.propose(_variant(), "ops-1", " ")
    v2 = store.propose(_variant("5.0"), "ops-1", "too aggressive")
    store.reject(v2.version_id, "lead-1", "no evidence")
    with pytest.raises(PolicyVersionError, match="rejected, not proposed"):
        store.apply(v2.version_id, "lead-1")


def test_one_applied_version_is_enforced_by_the_database(ledger, tmp_path):
    store = PolicyVersionStore(ledger)
    v1 = store.propose(_variant(), "ops-1", "first")
    v2 = store.propose(_variant("4.0"), "ops-1", "second")
    store.apply(v1.version_id, "lead-1")
    con = sqlite3.connect(tmp_path / "ledger.sqlite")
    with pytest.raises(sqlite3.IntegrityError):
        con.execute("update policy_versions set status = 'applied' where version_id = ?", (v2.version_id,))


def test_diff_is_unified_and_per_rule(ledger):
    store = PolicyVersionStore(ledger)
    v1 = store.propose(_variant("3.0", "p1"), "ops-1", "first")
    text = store.diff("default", v1.version_id)
    assert "--- default_policy.yaml" in text and f"+++ policy version {v1.version_id}" in text
    assert "-      multiplier: 2.0" in text and "+      multiplier: 3.0" in text
    assert "stalled_in_stage: params.multiplier 2.0 -> 3.0" in text
    changes = store.threshold_changes(None, v1.version_id)
    assert [(c.rule_id, c.setting, c.before, c.after) for c in changes if c.rule_id != "(policy)"] == [
        ("stalled_in_stage", "params.multiplier", 2.0, 3.0)
    ]
    assert "(no difference" in store.diff(None, None)


def test_effective_policy_explicit_file_wins(ledger, tmp_path):
    store = PolicyVersionStore(ledger)
    store.apply(store.propose(_variant("3.0", "p1"), "ops-1", "first").version_id, "lead-1")
    explicit = tmp_path / "mine.yaml"
    explicit.write_text(_variant("9.0", "explicit"))
    assert effective_policy(explicit, ledger=ledger).version == "explicit"
    assert effective_policy(home=tmp_path).version == "p1"  # read from the ledger file under home
    assert effective_policy(home=tmp_path / "nowhere").version == "2026.10.1"  # no ledger: nothing is created
    assert not (tmp_path / "nowhere").exists()


def test_cli_propose_apply_list_rollback(tmp_path):
    import getpass

    from typer.testing import CliRunner

    from sales_supervisor.cli import app

    runner = CliRunner()
    home = tmp_path / "home"
    home.mkdir()
    (home / "identities.yaml").write_text(f"users:\n  {getpass.getuser()}: ops-1\n")
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(_variant("3.0", "2026.12.1"))
    h = ["--home", str(home)]

    proposed = runner.invoke(app, ["policy", "propose", "--file", str(candidate), "--reason", "long reviews", *h])
    assert proposed.exit_code == 0, proposed.output
    assert "Proposed version 1" in proposed.output and "stalled_in_stage: params.multiplier 2.0 -> 3.0" in proposed.output
    assert "shipped default" in runner.invoke(app, ["policy", "list", *h]).output

    applied = runner.invoke(app, ["policy", "apply", "1", *h])
    assert applied.exit_code == 0, applied.output
    assert "Applied version 1" in applied.output and "ops-1" in applied.output
    listed = runner.invoke(app, ["policy", "list", *h]).output
    assert "In force for runs: version 1" in listed and "applied by ops-1" in listed

    back = runner.invoke(app, ["policy", "rollback", *h])
    assert back.exit_code == 0 and "Rolled back to the shipped default" in back.output

    bad = tmp_path / "bad.yaml"
    bad.write_text(DEFAULT_TEXT.replace("days: 14", "days: 0", 1))
    refused = runner.invoke(app, ["policy", "propose", "--file", str(bad), "--reason", "typo", *h])
    assert refused.exit_code == 2 and "no_recent_activity" in refused.output
    same = tmp_path / "same.yaml"
    same.write_text(DEFAULT_TEXT.replace("multiplier: 2.0", "multiplier: 2.2", 1))
    noted = runner.invoke(app, ["policy", "propose", "--file", str(same), "--reason", "no bump", *h])
    assert noted.exit_code == 0 and "bump it" in noted.output
    assert "reason is required" in runner.invoke(app, ["policy", "propose", "--file", str(candidate), *h]).output
