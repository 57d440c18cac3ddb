"""KPI read models over decisions: agreement, time to approval, dismissal rates."""

from __future__ import annotations

import dataclasses
import datetime as dt
import statistics
from typing import Literal

from sqlalchemy import select

from agents.ledger.business_days import business_days_between, window_start
from agents.ledger.models import APPROVING_ACTIONS, Decision, Item
from agents.ledger.unit_of_work import UnitOfWork


@dataclasses.dataclass(frozen=True)
class DecisionStats:
    key: str
    decided: int = 0
    approved: int = 0
    edited: int = 0
    dismissed: int = 0

    @property
    def agreement_rate(self) -> float | None:
        """approved / decided: the manager took the draft as written."""
        return self.approved / self.decided if self.decided else None

    @property
    def agreement_rate_with_edits(self) -> float | None:
        """(approved + edited) / decided: the manager agreed the deal needed the action."""
        return (self.approved + self.edited) / self.decided if self.decided else None

    @property
    def dismissal_rate(self) -> float | None:
        return self.dismissed / self.decided if self.decided else None

    def _add(self, action: str) -> DecisionStats:
        field = {"approve": "approved", "edit": "edited", "dismiss": "dismissed"}[action]
        return dataclasses.replace(self, decided=self.decided + 1, **{field: getattr(self, field) + 1})


def _utc_day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.timezone.utc)


def _window(since: dt.date | None, until: dt.date | None) -> dict[str, dt.datetime | None]:
    return {
        "since": _utc_day_start(since) if since else None,
        "until": _utc_day_start(until + dt.timedelta(days=1)) if until else None,
    }


def _decided(
    uow: UnitOfWork, *, since: dt.datetime | None = None, until: dt.datetime | None = None, mode: str | None = None
) -> list[tuple[str, str, dt.datetime, str, dt.datetime]]:
    """(rule_id, manager_id, item created_at, action, decided_at) for decisions in [since, until)."""
    query = select(Item.rule_id, Item.manager_id, Item.created_at, Decision.action, Decision.decided_at).join(
        Decision, Decision.item_id == Item.item_id
    )
    # People's decisions only: an L5 approval (approver channel "autonomy", agents/autonomy) is nobody's verdict.
    query = query.where(Decision.approver_channel != "autonomy")
    if since is not None:
        query = query.where(Decision.decided_at >= since)
    if until is not None:
        query = query.where(Decision.decided_at < until)
    if mode is not None:
        query = query.where(Decision.mode == mode)
    with uow.read() as s:
        return [tuple(r) for r in s.execute(query)]


def shadow_agreement(
    uow: UnitOfWork,
    as_of: dt.date,
    *,
    business_days: int = 10,
    by: Literal["rule", "manager", "all"] = "rule",
    mode: str | None = "shadow",
) -> dict[str, DecisionStats]:
    """Agreement (``DecisionStats.agreement_rate`` = approved / decided) over the last
    ``business_days`` business days ending ``as_of`` (by decision date, UTC), per rule,
    per manager, or overall (key ``"*"``). ``mode=None`` counts live decisions too.
    """
    start = window_start(as_of, business_days)
    stats: dict[str, DecisionStats] = {}
    for rule_id, manager_id, _created, action, _decided_at in _decided(uow, mode=mode, **_window(start, as_of)):
        key = {"rule": rule_id, "manager": manager_id, "all": "*"}[by]
        stats[key] = stats.get(key, DecisionStats(key))._add(action)
    return dict(sorted(stats.items()))


def median_business_days_to_approval(
    uow: UnitOfWork,
    *,
    since: dt.date | None = None,
    until: dt.date | None = None,
    manager_id: str | None = None,
    rule_id: str | None = None,
) -> float | None:
    """Median business days from flag (item created) to approval or edit; None when nothing was approved."""
    days = [
        business_days_between(created.date(), decided.date())
        for r_id, m_id, created, action, decided in _decided(uow, **_window(since, until))
        if action in APPROVING_ACTIONS and manager_id in (None, m_id) and rule_id in (None, r_id)
    ]
    return float(statistics.median(days)) if days else None


def dismissal_rate_by_rule(uow: UnitOfWork, *, since: dt.date | None = None, until: dt.date | None = None) -> dict[str, DecisionStats]:
    """Per rule; read ``.dismissal_rate`` (dismissed / decided)."""
    stats: dict[str, DecisionStats] = {}
    for rule_id, _m, _c, action, _d in _decided(uow, **_window(since, until)):
        stats[rule_id] = stats.get(rule_id, DecisionStats(rule_id))._add(action)
    return dict(sorted(stats.items()))


def decisions_by_manager(uow: UnitOfWork, *, since: dt.date | None = None, until: dt.date | None = None) -> dict[str, DecisionStats]:
    """Per manager (the items' manager, whoever decided): counts by action."""
    stats: dict[str, DecisionStats] = {}
    for _r, manager_id, _c, action, _d in _decided(uow, **_window(since, until)):
        stats[manager_id] = stats.get(manager_id, DecisionStats(manager_id))._add(action)
    return dict(sorted(stats.items()))
