"""The tables of governed autonomy (migration 0006); the functions over them are in ``autonomy.py``."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from agents.ledger.models import Base


class DeferredSend(Base):
    """A send owed to a rep that waited for the end of the recipient's quiet hours.

    The delivery itself stays owed in ``deliveries``/``decisions`` (so a restart loses nothing, and its
    idempotency key means it goes once); this row records why and until when it waited, and when it went.
    """

    __tablename__ = "deferred_sends"
    __table_args__ = (UniqueConstraint("item_id", "channel", name="uq_deferred_sends_item_channel"),)
    deferral_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.item_id"))
    channel: Mapped[str] = mapped_column(String(16))
    not_before: Mapped[dt.datetime]
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime]
    released_at: Mapped[dt.datetime | None]


class Recall(Base):
    """An autonomous send taken back by the manager (where the channel allows it)."""

    __tablename__ = "recalls"
    __table_args__ = (UniqueConstraint("idempotency_key", name="uq_recalls_idempotency_key"),)
    recall_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.item_id"))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    recalled_by: Mapped[str] = mapped_column(String(128))
    recalled_at: Mapped[dt.datetime]
    note: Mapped[str | None] = mapped_column(Text)


class LlmSpend(Base):
    """What one draft cost, for whom, on which UTC day: the daily and per-rep caps read these."""

    __tablename__ = "llm_spend"
    __table_args__ = (Index("ix_llm_spend_day_rep", "day", "rep_id"),)
    spend_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    day: Mapped[dt.date]
    run_id: Mapped[str] = mapped_column(String(128))
    packet_id: Mapped[str] = mapped_column(String(64))
    rep_id: Mapped[str | None] = mapped_column(String(128))
    manager_id: Mapped[str | None] = mapped_column(String(128))
    drafter: Mapped[str] = mapped_column(String(128))
    cost_usd: Mapped[float] = mapped_column(Float)
    recorded_at: Mapped[dt.datetime]
