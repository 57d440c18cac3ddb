"""Ledger tables of the learning loop (issue 17): policy versions and action outcomes.

``policy_versions`` holds every policy YAML proposed through
``agents.risk.versions`` with its status; at most one row is ``applied`` (a
partial unique index says so in the database). ``action_outcomes`` is a read
model: one row per reviewed item, the point-in-time check of whether the change
the action aimed for happened, refreshed by ``sales-supervisor outcomes check``.
Both are created by migration 0004.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from agents.ledger.models import Base, _in

POLICY_STATUSES = ("proposed", "applied", "superseded", "rolled back", "rejected")
OUTCOME_DECISIONS = ("approved", "dismissed", "undecided")
FINAL_RESULTS = ("won", "lost", "open")


class PolicyVersionRow(Base):
    __tablename__ = "policy_versions"
    __table_args__ = (
        CheckConstraint(_in("status", POLICY_STATUSES), name="ck_policy_versions_status"),
        # At most one applied version, enforced by the database.
        Index(
            "uq_policy_versions_one_applied", "status", unique=True,
            sqlite_where=text("status = 'applied'"), postgresql_where=text("status = 'applied'"),
        ),
    )
    version_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[dt.datetime]
    author: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    yaml_text: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(64))
    policy_version: Mapped[str] = mapped_column(String(128))  # the YAML's own `version:` (what flags record)
    status: Mapped[str] = mapped_column(String(16), default="proposed")
    evidence: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    based_on: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the version current when proposed
    applied_at: Mapped[dt.datetime | None]
    applied_by: Mapped[str | None] = mapped_column(String(128))
    replaced: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the version this one replaced when applied


class ActionOutcome(Base):
    __tablename__ = "action_outcomes"
    __table_args__ = (
        CheckConstraint(_in("decision", OUTCOME_DECISIONS), name="ck_action_outcomes_decision"),
        CheckConstraint(f"final_result IS NULL OR {_in('final_result', FINAL_RESULTS)}", name="ck_action_outcomes_final"),
        Index("ix_action_outcomes_rule_id", "rule_id"),
    )
    item_id: Mapped[str] = mapped_column(ForeignKey("items.item_id"), primary_key=True)
    opportunity_id: Mapped[str | None] = mapped_column(String(128))
    rule_id: Mapped[str] = mapped_column(String(128))
    manager_id: Mapped[str] = mapped_column(String(128))
    rep_id: Mapped[str | None] = mapped_column(String(128))
    decision: Mapped[str] = mapped_column(String(16))
    flagged_on: Mapped[dt.date]
    check_on: Mapped[dt.date]
    aimed_change: Mapped[str] = mapped_column(String(64))
    achieved: Mapped[bool | None] = mapped_column(Boolean, nullable=True)  # None: not due yet / not measurable
    detail: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    final_result: Mapped[str | None] = mapped_column(String(8))
    checked_at: Mapped[dt.datetime]
