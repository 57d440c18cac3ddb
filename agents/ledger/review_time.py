"""Manager review time: from the first time a digest was opened in the console to its last decision.

The first view is an audit row (``digest.viewed``, one per digest and viewer); the last decision is
the newest decision on any of the digest's items, wherever it was taken (console, Slack, CLI). The
KPI is the seed metric "manager review time <= 15 min": the median over digests that were opened
and have at least one decision, and the share of those within the target.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import statistics

from sqlalchemy import func, select

from agents.ledger.models import AuditRow, Decision, Digest, Item
from agents.ledger.unit_of_work import UnitOfWork

VIEWED = "digest.viewed"
TARGET_MINUTES = 15.0


@dataclasses.dataclass(frozen=True)
class ReviewTime:
    digest_id: str
    manager_id: str
    first_view: dt.datetime | None
    last_decision: dt.datetime | None
    decided: int
    items: int

    @property
    def minutes(self) -> float | None:
        if self.first_view is None or self.last_decision is None or self.last_decision < self.first_view:
            return None
        return (self.last_decision - self.first_view).total_seconds() / 60.0

    @property
    def complete(self) -> bool:
        return self.items > 0 and self.decided == self.items


def record_view(uow: UnitOfWork, digest_id: str, viewer: str, *, channel: str = "console") -> bool:
    """Record ``viewer``'s first view of a digest (audited once per digest and viewer); True when recorded now."""
    with uow.write() as s:
        seen = s.scalar(
            select(func.count()).select_from(AuditRow).where(
                AuditRow.action == VIEWED, AuditRow.subject_type == "digest", AuditRow.subject_id == digest_id,
                AuditRow.actor == viewer,
            )
        )
        if seen:
            return False
        uow.audit(s, actor=viewer, action=VIEWED, subject_type="digest", subject_id=digest_id, payload={"channel": channel})
        return True


def review_time(uow: UnitOfWork, digest_id: str) -> ReviewTime | None:
    with uow.read() as s:
        digest = s.get(Digest, digest_id)
        if digest is None:
            return None
        first = s.scalar(
            select(func.min(AuditRow.at)).where(
                AuditRow.action == VIEWED, AuditRow.subject_type == "digest", AuditRow.subject_id == digest_id
            )
        )
        items = s.scalar(select(func.count()).select_from(Item).where(Item.digest_id == digest_id)) or 0
        last, decided = s.execute(
            select(func.max(Decision.decided_at), func.count(Decision.decision_id))
            .join(Item, Item.item_id == Decision.item_id).where(Item.digest_id == digest_id)
        ).one()
    # SQLite hands back aggregated datetimes naive (the column type is bypassed by max/min): they are UTC.
    first = first.replace(tzinfo=dt.timezone.utc) if first is not None and first.tzinfo is None else first
    last = last.replace(tzinfo=dt.timezone.utc) if last is not None and last.tzinfo is None else last
    return ReviewTime(digest_id, digest.manager_id, first, last, int(decided or 0), int(items))


def review_times(uow: UnitOfWork, *, manager_id: str | None = None, limit: int = 200) -> list[ReviewTime]:
    """Review times of the digests that were opened (newest first)."""
    with uow.read() as s:
        ids = list(
            s.scalars(
                select(AuditRow.subject_id).where(AuditRow.action == VIEWED, AuditRow.subject_type == "digest")
                .group_by(AuditRow.subject_id).order_by(func.min(AuditRow.seq).desc()).limit(limit)
            )
        )
    out = [rt for rt in (review_time(uow, d) for d in ids) if rt is not None]
    return [rt for rt in out if manager_id is None or rt.manager_id == manager_id]


@dataclasses.dataclass(frozen=True)
class ReviewTimeKpi:
    digests: int  # opened and with at least one decision
    median_minutes: float | None
    within_target: int
    target_minutes: float = TARGET_MINUTES

    @property
    def met(self) -> bool | None:
        return None if self.median_minutes is None else self.median_minutes <= self.target_minutes


def review_time_kpi(uow: UnitOfWork, *, manager_id: str | None = None) -> ReviewTimeKpi:
    minutes = [m for m in (rt.minutes for rt in review_times(uow, manager_id=manager_id)) if m is not None]
    return ReviewTimeKpi(
        digests=len(minutes),
        median_minutes=statistics.median(minutes) if minutes else None,
        within_target=sum(1 for m in minutes if m <= TARGET_MINUTES),
    )
