"""Snoozes: a deal's flags silenced through an end date (inclusive)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import or_, select

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
