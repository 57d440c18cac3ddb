"""The policy version store: every risk-policy change is a validated, audited version in the ledger.

A person (or ``sales-supervisor policy propose``) proposes a YAML text; it is
validated exactly like a policy file (:func:`agents.risk.policy.RiskPolicy.from_dict`)
and stored as *proposed*. Nothing changes until someone applies it; applying is
audited and one step to roll back. The store lives in the review ledger (table
``policy_versions``, migration 0004), each change in the same transaction as its
audit row (``policy.proposed``, ``policy.proposal_refused``, ``policy.applied``,
``policy.rolled_back``, ``policy.rejected``).

API (stable; the CLI and the web console both call it)::

    store = PolicyVersionStore(ledger)          # a Ledger (or its UnitOfWork)
    store.list() -> list[PolicyVersion]         # newest first: id, created, author, reason, status, digest, ...
    store.get(version_id) -> PolicyVersion      # UnknownPolicyVersion if there is none
    store.current() -> PolicyVersion | None     # the applied version (None: the shipped default is in force)
    store.current_policy() -> RiskPolicy | None # the applied version, loaded
    store.propose(yaml_text, author, reason, evidence=None) -> PolicyVersion
                                                # invalid YAML/policy: PolicyError (its message), refusal audited
    store.apply(version_id, actor) -> PolicyVersion          # a proposed version becomes the applied one
    store.rollback(to_version_id=None, actor=...) -> PolicyVersion | None
                                                # back to an earlier applied version; None = one step back
                                                # (to the version the current one replaced, or the shipped default)
    store.reject(version_id, actor, reason) -> PolicyVersion # a proposal nobody will apply
    store.diff(a, b) -> str                     # unified diff of the YAML + a per-rule threshold diff
    store.threshold_changes(a, b) -> list[ThresholdChange]
                                                # a / b: a version id, or None / "default" for the shipped file

Statuses: ``proposed`` -> ``applied`` -> ``superseded`` (another version was
applied) or ``rolled back`` (a rollback moved away from it); ``rejected``. At
most one version is ``applied`` (a unique partial index in the database).

Which policy a run reads (:func:`effective_policy`): an explicit policy file
(``--policy`` or ``SALES_SUPERVISOR_RISK_POLICY``) wins; otherwise the applied
version in the ledger; otherwise the shipped ``default_policy.yaml``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from agents.ledger.learning_models import PolicyVersionRow
from agents.ledger.unit_of_work import UnitOfWork, jsonable
from agents.risk.policy import DEFAULT_POLICY_PATH, PolicyError, RiskPolicy, load_policy

__all__ = [
    "PolicyVersion",
    "PolicyVersionError",
    "PolicyVersionStore",
    "ThresholdChange",
    "UnknownPolicyVersion",
    "effective_policy",
    "policy_from_text",
]

DEFAULT = "default"


class PolicyVersionError(ValueError):
    """A version cannot be applied, rolled back or rejected in its current state (the message says why)."""


class UnknownPolicyVersion(PolicyVersionError):
    pass


@dataclasses.dataclass(frozen=True)
class PolicyVersion:
    version_id: int
    created_at: dt.datetime
    author: str
    reason: str
    status: str
    digest: str
    policy_version: str  # the YAML's own `version:`, which every flag records
    yaml_text: str
    evidence: Any | None
    based_on: int | None
    applied_at: dt.datetime | None
    applied_by: str | None
    replaced: int | None

    @classmethod
    def _of(cls, row: PolicyVersionRow) -> PolicyVersion:
        return cls(**{f.name: getattr(row, f.name) for f in dataclasses.fields(cls)})

    def load(self) -> RiskPolicy:
        return policy_from_text(self.yaml_text, source=f"policy version {self.version_id}")


@dataclasses.dataclass(frozen=True)
class ThresholdChange:
    rule_id: str  # or "(policy)" for settings outside the rules
    setting: str  # e.g. "params.multiplier", "enabled", "severity", "excluded for tag Strategic"
    before: Any
    after: Any

    def __str__(self) -> str:
        return f"{self.rule_id}: {self.setting} {_fmt(self.before)} -> {_fmt(self.after)}"


def _fmt(value: Any) -> str:
    return "(unset)" if value is None else str(value)


def policy_from_text(yaml_text: str, *, source: str = "<policy>") -> RiskPolicy:
    """Parse and validate a policy YAML text (PolicyError with the file/rule/field message if invalid)."""
    try:
        data = yaml.safe_load(yaml_text)
    except yaml.YAMLError as exc:
        raise PolicyError(source, None, None, f"not valid YAML: {exc}") from None
    policy = RiskPolicy.from_dict(data if data is not None else {}, source=source)
    policy.digest = hashlib.sha256(yaml_text.encode()).hexdigest()
    return policy


def _uow(ledger_or_uow: Any) -> UnitOfWork:
    return ledger_or_uow if isinstance(ledger_or_uow, UnitOfWork) else ledger_or_uow.uow


class PolicyVersionStore:
    def __init__(self, ledger: Any) -> None:
        self.uow = _uow(ledger)

    # -- reads

    def list(self) -> list[PolicyVersion]:
        with self.uow.read() as s:
            rows = s.scalars(select(PolicyVersionRow).order_by(PolicyVersionRow.version_id.desc()))
            return [PolicyVersion._of(r) for r in rows]

    def get(self, version_id: int) -> PolicyVersion:
        with self.uow.read() as s:
            row = s.get(PolicyVersionRow, int(version_id))
            if row is None:
                raise UnknownPolicyVersion(f"no policy version {version_id}; `sales-supervisor policy list` shows them")
            return PolicyVersion._of(row)

    def current(self) -> PolicyVersion | None:
        with self.uow.read() as s:
            row = s.scalars(select(PolicyVersionRow).where(PolicyVersionRow.status == "applied")).first()
            return PolicyVersion._of(row) if row is not None else None

    def current_policy(self) -> RiskPolicy | None:
        cur = self.current()
        return cur.load() if cur is not None else None

    # -- writes

    def propose(
        self, yaml_text: str, author: str, reason: str, evidence: Mapping[str, Any] | None = None
    ) -> PolicyVersion:
        """Validate and store a candidate version (status ``proposed``); nothing is applied."""
        if not (author or "").strip():
            raise ValueError("a proposal needs an author")
        if not (reason or "").strip():
            raise ValueError("a proposal needs a reason (it is audited)")
        digest = hashlib.sha256(yaml_text.encode()).hexdigest()
        try:
            policy = policy_from_text(yaml_text, source="proposed policy")
        except PolicyError as exc:
            with self.uow.write() as s:
                self.uow.audit(
                    s, actor=author, action="policy.proposal_refused", subject_type="policy_version", subject_id=digest[:16],
                    payload={"reason": reason, "error": str(exc), "digest": digest},
                )
            raise
        cur = self.current()
        with self.uow.write() as s:
            row = PolicyVersionRow(
                created_at=self.uow.now(), author=author, reason=reason, yaml_text=yaml_text, digest=digest,
                policy_version=policy.version, status="proposed",
                evidence=jsonable(dict(evidence)) if evidence is not None else None,
                based_on=cur.version_id if cur else None,
            )
            s.add(row)
            s.flush()
            self.uow.audit(
                s, actor=author, action="policy.proposed", subject_type="policy_version", subject_id=str(row.version_id),
                payload={
                    "reason": reason, "digest": digest, "policy_version": policy.version,
                    "based_on": row.based_on, "has_evidence": evidence is not None,
                    "changes": [str(c) for c in self._changes(cur.yaml_text if cur else None, yaml_text)],
                },
            )
            return PolicyVersion._of(row)

    def apply(self, version_id: int, actor: str) -> PolicyVersion:
        """Make a proposed version the applied one (the previous applied version becomes ``superseded``)."""
        if not (actor or "").strip():
            raise ValueError("applying a policy needs the actor's id")
        target = self.get(version_id)
        if target.status != "proposed":
            hint = f" (to return to it: `sales-supervisor policy rollback {version_id}`)" if target.status in (
                "superseded", "rolled back") else ""
            raise PolicyVersionError(f"policy version {version_id} is {target.status}, not proposed{hint}")
        target.load()  # the code may have moved on since it was proposed: validate again
        return self._switch(target.version_id, actor, action="policy.applied", old_status="superseded")

    def rollback(self, to_version_id: int | None = None, *, actor: str) -> PolicyVersion | None:
        """Return to an earlier applied version (None: the one the current version replaced, or the shipped default).

        Returns the version now applied, or None when the shipped default is back in force.
        """
        if not (actor or "").strip():
            raise ValueError("a rollback needs the actor's id")
        cur = self.current()
        if to_version_id is None:
            if cur is None:
                raise PolicyVersionError("no policy version is applied: the shipped default is already in force")
            to_version_id = cur.replaced
            if to_version_id is None:
                return self._to_default(cur, actor)
        target = self.get(to_version_id)
        if cur is not None and target.version_id == cur.version_id:
            raise PolicyVersionError(f"policy version {to_version_id} is already applied")
        if target.applied_at is None:
            raise PolicyVersionError(
                f"policy version {to_version_id} was never applied; apply it with `policy apply {to_version_id}`"
            )
        target.load()
        return self._switch(target.version_id, actor, action="policy.rolled_back", old_status="rolled back")

    def reject(self, version_id: int, actor: str, reason: str) -> PolicyVersion:
        target = self.get(version_id)
        if target.status != "proposed":
            raise PolicyVersionError(f"policy version {version_id} is {target.status}; only a proposal can be rejected")
        with self.uow.write() as s:
            row = s.get(PolicyVersionRow, target.version_id)
            row.status = "rejected"
            s.flush()
            self.uow.audit(
                s, actor=actor, action="policy.rejected", subject_type="policy_version", subject_id=str(version_id),
                payload={"reason": reason},
            )
            return PolicyVersion._of(row)

    def _to_default(self, cur: PolicyVersion, actor: str) -> None:
        with self.uow.write() as s:
            row = s.get(PolicyVersionRow, cur.version_id)
            row.status = "rolled back"
            s.flush()
            self.uow.audit(
                s, actor=actor, action="policy.rolled_back", subject_type="policy_version", subject_id=DEFAULT,
                payload={"from": cur.version_id, "to": DEFAULT,
                         "changes": [str(c) for c in self._changes(cur.yaml_text, None)]},
            )
        return None

    def _switch(self, version_id: int, actor: str, *, action: str, old_status: str) -> PolicyVersion:
        with self.uow.write() as s:
            old = s.scalars(select(PolicyVersionRow).where(PolicyVersionRow.status == "applied")).first()
            old_id = old.version_id if old is not None else None
            old_text = old.yaml_text if old is not None else None
            if old is not None:
                old.status = old_status
                s.flush()  # the unique index admits one applied row: release it first
            row = s.get(PolicyVersionRow, version_id)
            row.status = "applied"
            row.applied_at = self.uow.now()
            row.applied_by = actor
            if action == "policy.applied":
                # A rollback keeps the target's own history, so repeated one-step rollbacks walk back in time.
                row.replaced = old_id
            s.flush()
            self.uow.audit(
                s, actor=actor, action=action, subject_type="policy_version", subject_id=str(version_id),
                payload={
                    "from": old_id if old_id is not None else DEFAULT, "to": version_id, "digest": row.digest,
                    "policy_version": row.policy_version,
                    "changes": [str(c) for c in self._changes(old_text, row.yaml_text)],
                },
            )
            return PolicyVersion._of(row)

    # -- diffs

    def _text(self, ref: int | str | None) -> tuple[str, str]:
        if ref is None or ref == DEFAULT:
            return DEFAULT_POLICY_PATH.read_text(), "default_policy.yaml"
        v = self.get(int(ref))
        return v.yaml_text, f"policy version {v.version_id}"

    def diff(self, a: int | str | None, b: int | str | None) -> str:
        """A unified diff of the two YAML texts, then the per-rule threshold changes (a -> b)."""
        (ta, na), (tb, nb) = self._text(a), self._text(b)
        lines = list(difflib.unified_diff(ta.splitlines(), tb.splitlines(), na, nb, lineterm=""))
        changes = self._changes(ta, tb)
        out = ["\n".join(lines) if lines else f"(no difference between {na} and {nb})", "", "Per-rule changes:"]
        out += [f"  {c}" for c in changes] or ["  (none)"]
        return "\n".join(out)

    def threshold_changes(self, a: int | str | None, b: int | str | None) -> list[ThresholdChange]:
        return self._changes(self._text(a)[0], self._text(b)[0])

    @staticmethod
    def _changes(text_a: str | None, text_b: str | None) -> list[ThresholdChange]:
        pa = policy_from_text(text_a) if text_a is not None else load_policy(None)
        pb = policy_from_text(text_b) if text_b is not None else load_policy(None)
        return threshold_changes(pa, pb)


def _rule_settings(policy: RiskPolicy, rule_id: str) -> dict[str, Any]:
    if rule_id not in policy.all_rule_configs():
        return {}
    cfg = policy.all_rule_configs()[rule_id]
    resolved = policy.resolve(rule_id)
    out: dict[str, Any] = {"enabled": resolved.enabled, "severity": resolved.severity}
    for k, v in resolved.params.model_dump().items():
        out[f"params.{k}"] = v
    for ov in cfg.overrides:
        scope = "/".join(x for x in (ov.segment, ov.stage) if x)
        for k, v in ov.params.items():
            out[f"override {scope} params.{k}"] = v
        if ov.enabled is not None:
            out[f"override {scope} enabled"] = ov.enabled
        if ov.severity is not None:
            out[f"override {scope} severity"] = ov.severity
    for ex in policy.spec.exclusions:
        if "*" in ex.rules or rule_id in ex.rules:
            out[f"excluded for tag {ex.tag}"] = True
    informational = getattr(policy.demotion, "rules", ())
    if rule_id in informational:
        out["informational"] = True
    return out


def threshold_changes(a: RiskPolicy, b: RiskPolicy) -> list[ThresholdChange]:
    """Per-rule settings (effective base params, enabled, severity, overrides, exclusions) that differ a -> b."""
    out: list[ThresholdChange] = []
    rules = list(dict.fromkeys([*a.rule_ids, *b.rule_ids]))
    for rule_id in rules:
        sa, sb = _rule_settings(a, rule_id), _rule_settings(b, rule_id)
        if not sa or not sb:
            out.append(ThresholdChange(rule_id, "rule", "present" if sa else None, "present" if sb else None))
            continue
        for key in dict.fromkeys([*sa, *sb]):
            if sa.get(key) != sb.get(key):
                out.append(ThresholdChange(rule_id, key, sa.get(key), sb.get(key)))
    for key in ("version", "fatigue", "decisions", "demotion", "baselines"):
        va, vb = getattr(a.spec, key), getattr(b.spec, key)
        if va != vb:
            out.append(ThresholdChange("(policy)", key, va if key == "version" else va.model_dump(),
                                       vb if key == "version" else vb.model_dump()))
    return out


def effective_policy(
    explicit: str | Path | None = None, *, ledger: Any | None = None, ledger_url: str | None = None,
    home: str | Path | None = None,
) -> RiskPolicy:
    """The policy a run reads: an explicit file wins, then the ledger's applied version, then the shipped default.

    Pass an open ``ledger`` or where to find it (``ledger_url`` / ``home``). A
    ledger that does not exist yet is not created here: the default applies.
    """
    if explicit is not None:
        return load_policy(explicit)
    if ledger is not None:
        cur = PolicyVersionStore(ledger).current()
        return cur.load() if cur is not None else load_policy(None)
    if ledger_url is None and home is not None:
        from agents.ledger.unit_of_work import LEDGER_FILENAME

        if not (Path(home).expanduser() / LEDGER_FILENAME).exists():
            return load_policy(None)
    if ledger_url is None and home is None:
        return load_policy(None)
    from agents.ledger import open_ledger

    with open_ledger(ledger_url, home=home) as opened:
        cur = PolicyVersionStore(opened).current()
        return cur.load() if cur is not None else load_policy(None)
