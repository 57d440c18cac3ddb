"""Planted review history for the learning loop (issue 17): approved actions that worked and some that did not.

The demo CRM's rows are not changed. This module reads the files the generator
has just written and picks, for past flag dates (Mondays from six to three weeks
before the as-of date), deals that were open then, and plants review items on
them: approved, dismissed (with a reason) or left undecided. Whether each
action *worked* (the change it aimed for happened within ``CHECK_BUSINESS_DAYS``
business days after the flag) is decided here, independently of
``agents/learning/outcomes.py``, straight from the raw rows, and the deals are
chosen so each rule's approved items reach a planted effectiveness:

    loop_review_history.csv   one row per planted item (deal, rule, flag date, decision, decided_at, reason)
    loop_ground_truth.csv     item -> aim, worked (true/false), the deal's final result

``seed_review_history(ledger, folder)`` writes the history into a review ledger
(digests, items, decisions at their planted times), which is what
``sales-supervisor outcomes demo-history`` does. Only scale 1 is planted (the
files are read in full; at larger scales the demo is for speed, not for this).

Aims (what the approved action was meant to change), per rule:
    stalled_in_stage     stage_advanced           the deal entered a later stage (Closed Lost does not count)
    no_decision_maker    decision_maker_meeting   a meeting with a decision-maker contact was logged
    close_date_slipped   close_date_held          no close-date change, and the deal was not lost
    no_recent_activity   activity_resumed         any activity was logged
    meeting_cadence_drop meeting_logged           a meeting was logged
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

CHECK_BUSINESS_DAYS = 10
HISTORY_FILE = "loop_review_history.csv"
TRUTH_FILE = "loop_ground_truth.csv"
HISTORY_COLUMNS = ("item_key", "opportunity_id", "rule_id", "flagged_on", "manager_id", "rep_id", "decision",
                   "decided_at", "reason")
TRUTH_COLUMNS = ("item_key", "opportunity_id", "rule_id", "flagged_on", "decision", "aim", "worked", "final_result")

RULE_AIMS = {
    "stalled_in_stage": "stage_advanced",
    "no_decision_maker": "decision_maker_meeting",
    "close_date_slipped": "close_date_held",
    "no_recent_activity": "activity_resumed",
    "meeting_cadence_drop": "meeting_logged",
}
# rule -> (approved, of which worked, dismissed, undecided): the planted effectiveness is worked / approved.
PLAN = {
    "stalled_in_stage": (20, 8, 5, 3),  # 40%
    "no_decision_maker": (20, 11, 5, 3),  # 55%
    "close_date_slipped": (20, 14, 5, 3),  # 70%
    "no_recent_activity": (20, 13, 4, 3),  # 65%
    "meeting_cadence_drop": (6, 3, 8, 2),  # 50%, and dismissed in 8 of 14 decisions: the rule to learn from
}
DISMISS_REASONS = {
    "meeting_cadence_drop": [
        "Customer is on holiday until mid-September, nothing to chase",
        "Normal for this account: procurement runs long in summer",
        "Already spoke to the champion last week, meeting booked",
        "Vacation season, the buyer is out of office",
        "Wrong flag: we met them at the conference, not logged in the CRM",
        "Timing: they asked us to come back next quarter",
        "Already handled in the pipeline review",
        "Out of office until the 20th",
    ],
    "_other": [
        "Already handled: rep called them yesterday",
        "Legal review is expected to take this long",
        "Data is stale in the CRM, the deal moved",
        "Strategic account, the exec sponsor owns it",
        "Budget cycle: they decide next quarter",
    ],
}
LOST_STAGE = "Closed Lost"


def _add_business_days(day: dt.date, n: int) -> dt.date:
    while n > 0:
        day += dt.timedelta(days=1)
        if day.weekday() < 5:
            n -= 1
    return day


def flag_dates(as_of: dt.date) -> list[dt.date]:
    """Six Mondays, the last at least CHECK_BUSINESS_DAYS business days before ``as_of`` (so every check is due)."""
    last = as_of - dt.timedelta(days=as_of.weekday())  # the Monday of the as-of week
    while _add_business_days(last, CHECK_BUSINESS_DAYS) >= as_of:
        last -= dt.timedelta(days=7)
    return [last - dt.timedelta(days=7 * k) for k in range(5, -1, -1)]


def _read(folder: Path, name: str):
    with open(folder / name, newline="", encoding="utf-8") as fh:
        yield from csv.DictReader(fh)


def _ts_day(value: str) -> dt.date | None:
    return dt.date.fromisoformat(value[:10]) if value else None


class _Raw:
    def __init__(self, folder: Path) -> None:
        self.order = {r["stage"]: int(r["stage_order"]) for r in _read(folder, "stages.csv")}
        self.manager = {r["rep_id"]: r["manager_id"] for r in _read(folder, "reps.csv")}
        self.opps = {r["opportunity_id"]: r for r in _read(folder, "opportunities.csv")}
        self.stages: dict[str, list[tuple[dt.date, str]]] = defaultdict(list)
        for r in _read(folder, "stage_history.csv"):
            self.stages[r["opportunity_id"]].append((_ts_day(r["entered_at"]), r["stage"]))
        for v in self.stages.values():
            v.sort()
        self.close_changes: dict[str, list[dt.date]] = defaultdict(list)
        for r in _read(folder, "field_history.csv"):
            if r["field_name"] == "close_date":
                self.close_changes[r["opportunity_id"]].append(_ts_day(r["changed_at"]))
        dms = {r["contact_id"] for r in _read(folder, "contacts.csv") if r["buying_role"] == "decision_maker"}
        with_dm = {r["activity_id"] for r in _read(folder, "activity_contacts.csv") if r["contact_id"] in dms}
        self.activities: dict[str, list[tuple[dt.date, str, bool]]] = defaultdict(list)
        for r in _read(folder, "activities.csv"):
            if r["opportunity_id"]:
                self.activities[r["opportunity_id"]].append(
                    (_ts_day(r["occurred_at"]), r["activity_type"], r["activity_id"] in with_dm))

    def open_through(self, opp: dict[str, str], start: dt.date, end: dt.date) -> bool:
        created = _ts_day(opp["created_at"])
        closed = _ts_day(opp["closed_at"])
        return created is not None and created <= start and (closed is None or closed > end)

    def stage_at(self, opp_id: str, day: dt.date) -> str | None:
        current = None
        for entered, stage in self.stages.get(opp_id, []):
            if entered <= day:
                current = stage
        return current

    def worked(self, aim: str, opp_id: str, flagged: dt.date, check: dt.date) -> bool:
        in_window = lambda d: d is not None and flagged < d <= check  # noqa: E731
        acts = [a for a in self.activities.get(opp_id, []) if in_window(a[0])]
        if aim == "activity_resumed":
            return bool(acts)
        if aim == "meeting_logged":
            return any(t == "meeting" for _, t, _ in acts)
        if aim == "decision_maker_meeting":
            return any(t == "meeting" and dm for _, t, dm in acts)
        if aim == "stage_advanced":
            before = self.order.get(self.stage_at(opp_id, flagged) or "", 0)
            return any(in_window(d) and s != LOST_STAGE and self.order.get(s, 0) > before
                       for d, s in self.stages.get(opp_id, []))
        if aim == "close_date_held":
            lost = any(in_window(d) and s == LOST_STAGE for d, s in self.stages.get(opp_id, []))
            return not lost and not any(in_window(d) for d in self.close_changes.get(opp_id, []))
        raise ValueError(f"unknown aim {aim!r}")

    def final_result(self, opp_id: str) -> str:
        o = self.opps[opp_id]
        if o["is_closed"] == "true":
            return "won" if o["is_won"] == "true" else "lost"
        return "open"


def plant_loop(folder: Path | str, *, as_of: dt.date, seed: int = 7, scale: int = 1) -> dict[str, Any]:
    """Write the planted review history and its ground truth into the demo folder; returns counts."""
    folder = Path(folder)
    history: list[list[str]] = []
    truth: list[list[str]] = []
    if scale == 1:
        _plant(_Raw(folder), as_of, seed, history, truth)
    for name, cols, rows in ((HISTORY_FILE, HISTORY_COLUMNS, history), (TRUTH_FILE, TRUTH_COLUMNS, truth)):
        with open(folder / name, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(cols)
            w.writerows(rows)
    return {"planted_items": len(history)}


def _plant(raw: _Raw, as_of: dt.date, seed: int, history: list[list[str]], truth: list[list[str]]) -> None:
    rng = random.Random(f"{seed}:loop")
    dates = flag_dates(as_of)
    used: set[str] = set()
    opp_ids = sorted(raw.opps)
    for r_i, (rule, (approved, worked_n, dismissed, undecided)) in enumerate(PLAN.items()):
        aim = RULE_AIMS[rule]
        # meeting_cadence_drop's items sit on the last two dates: its dismissals fall in the last four weeks.
        rule_dates = dates[-2:] if rule == "meeting_cadence_drop" else dates
        wanted = [("approve", True)] * worked_n + [("approve", False)] * (approved - worked_n)
        wanted += [("dismiss", None)] * dismissed + [("none", None)] * undecided
        # Spread decisions over the dates round-robin so each rule's dismissal share is even over time.
        order = list(range(len(wanted)))
        rng.shuffle(order)
        reasons = DISMISS_REASONS.get(rule, DISMISS_REASONS["_other"])
        n_dismissed = 0
        per_kind: dict[str, int] = defaultdict(int)
        for k, idx in enumerate(order):
            decision, want_worked = wanted[idx]
            # Each kind of decision is spread evenly over the dates (oldest first), so a rule's dismissal share is
            # about the same in any window: only meeting_cadence_drop passes 30% in the last four weeks.
            flagged = rule_dates[per_kind[decision] % len(rule_dates)]
            per_kind[decision] += 1
            check = _add_business_days(flagged, CHECK_BUSINESS_DAYS)
            start = rng.randrange(len(opp_ids))
            chosen = None
            for step in range(len(opp_ids)):
                oid = opp_ids[(start + step) % len(opp_ids)]
                if oid in used or not raw.open_through(raw.opps[oid], flagged, check):
                    continue
                if want_worked is None or raw.worked(aim, oid, flagged, check) == want_worked:
                    chosen = oid
                    break
            if chosen is None:
                raise RuntimeError(f"demo plant_loop: no deal for {rule} {decision} worked={want_worked} on {flagged}")
            used.add(chosen)
            opp = raw.opps[chosen]
            rep = opp["owner_rep_id"]
            key = f"loop-{r_i + 1}-{k + 1:02d}"
            decided_at = "" if decision == "none" else f"{_add_business_days(flagged, 1).isoformat()}T16:00:00+00:00"
            reason = ""
            if decision == "dismiss":
                reason = reasons[n_dismissed % len(reasons)]
                n_dismissed += 1
            history.append([key, chosen, rule, flagged.isoformat(), raw.manager.get(rep, ""), rep, decision,
                            decided_at, reason])
            truth.append([key, chosen, rule, flagged.isoformat(), decision, aim,
                          "true" if raw.worked(aim, chosen, flagged, check) else "false", raw.final_result(chosen)])


def planted_effectiveness(folder: Path | str) -> dict[str, float]:
    """rule -> share of its approved planted items that worked (the ground truth the outcome check must meet)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in _read(Path(folder), TRUTH_FILE):
        if r["decision"] == "approve":
            counts[r["rule_id"]][0] += r["worked"] == "true"
            counts[r["rule_id"]][1] += 1
    return {rule: w / n for rule, (w, n) in counts.items() if n}


def seed_review_history(ledger: Any, folder: Path | str, *, run_prefix: str = "demo-history") -> int:
    """Write the planted history into ``ledger`` (digests per manager and flag date, items, decisions at their
    planted times). Idempotent: a second call adds nothing. Returns the number of items written."""
    from agents.ledger.ledger import Ledger

    rows = list(_read(Path(folder), HISTORY_FILE))
    clock_now: list[dt.datetime] = [dt.datetime.now(dt.timezone.utc)]
    timed = Ledger(ledger.engine, delegates=None, clock=lambda: clock_now[0])
    written = 0
    digests: dict[tuple[str, str], str] = {}
    for r in rows:
        flagged = dt.date.fromisoformat(r["flagged_on"])
        item_id = f"{run_prefix}-{r['item_key']}"
        if timed.get_item(item_id) is not None:
            continue
        clock_now[0] = dt.datetime.combine(flagged, dt.time(7, 0), tzinfo=dt.timezone.utc)
        key = (r["manager_id"], r["flagged_on"])
        if key not in digests:
            digest_id = f"{run_prefix}-{r['manager_id']}-{r['flagged_on']}"
            if timed.get_digest(digest_id) is None:
                timed.create_digest(f"{run_prefix}-{r['flagged_on']}", r["manager_id"], flagged, digest_id=digest_id,
                                    actor="demo-history")
            digests[key] = digest_id
        timed.add_item(
            digests[key], flag_id=f"{r['rule_id']}:{r['opportunity_id']}:{r['flagged_on']}", rule_id=r["rule_id"],
            severity="medium", opportunity_id=r["opportunity_id"], rep_id=r["rep_id"], manager_id=r["manager_id"],
            item_id=item_id, actor="demo-history",
            draft={"action": f"Planted demo action for {r['rule_id']}", "planted": True},
            evidence={"planted": True, "rule_id": r["rule_id"], "opportunity_id": r["opportunity_id"]},
        )
        if r["decision"] in ("approve", "dismiss"):
            clock_now[0] = dt.datetime.fromisoformat(r["decided_at"])
            timed.record_decision(item_id, r["decision"], r["manager_id"], "cli", reason=r["reason"] or None)
        written += 1
    return written
