"""A rep's scorecard verdict history: one row per rep and scorecard week, written when the weekly
scorecards are built (audited), read for the next verdict and for the rep's history."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column

from agents.ledger.models import Base
from agents.ledger.unit_of_work import UnitOfWork


class ScorecardVerdict(Base):
    __tablename__ = "scorecard_verdicts"
    __table_args__ = (
        UniqueConstraint("rep_id", "as_of", name="uq_scorecard_verdicts_rep_as_of"),
        Index("ix_scorecard_verdicts_rep_id", "rep_id"),
    )
    verdict_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rep_id: Mapped[str] = mapped_column(String(128))
    manager_id: Mapped[str | None] = mapped_column(String(128))
    as_of: Mapped[dt.date]
    verdict: Mapped[str] = mapped_column(String(32))
    previous_verdict: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(500))
    policy_version: Mapped[str] = mapped_column(String(64))
    flag_id: Mapped[str] = mapped_column(String(128))
    scorecard: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[dt.datetime]


def record_verdict(
    uow: UnitOfWork, *, rep_id: str, manager_id: str | None, as_of: dt.date, verdict: str, reason: str | None,
    policy_version: str, flag_id: str, scorecard: dict[str, Any], actor: str = "pipeline",
) -> ScorecardVerdict:
    """Keep a rep's verdict for a week (once: a re-run of the same week keeps the first, audited once)."""
    with uow.write() as s:
        existing = s.scalars(
            select(ScorecardVerdict).where(ScorecardVerdict.rep_id == rep_id, ScorecardVerdict.as_of == as_of)
        ).first()
        if existing is not None:
            return existing
        previous = s.scalars(
            select(ScorecardVerdict).where(ScorecardVerdict.rep_id == rep_id, ScorecardVerdict.as_of < as_of)
            .order_by(ScorecardVerdict.as_of.desc())
        ).first()
        row = ScorecardVerdict(
            rep_id=rep_id, manager_id=manager_id, as_of=as_of, verdict=verdict,
            previous_verdict=previous.verdict if previous else None, reason=(reason or "")[:500] or None,
            policy_version=policy_version, flag_id=flag_id, scorecard=scorecard, created_at=uow.now(),
        )
        s.add(row)
        s.flush()
        uow.audit(
            s, actor=actor, action="scorecard.verdict_recorded", subject_type="rep", subject_id=rep_id,
            payload={"verdict_id": row.verdict_id, "as_of": as_of, "verdict": verdict,
                     "previous_verdict": row.previous_verdict, "flag_id": flag_id, "policy_version": policy_version},
        )
        return row


def verdict_history(uow: UnitOfWork, rep_id: str | None = None, *, before: dt.date | None = None) -> list[ScorecardVerdict]:
    query = select(ScorecardVerdict)
    if rep_id is not None:
        query = query.where(ScorecardVerdict.rep_id == rep_id)
    if before is not None:
        query = query.where(ScorecardVerdict.as_of < before)
    with uow.read() as s:
        return list(s.scalars(query.order_by(ScorecardVerdict.rep_id, ScorecardVerdict.as_of)))
