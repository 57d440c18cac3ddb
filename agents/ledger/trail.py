"""Reading and appending to the audit trail outside any other change (runs, CRM reads), and verifying it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from agents.ledger.integrity import cross_check

from agents.ledger.audit import AuditReport, verify_rows
from agents.ledger.models import AuditRow
from agents.ledger.unit_of_work import UnitOfWork


def record_event(
    uow: UnitOfWork, actor: str, action: str, subject_type: str, subject_id: str, payload: Mapping[str, Any] | None = None
) -> AuditRow:
    """Append an audit row for something that happened outside the ledger (a CRM read, a run, a send)."""
    with uow.write() as s:
        return uow.audit(s, actor=actor, action=action, subject_type=subject_type, subject_id=subject_id, payload=payload)


def audit_head(uow: UnitOfWork) -> tuple[int, str] | None:
    """(seq, row_hash) of the newest audit row: publish it elsewhere to anchor the chain."""
    with uow.read() as s:
        tail = s.execute(select(AuditRow.seq, AuditRow.row_hash).order_by(AuditRow.seq.desc()).limit(1)).first()
    return (tail.seq, tail.row_hash) if tail else None


def audit_rows(
    uow: UnitOfWork, *, since_seq: int = 0, subject_type: str | None = None, subject_id: str | None = None, limit: int | None = None
) -> list[AuditRow]:
    query = select(AuditRow).where(AuditRow.seq > since_seq).order_by(AuditRow.seq)
    if subject_type is not None:
        query = query.where(AuditRow.subject_type == subject_type)
    if subject_id is not None:
        query = query.where(AuditRow.subject_id == subject_id)
    if limit is not None:
        query = query.limit(limit)
    with uow.read() as s:
        return list(s.scalars(query))


def verify_audit(uow: UnitOfWork, anchor: tuple[int, str] | None = None) -> AuditReport:
    """Recompute the whole chain; see ``agents.ledger.audit.verify_rows`` for what is reported."""
    table = AuditRow.__table__
    with uow.read_engine.connect() as conn:
        result = conn.execution_options(yield_per=2000).execute(select(table).order_by(table.c.seq))
        chain = verify_rows(result, anchor=anchor)
    with uow.read() as s:
        rows = list(cross_check(s))
    if not rows:
        return chain
    return dataclasses.replace(chain, ok=False, problems=chain.problems + tuple(rows))
