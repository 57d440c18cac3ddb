"""The review ledger: what was put in front of a manager, what they decided, what went out.

A transactional store separate from the DuckDB warehouse (SQLite under the
state folder by default, Postgres by URL), so the Slack app can record
decisions while a pipeline run holds the warehouse.

The code is split by concern, each module a set of functions over one
``UnitOfWork`` (``unit_of_work.py``) that writes each change and its audit row
in the same transaction:

- ``digests.py``    digests and items
- ``decisions.py``  decisions and authorization (manager or allow-listed delegate)
- ``deliveries.py`` deliveries (claims, idempotency keys, per-channel semantics)
- ``modes.py``      shadow/live mode, gates and the kill switch
- ``snoozes.py``    snoozes
- ``kpis.py``       KPI read models over decisions
- ``trail.py``      the audit trail itself (events, head, rows, verify)

``Ledger`` is the facade every caller uses; each method is one call into those
modules, so the CLI, the Slack app and the Dagster assets get the same rules.

A refused attempt (wrong approver, second decision, send while halted)
writes an audit row of the refusal in a transaction of its own, so it
persists even though the caller gets an exception.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine

from agents.ledger import decisions as _decisions
from agents.ledger import deliveries as _deliveries
from agents.ledger import digests as _digests
from agents.ledger import kpis as _kpis
from agents.ledger import modes as _modes
from agents.ledger import snoozes as _snoozes
from agents.ledger import trail as _trail
from agents.ledger import verdicts as _verdicts
from agents.ledger.audit import AuditReport
from agents.ledger.decisions import DEFAULT_MAX_EDITED_CHARS, Authorization
from agents.ledger.deliveries import (
    DEFAULT_LEASE,
    DEFAULT_MAX_ATTEMPTS,
    DELIVERY_SEMANTICS,
    ApprovedItem,
    Claim,
)
from agents.ledger.errors import (
    AlreadyDecided,
    DecisionNotVerified,
    DeliveryConflict,
    EditTooLong,
    SnoozeRefused,
    GateNotPassed,
    LedgerError,
    NotApproved,
    NotAuthorised,
    SendsHalted,
    UnknownDelivery,
    UnknownDigest,
    UnknownItem,
)
from agents.ledger.kpis import DecisionStats
from agents.ledger.models import AuditRow, Decision, Delivery, Digest, Item, Snooze
from agents.ledger.modes import REQUIRED_LIVE_GATES
from agents.ledger.unit_of_work import (
    DEFAULT_BUSY_TIMEOUT_S,
    LEDGER_FILENAME,
    PG_WRITE_LOCK_KEY,
    UnitOfWork,
    create_ledger_engine,
    ledger_url,
    upgrade_schema,
)

__all__ = [
    "DEFAULT_BUSY_TIMEOUT_S",
    "DEFAULT_LEASE",
    "DEFAULT_MAX_ATTEMPTS",
    "DELIVERY_SEMANTICS",
    "LEDGER_FILENAME",
    "PG_WRITE_LOCK_KEY",
    "REQUIRED_LIVE_GATES",
    "AlreadyDecided",
    "ApprovedItem",
    "DecisionNotVerified",
    "Claim",
    "DecisionStats",
    "DeliveryConflict",
    "EditTooLong",
    "SnoozeRefused",
    "GateNotPassed",
    "Ledger",
    "LedgerError",
    "NotApproved",
    "NotAuthorised",
    "SendsHalted",
    "UnknownDelivery",
    "UnknownDigest",
    "UnknownItem",
    "create_ledger_engine",
    "ledger_url",
    "open_ledger",
    "upgrade_schema",
]


def open_ledger(
    url: str | None = None,
    *,
    home: Path | str | None = None,
    delegates: Mapping[str, Iterable[str]] | None = None,
    busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    clock: Callable[[], dt.datetime] | None = None,
    max_edited_chars: int = DEFAULT_MAX_EDITED_CHARS,
) -> Ledger:
    """Open (creating and migrating as needed) the ledger at ``url``, or ``<home>/ledger.sqlite``.

    ``delegates`` maps a manager id to the approver ids allowed to decide on
    that manager's items.
    """
    if url is None:
        if home is None:
            raise ValueError("open_ledger needs a SQLAlchemy URL or the state folder (home)")
        url = ledger_url(home)
    engine = create_ledger_engine(url, busy_timeout_s=busy_timeout_s)
    try:
        upgrade_schema(engine)
    except Exception:
        engine.dispose()
        raise
    return Ledger(engine, delegates=delegates, clock=clock, max_edited_chars=max_edited_chars)


class Ledger:
    """The domain API over the ledger database. Returned ORM objects are detached snapshots."""

    def __init__(
        self,
        engine: Engine,
        *,
        delegates: Mapping[str, Iterable[str]] | None = None,
        clock: Callable[[], dt.datetime] | None = None,
        max_edited_chars: int = DEFAULT_MAX_EDITED_CHARS,
    ):
        self.engine = engine
        self.max_edited_chars = max_edited_chars
        self.uow = UnitOfWork(engine, clock=clock)
        self.authorization = Authorization(delegates)

    # -- plumbing

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def batch(self):
        """Context manager: the writes made inside share one transaction (UnitOfWork.batch)."""
        return self.uow.batch()

    # -- audit trail

    def record_event(
        self, actor: str, action: str, subject_type: str, subject_id: str, payload: Mapping[str, Any] | None = None
    ) -> AuditRow:
        return _trail.record_event(self.uow, actor, action, subject_type, subject_id, payload)

    def audit_head(self) -> tuple[int, str] | None:
        return _trail.audit_head(self.uow)

    def audit_rows(
        self, *, since_seq: int = 0, subject_type: str | None = None, subject_id: str | None = None, limit: int | None = None
    ) -> list[AuditRow]:
        return _trail.audit_rows(self.uow, since_seq=since_seq, subject_type=subject_type, subject_id=subject_id, limit=limit)

    def verify_audit(self, anchor: tuple[int, str] | None = None) -> AuditReport:
        return _trail.verify_audit(self.uow, anchor)

    # -- digests and items

    def create_digest(
        self, run_id: str, manager_id: str, as_of: dt.date, *, channel: str | None = None,
        digest_id: str | None = None, actor: str = "pipeline",
    ) -> Digest:
        return _digests.create_digest(self.uow, run_id, manager_id, as_of, channel=channel, digest_id=digest_id, actor=actor)

    def mark_digest_posted(self, digest_id: str, *, channel: str, external_ref: str | None, actor: str = "pipeline") -> Digest:
        return _digests.mark_digest_posted(self.uow, digest_id, channel=channel, external_ref=external_ref, actor=actor)

    def mark_digest_failed(self, digest_id: str, error: str, *, channel: str | None = None, actor: str = "pipeline") -> Digest:
        return _digests.mark_digest_failed(self.uow, digest_id, error, channel=channel, actor=actor)

    def get_digest(self, digest_id: str) -> Digest | None:
        return _digests.get_digest(self.uow, digest_id)

    def add_item(
        self,
        digest_id: str,
        *,
        flag_id: str,
        rule_id: str,
        severity: str,
        draft: Any,
        evidence: Any,
        opportunity_id: str | None = None,
        rep_id: str | None = None,
        manager_id: str | None = None,
        priority: int = 0,
        item_id: str | None = None,
        actor: str = "pipeline",
    ) -> Item:
        return _digests.add_item(
            self.uow, digest_id, flag_id=flag_id, rule_id=rule_id, severity=severity, draft=draft, evidence=evidence,
            opportunity_id=opportunity_id, rep_id=rep_id, manager_id=manager_id, priority=priority, item_id=item_id, actor=actor,
        )

    def add_items(self, digest_id: str, items: Sequence[Mapping[str, Any]], *, actor: str = "pipeline") -> list[Item]:
        """add_item for many items of one digest in one transaction (agents/ledger/digests.py add_items)."""
        return _digests.add_items(self.uow, digest_id, items, actor=actor)

    def get_item(self, item_id: str) -> Item | None:
        return _digests.get_item(self.uow, item_id)

    def find_items(self, id_or_prefix: str, *, limit: int = 10) -> list[Item]:
        return _digests.find_items(self.uow, id_or_prefix, limit=limit)

    def items_for_digest(self, digest_id: str) -> list[Item]:
        return _digests.items_for_digest(self.uow, digest_id)

    def pending_items(
        self, manager_id: str | None = None, *, digest_id: str | None = None, latest_only: bool = False
    ) -> list[Item]:
        return _digests.pending_items(self.uow, manager_id, digest_id=digest_id, latest_only=latest_only)

    def latest_item_for(self, opportunity_id: str) -> Item | None:
        return _digests.latest_item_for(self.uow, opportunity_id)

    # -- decisions and authorization

    def delegates_of(self, manager_id: str) -> frozenset[str]:
        return self.authorization.delegates_of(manager_id)

    def is_authorised(self, approver_id: str, manager_id: str) -> bool:
        return self.authorization.is_authorised(approver_id, manager_id)

    def record_decision(
        self,
        item_id: str,
        action: Literal["approve", "edit", "dismiss"],
        approver_id: str,
        channel: Literal["cli", "slack", "teams", "console"],
        edited_text: str | None = None,
        reason: str | None = None,
        *,
        operator: str | None = None,
        confirmed: bool = False,
    ) -> Decision:
        return _decisions.record_decision(
            self.uow, self.authorization, item_id, action, approver_id, channel, edited_text=edited_text, reason=reason,
            operator=operator, max_edited_chars=self.max_edited_chars, confirmed=confirmed,
        )

    def get_decision(self, item_id: str) -> Decision | None:
        return _decisions.get_decision(self.uow, item_id)

    def decisions_for(self, item_ids: Iterable[str]) -> dict[str, Decision]:
        return _decisions.decisions_for(self.uow, item_ids)

    def decisions_since(self, cursor: str | int | None, *, limit: int = 500) -> tuple[list[Decision], str]:
        return _decisions.decisions_since(self.uow, cursor, limit=limit)

    # -- mode and kill switch (invariant 5)

    def mode(self) -> str:
        return _modes.mode(self.uow)

    def kill_switch_engaged(self) -> bool:
        return _modes.kill_switch_engaged(self.uow)

    def sends_allowed(self) -> tuple[bool, str]:
        return _modes.sends_allowed(self.uow)

    def set_mode(
        self, mode: Literal["shadow", "live"], *, actor: str, reason: str, gates: Mapping[str, bool] | None = None
    ) -> str:
        return _modes.set_mode(self.uow, mode, actor=actor, reason=reason, gates=gates)

    def engage_kill_switch(self, *, actor: str, reason: str) -> None:
        _modes.engage_kill_switch(self.uow, actor=actor, reason=reason)

    def release_kill_switch(self, *, actor: str, reason: str) -> None:
        _modes.release_kill_switch(self.uow, actor=actor, reason=reason)

    def record_eval(self, drafter: str, result: Mapping[str, Any], *, actor: str) -> dict[str, Any]:
        """Store (and audit) an eval result for a drafter; the live-mode gate reads it from here."""
        return _modes.record_eval(self.uow, drafter, result, actor=actor)

    def latest_eval(self, drafter: str) -> dict[str, Any] | None:
        return _modes.latest_eval(self.uow, drafter)

    # -- deliveries (invariant 6)

    @staticmethod
    def delivery_key(item_id: str, channel: str) -> str:
        return _deliveries.delivery_key(item_id, channel)

    def approved_undelivered_items(
        self, channels: Sequence[str] = ("rep_slack", "crm_note"), *, max_attempts: int = DEFAULT_MAX_ATTEMPTS
    ) -> list[ApprovedItem]:
        return _deliveries.approved_undelivered_items(self.uow, channels, max_attempts=max_attempts)

    def claim_delivery(
        self, item_id: str, channel: str, idempotency_key: str, *, lease: dt.timedelta = DEFAULT_LEASE, actor: str = "publisher"
    ) -> Claim:
        return _deliveries.claim_delivery(self.uow, item_id, channel, idempotency_key, lease=lease, actor=actor)

    def mark_sent(self, idempotency_key: str, external_ref: str | None = None, *, actor: str = "publisher") -> Delivery:
        return _deliveries.mark_sent(self.uow, idempotency_key, external_ref, actor=actor)

    def mark_failed(self, idempotency_key: str, error: str, *, actor: str = "publisher") -> Delivery:
        return _deliveries.mark_failed(self.uow, idempotency_key, error, actor=actor)

    def mark_unknown(self, idempotency_key: str, error: str, *, actor: str = "publisher") -> Delivery:
        return _deliveries.mark_unknown(self.uow, idempotency_key, error, actor=actor)

    def deliveries_needing_attention(self, channels: Sequence[str] | None = None) -> list[Delivery]:
        return _deliveries.deliveries_needing_attention(self.uow, channels)

    def find_delivery(self, ref: str) -> Delivery | None:
        return _deliveries.find_delivery(self.uow, ref)

    def resolve_delivery(self, ref: str, *, sent: bool, resolver: str, note: str | None = None) -> Delivery:
        return _deliveries.resolve_delivery(self.uow, ref, sent=sent, resolver=resolver, note=note)

    def get_delivery(self, idempotency_key: str) -> Delivery | None:
        return _deliveries.get_delivery(self.uow, idempotency_key)

    def deliveries_for(self, item_id: str) -> list[Delivery]:
        return _deliveries.deliveries_for(self.uow, item_id)

    # -- snoozes

    def add_snooze(
        self, opportunity_id: str, until: dt.date, *, by: str, reason: str | None = None,
        rule_id: str | None = None, starts: dt.date | None = None,
    ) -> Snooze:
        return _snoozes.add_snooze(self.uow, opportunity_id, until, by=by, reason=reason, rule_id=rule_id, starts=starts)

    def snooze(
        self, opportunity_id: str, until: dt.date, *, by: str, reason: str, rule_id: str | None = None,
        known_rules: Iterable[str] | None = None, operator: str | None = None, channel: str = "cli",
    ) -> Snooze:
        """Snooze with the rules (manager or delegate, audited refusals); ``add_snooze`` is the bare write."""
        return _snoozes.snooze(
            self.uow, self.authorization, opportunity_id, until, by=by, reason=reason, rule_id=rule_id,
            known_rules=known_rules, operator=operator, channel=channel,
        )

    def active_snoozes(self, as_of: dt.date) -> list[Snooze]:
        return _snoozes.active_snoozes(self.uow, as_of)

    def is_snoozed(self, opportunity_id: str, rule_id: str, as_of: dt.date) -> bool:
        return _snoozes.is_snoozed(self.uow, opportunity_id, rule_id, as_of)

    # -- KPI read models

    def shadow_agreement(
        self, as_of: dt.date, *, business_days: int = 10, by: Literal["rule", "manager", "all"] = "rule",
        mode: str | None = "shadow",
    ) -> dict[str, DecisionStats]:
        return _kpis.shadow_agreement(self.uow, as_of, business_days=business_days, by=by, mode=mode)

    def median_business_days_to_approval(
        self, *, since: dt.date | None = None, until: dt.date | None = None,
        manager_id: str | None = None, rule_id: str | None = None,
    ) -> float | None:
        return _kpis.median_business_days_to_approval(self.uow, since=since, until=until, manager_id=manager_id, rule_id=rule_id)

    def dismissal_rate_by_rule(self, *, since: dt.date | None = None, until: dt.date | None = None) -> dict[str, DecisionStats]:
        return _kpis.dismissal_rate_by_rule(self.uow, since=since, until=until)

    def decisions_by_manager(self, *, since: dt.date | None = None, until: dt.date | None = None) -> dict[str, DecisionStats]:
        return _kpis.decisions_by_manager(self.uow, since=since, until=until)

    # -- scorecard verdict history (issue 14; agents/ledger/verdicts.py)

    def record_verdict(self, **fields: Any):
        return _verdicts.record_verdict(self.uow, **fields)

    def verdict_history(self, rep_id: str | None = None, *, before: dt.date | None = None) -> list:
        return _verdicts.verdict_history(self.uow, rep_id, before=before)
    # -- manager review time (the console records the first view of a digest)

    def record_digest_view(self, digest_id: str, viewer: str, *, channel: str = "console") -> bool:
        from agents.ledger import review_time as _review_time

        return _review_time.record_view(self.uow, digest_id, viewer, channel=channel)

    def review_time(self, digest_id: str):
        from agents.ledger import review_time as _review_time

        return _review_time.review_time(self.uow, digest_id)

    def review_time_kpi(self, *, manager_id: str | None = None):
        from agents.ledger import review_time as _review_time

        return _review_time.review_time_kpi(self.uow, manager_id=manager_id)
