"""Snoozes: a deal's flags silenced through an end date.

The end date is inclusive, here and in the risk engine: a snooze ``until``
2026-10-15 silences the flag on every as-of date up to and including
2026-10-15; the flag can return on 2026-10-16.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import or_, select

from agents.ledger.decisions import Authorization
from agents.ledger.errors import LedgerError, NotAuthorised, SnoozeRefused
from agents.ledger.models import Snooze
from agents.ledger.unit_of_work import UnitOfWork


def add_snooze(
    uow: UnitOfWork,
    opportunity_id: str,
    until: dt.date,
    *,
    by: str,
    reason: str | None = None,
    rule_id: str | None = None,
    starts: dt.date | None = None,
) -> Snooze:
    """Silence flags on a deal through ``until`` (inclusive), for one rule or (``rule_id=None``) all."""
    if starts is not None and starts > until:
        raise ValueError("a snooze cannot start after it ends")
    with uow.write() as s:
        snooze = Snooze(
            opportunity_id=opportunity_id, rule_id=rule_id, starts=starts, until=until,
            reason=reason, by=by, created_at=uow.now(),
        )
        s.add(snooze)
        s.flush()
        uow.audit(
            s, actor=by, action="snooze.added", subject_type="opportunity", subject_id=opportunity_id,
            payload={"snooze_id": snooze.snooze_id, "rule_id": rule_id, "starts": starts, "until": until, "reason": reason},
        )
        return snooze


def active_snoozes(uow: UnitOfWork, as_of: dt.date) -> list[Snooze]:
    query = (
        select(Snooze)
        .where(Snooze.until >= as_of, or_(Snooze.starts.is_(None), Snooze.starts <= as_of))
        .order_by(Snooze.opportunity_id, Snooze.snooze_id)
    )
    with uow.read() as s:
        return list(s.scalars(query))


def is_snoozed(uow: UnitOfWork, opportunity_id: str, rule_id: str, as_of: dt.date) -> bool:
    return any(
        sz.opportunity_id == opportunity_id and sz.rule_id in (None, rule_id) for sz in active_snoozes(uow, as_of)
    )


def snooze(
    uow: UnitOfWork,
    auth: Authorization,
    opportunity_id: str,
    until: dt.date,
    *,
    by: str,
    reason: str,
    rule_id: str | None = None,
    known_rules: Iterable[str] | None = None,
    operator: str | None = None,
    channel: str = "cli",
) -> Snooze:
    """Snooze a flagged deal through ``until`` (inclusive): the rules every interface gets.

    Only the deal's manager (the manager of its latest item) or one of their
    delegates may; anyone else gets ``NotAuthorised`` and the refusal is
    audited. ``operator`` (who is at the keyboard) may act as ``by`` only if
    it is them or their delegate. Refused as ``SnoozeRefused`` (audited): no
    reason, a deal never flagged in a digest, a rule not in ``known_rules``,
    an end date not after the date the deal was flagged.
    """
    from agents.ledger.digests import get_digest, latest_item_for

    if not by or not by.strip():
        raise ValueError("the snoozing approver is required (an empty --as names nobody)")
    attempt = {"until": until, "rule_id": rule_id, "reason": reason, "by": by, "operator": operator or by, "channel": channel}

    def refuse(error: LedgerError, refusal: str, **extra) -> LedgerError:
        with uow.write() as s:
            uow.audit(
                s, actor=operator or by, action="snooze.refused", subject_type="opportunity", subject_id=opportunity_id,
                payload={**attempt, "refusal": refusal, **extra},
            )
        return error

    if not (reason or "").strip():
        raise refuse(SnoozeRefused("a snooze needs a reason (it is audited)"), "no_reason")
    if rule_id is not None and known_rules is not None and rule_id not in set(known_rules):
        raise refuse(
            SnoozeRefused(f"unknown rule {rule_id!r}; the policy's rules are: {', '.join(sorted(known_rules))}"), "unknown_rule"
        )
    item = latest_item_for(uow, opportunity_id)
    if item is None:
        raise refuse(
            SnoozeRefused(f"{opportunity_id} has never been flagged in a digest; only flagged deals can be snoozed"), "unknown_deal"
        )
    if operator is not None and operator != by and operator not in auth.delegates_of(by):
        raise refuse(
            NotAuthorised(f"{operator} may not act as {by}: only {by} or one of their delegates may"),
            "operator_may_not_act_as", manager_id=item.manager_id,
        )
    if not auth.is_authorised(by, item.manager_id):
        raise refuse(
            NotAuthorised(f"only {item.manager_id} (the deal's manager) or a delegate may snooze {opportunity_id}"),
            "not_authorised", manager_id=item.manager_id,
        )
    digest = get_digest(uow, item.digest_id)
    flagged_on = digest.as_of if digest else None
    if flagged_on is not None and until <= flagged_on:
        raise refuse(
            SnoozeRefused(f"the end date {until} is not after the flag's date ({flagged_on}); it would snooze nothing"),
            "ends_before_flag", flagged_on=flagged_on,
        )
    return add_snooze(uow, opportunity_id, until, by=by, reason=reason, rule_id=rule_id)
