"""Shadow agreement (the live-mode gate), review KPIs, snoozes and business-day arithmetic."""

from __future__ import annotations

import datetime as dt

import pytest

from agents.ledger import business_days_between, open_ledger, window_start

UTC = dt.timezone.utc
MON, TUE, WED, THU, FRI, SAT, SUN = (dt.date(2026, 9, d) for d in range(21, 28))


class Clock:
    def __init__(self):
        self.now = dt.datetime(2026, 9, 1, 8, 0, tzinfo=UTC)

    def __call__(self):
        return self.now

    def at(self, day: dt.date, hour: int = 9) -> None:
        self.now = dt.datetime.combine(day, dt.time(hour), tzinfo=UTC)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def ledger(tmp_path, clock):
    with open_ledger(home=tmp_path, clock=clock) as ledger:
        yield ledger


def _decide(ledger, clock, *, manager, rule, action, flagged: dt.date, decided: dt.date, n=[0]):
    n[0] += 1
    clock.at(flagged)
    digest = ledger.create_digest(f"run-{flagged}", manager, flagged)
    item = ledger.add_item(digest.digest_id, flag_id=f"f-{n[0]}", rule_id=rule, severity="medium", draft={}, evidence={})
    clock.at(decided, 15)
    ledger.record_decision(item.item_id, action, manager, "slack", edited_text="x" if action == "edit" else None)


def test_business_days():
    assert business_days_between(MON, MON) == 0
    assert business_days_between(FRI, MON + dt.timedelta(days=7)) == 1  # over a weekend
    assert business_days_between(MON, MON + dt.timedelta(days=14)) == 10
    assert business_days_between(SAT, SUN) == 0
    assert window_start(FRI, 5) == MON
    assert window_start(SUN, 5) == MON  # a weekend as-of looks back over the week before
    assert window_start(FRI, 10) == MON - dt.timedelta(days=7)
    with pytest.raises(ValueError):
        window_start(FRI, 0)


def test_shadow_agreement_per_rule_and_manager(ledger, clock):
    old = MON - dt.timedelta(days=7)  # outside a 5-business-day window ending FRI
    _decide(ledger, clock, manager="m1", rule="stalled", action="dismiss", flagged=old, decided=old)
    _decide(ledger, clock, manager="m1", rule="stalled", action="approve", flagged=MON, decided=TUE)
    _decide(ledger, clock, manager="m1", rule="stalled", action="approve", flagged=MON, decided=WED)
    _decide(ledger, clock, manager="m2", rule="stalled", action="edit", flagged=TUE, decided=THU)
    _decide(ledger, clock, manager="m2", rule="no_next_step", action="dismiss", flagged=TUE, decided=FRI)
    _decide(ledger, clock, manager="m2", rule="no_next_step", action="approve", flagged=WED, decided=FRI)

    by_rule = ledger.shadow_agreement(FRI, business_days=5, by="rule")
    assert {k: (s.decided, s.approved, s.edited, s.dismissed) for k, s in by_rule.items()} == {
        "no_next_step": (2, 1, 0, 1),
        "stalled": (3, 2, 1, 0),
    }
    assert by_rule["stalled"].agreement_rate == pytest.approx(2 / 3)
    assert by_rule["stalled"].agreement_rate_with_edits == 1.0
    by_manager = ledger.shadow_agreement(FRI, business_days=5, by="manager")
    assert by_manager["m1"].agreement_rate == 1.0 and by_manager["m2"].agreement_rate == pytest.approx(1 / 3)
    overall = ledger.shadow_agreement(FRI, business_days=10, by="all")["*"]
    assert (overall.decided, overall.approved) == (6, 3)
    assert ledger.shadow_agreement(FRI, business_days=5, mode="live") == {}  # all of these were shadow decisions


def test_review_kpis(ledger, clock):
    _decide(ledger, clock, manager="m1", rule="stalled", action="approve", flagged=MON, decided=MON)  # 0 days
    _decide(ledger, clock, manager="m1", rule="stalled", action="edit", flagged=THU, decided=MON + dt.timedelta(days=7))  # 2
    _decide(ledger, clock, manager="m2", rule="stalled", action="approve", flagged=MON, decided=FRI)  # 4
    _decide(ledger, clock, manager="m2", rule="no_next_step", action="dismiss", flagged=MON, decided=TUE)
    assert ledger.median_business_days_to_approval() == 2.0
    assert ledger.median_business_days_to_approval(manager_id="m1") == 1.0
    assert ledger.median_business_days_to_approval(since=SAT) == 2.0  # only the decision on the next Monday
    assert ledger.median_business_days_to_approval(rule_id="no_next_step") is None
    dismissals = ledger.dismissal_rate_by_rule()
    assert dismissals["no_next_step"].dismissal_rate == 1.0 and dismissals["stalled"].dismissal_rate == 0.0
    per_manager = ledger.decisions_by_manager(until=FRI)
    assert {k: (s.decided, s.approved, s.edited, s.dismissed) for k, s in per_manager.items()} == {
        "m1": (1, 1, 0, 0),
        "m2": (2, 1, 0, 1),
    }


def test_snoozes(ledger):
    ledger.add_snooze("opp-1", until=FRI, by="m1", reason="customer on holiday")
    ledger.add_snooze("opp-2", until=FRI, by="m1", rule_id="stalled", starts=WED)
    assert [s.opportunity_id for s in ledger.active_snoozes(MON)] == ["opp-1"]
    assert [s.opportunity_id for s in ledger.active_snoozes(THU)] == ["opp-1", "opp-2"]
    assert ledger.active_snoozes(SAT) == []  # until is inclusive, then it lapses
    assert ledger.is_snoozed("opp-1", "anything", FRI)
    assert ledger.is_snoozed("opp-2", "stalled", THU) and not ledger.is_snoozed("opp-2", "no_next_step", THU)
    assert [r.action for r in ledger.audit_rows()] == ["snooze.added", "snooze.added"]
    with pytest.raises(ValueError):
        ledger.add_snooze("opp-3", until=MON, starts=FRI, by="m1")
