"""Deterministic demo CRM: one CSV per canonical raw object, plus planted risks and their ground truth.

The world is generated one rep's book at a time and streamed to disk, so
memory stays flat at any scale. Each rep draws from its own
``random.Random(f"{seed}:{rep_index}")``; no wall clock is read anywhere, so
the same (seed, scale, as_of) always gives byte-identical files.

Output folder:
    <object>.csv for every object in connectors.schema.RAW_OBJECTS
    ground_truth.csv   entity_type,entity_id,risk,planted,detail
    manifest.json      seed, scale, as_of, row counts, risk parameters
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import json
import math
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from connectors.demo.plant_scorecards import plant_scorecards
from connectors.demo import plant_coach, words
from connectors.demo.params import (
    ADVERSARIAL_CYCLE,
    ADVERSARIAL_SLOT,
    CLOSED_LOST,
    CLOSED_WON,
    GENERATOR_VERSION,
    HISTORY_DAYS,
    INACTIVE_REPS,
    OPEN_DEALS_RANGE,
    OPEN_STAGES,
    OPPORTUNITY_RISKS,
    OVERLOADED_OPEN_DEALS_RANGE,
    OVERLOADED_REP,
    PLANT_CYCLE,
    REPS_PER_MANAGER,
    RISK_DEFINITIONS,
    SEGMENT_NAMES,
    SEGMENTS,
    STAGES,
    Segment,
    closed_stints,
    stage_baselines,
)
from connectors.demo.rules import DAY, DealFacts, evaluate, health_violations
from connectors.schema import RAW_OBJECTS
from sales_supervisor.settings import DEMO_AS_OF

GROUND_TRUTH_COLUMNS = ("entity_type", "entity_id", "risk", "planted", "detail")
OUTPUT_FILES = tuple(f"{name}.csv" for name in RAW_OBJECTS) + ("ground_truth.csv",)
OUTPUT_FILES += ("loop_review_history.csv", "loop_ground_truth.csv")  # connectors/demo/plant_loop.py

Progress = Callable[[str, int], None]

_BIZ_START, _BIZ_MINUTES = 13 * 60, 9 * 60  # activities 13:00-21:59 UTC
_MINUTE_STR = tuple(f"T{m // 60:02d}:{m % 60:02d}:00" for m in range(DAY))


@lru_cache(maxsize=None)
def _day_str(ordinal: int) -> str:
    return dt.date.fromordinal(ordinal).isoformat()


def _ts(key: int) -> str:
    d, m = divmod(key, DAY)
    return _day_str(d) + _MINUTE_STR[m]


def _amount(x: float) -> str:
    return f"{x:.2f}"


def _bool(b: bool) -> str:
    return "true" if b else "false"


def _quarter_start(d: dt.date) -> dt.date:
    return dt.date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)


@dataclass
class _Account:
    account_id: str
    name: str
    dms: list[str]
    others: list[str]


@dataclass
class _Deal:
    account: _Account
    name: str
    amount0: float
    amount: float
    created: int
    entries: list[tuple[str, int]]  # (stage, entered key), in order
    close_date: int  # ordinal
    closed: int | None = None
    is_won: bool = False
    close_changes: list[tuple[int, int, int]] = field(default_factory=list)
    amount_changes: list[tuple[float, float, int]] = field(default_factory=list)
    activities: list[tuple[int, str, tuple[str, ...]]] = field(default_factory=list)
    next_step: str = ""
    risk: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


class _Sink:
    """One csv writer per output file, opened once for the whole run; counts rows."""

    def __init__(self, folder: Path) -> None:
        self._files, self._writers, self.counts = {}, {}, {}
        headers = {name: obj.field_names for name, obj in RAW_OBJECTS.items()}
        headers["ground_truth"] = list(GROUND_TRUTH_COLUMNS)
        for name, header in headers.items():
            f = open(folder / f"{name}.csv", "w", newline="", encoding="utf-8", buffering=1 << 20)
            w = csv.writer(f, lineterminator="\n")
            w.writerow(header)
            self._files[name], self._writers[name], self.counts[name] = f, w, 0

    def write(self, name: str, rows: list) -> None:
        if rows:
            self._writers[name].writerows(rows)
            self.counts[name] += len(rows)

    def close(self) -> None:
        for f in self._files.values():
            f.close()


def generate_demo_crm(
    out_dir: Path,
    *,
    seed: int = 7,
    scale: int = 1,
    as_of: dt.date = DEMO_AS_OF,
    progress: Progress | None = None,
) -> dict:
    """Write the demo CRM into ``out_dir`` (replacing it) and return its manifest.

    Files are written into a temporary sibling folder that is renamed into
    place only when complete, so a crash never leaves a folder that looks whole.
    """
    if scale < 1:
        raise ValueError("scale must be >= 1")
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        manifest = _World(seed, scale, as_of, progress).write(tmp)
        if out_dir.exists():
            old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old)
        else:
            tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


class _World:
    def __init__(self, seed: int, scale: int, as_of: dt.date, progress: Progress | None) -> None:
        self.seed, self.scale, self.as_of = seed, scale, as_of
        self.progress = progress
        self.A = as_of.toordinal()  # as_of day
        self.AK = self.A * DAY  # as_of midnight key
        self.H = self.A - HISTORY_DAYS  # history start day
        self.baselines = stage_baselines()
        self.n = {"acc": 0, "con": 0, "opp": 0, "sh": 0, "fh": 0, "act": 0, "open": 0}
        self.planted = {r: 0 for r in (*OPPORTUNITY_RISKS, "rep_overload")}
        self.secondary = {r: 0 for r in OPPORTUNITY_RISKS}
        self.adversarial: list[str] = []

    def _id(self, kind: str, width: int) -> str:
        self.n[kind] += 1
        return f"{kind}-{self.n[kind]:0{width}d}"

    # ------------------------------------------------------------------ driver

    def write(self, folder: Path) -> dict:
        sink = _Sink(folder)
        try:
            sink.write("stages", [[s, o, _bool(c), _bool(w)] for s, o, c, w in STAGES])
            managers = []
            for i in range(3 * self.scale):
                rng = random.Random(f"{self.seed}:manager:{i + 1}")
                first, last = rng.choice(words.FIRST_NAMES), rng.choice(words.LAST_NAMES)
                managers.append(
                    [f"mgr-{i + 1:04d}", f"{first} {last}", f"{first}.{last}.m{i + 1}@demo-sales.example".lower(),
                     f"UMGR{i + 1:06d}"]
                )
            sink.write("managers", managers)
            rep_index = 0
            for block in range(self.scale):
                for s, seg_name in enumerate(SEGMENT_NAMES):
                    manager_id = managers[3 * block + s][0]
                    for j in range(REPS_PER_MANAGER):
                        rep_index += 1
                        self._rep(sink, rep_index, SEGMENTS[seg_name], manager_id, j)
                        if self.progress:
                            self.progress("reps", rep_index)
        finally:
            sink.close()
        self.planted.update(plant_scorecards(folder, self.as_of, self.seed, sink.counts))  # issue 14: rep-level cases
        total = sum(sink.counts.values())
        if self.progress:
            self.progress("rows", total)
        manifest = self._manifest(sink.counts)
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        from connectors.demo.plant_loop import plant_loop  # issue 17: planted review history (reads the files above)

        plant_loop(folder, as_of=self.as_of, seed=self.seed, scale=self.scale)
        return manifest

    def _manifest(self, counts: dict[str, int]) -> dict:
        params = copy.deepcopy(RISK_DEFINITIONS)
        params["stalled_in_stage"]["baselines"] = copy.deepcopy(self.baselines)
        params["planted_share_per_risk"] = round(1 / PLANT_CYCLE, 4)
        return {
            "generator": "connectors.demo",
            "generator_version": GENERATOR_VERSION,
            "seed": self.seed,
            "scale": self.scale,
            "as_of": self.as_of.isoformat(),
            "history_start": dt.date.fromordinal(self.H).isoformat(),
            "files": {f"{name}.csv": n for name, n in counts.items()},
            "risk_parameters": params,
            "planted_counts": dict(self.planted),
            "secondary_label_counts": dict(self.secondary),
            "adversarial_next_step_opportunities": list(self.adversarial),
        }

    # ------------------------------------------------------------------ one rep

    def _rep(self, sink: _Sink, rep_index: int, seg: Segment, manager_id: str, j: int) -> None:
        rng = random.Random(f"{self.seed}:{rep_index}")
        rep_id = f"rep-{rep_index:04d}"
        first, last = rng.choice(words.FIRST_NAMES), rng.choice(words.LAST_NAMES)
        active = (seg.name, j) not in INACTIVE_REPS
        hired = self.H - rng.randint(30, 1500)
        end_day = self.A if active else self.A - rng.randint(150, 300)
        sink.write(
            "reps",
            [[rep_id, f"{first} {last}", f"{first}.{last}.{rep_index}@demo-sales.example".lower(),
              f"UREP{rep_index:06d}", manager_id, seg.name, _day_str(hired), _bool(active)]],
        )

        # Quotas: every quarter of the history (and the current one) while employed.
        q = _quarter_start(dt.date.fromordinal(self.H))
        last_q = _quarter_start(dt.date.fromordinal(end_day if active else end_day - 1))
        factor = rng.uniform(0.9, 1.1)
        quotas, k = [], 0
        while q <= last_q:
            quotas.append([rep_id, q.isoformat(), _amount(round(seg.quarterly_quota * factor * 1.02**k, -3))])
            k += 1
            q = dt.date(q.year + (q.month == 10), (q.month + 2) % 12 + 1, 1)
        sink.write("quotas", quotas)

        accounts = self._accounts(sink, rng, seg)

        # Closed history.
        window = end_day - self.H
        n_closed = round(seg.closed_per_rep * rng.uniform(0.88, 1.12) * window / HISTORY_DAYS)
        win_rate = seg.win_rate + rng.uniform(-0.03, 0.03)
        deals = [self._closed_deal(rng, seg, accounts, win_rate, end_day) for _ in range(n_closed)]

        # Open pipeline, with planted risks in a fixed rotation over the global open-deal index.
        open_deals: list[_Deal] = []
        if active:
            lo, hi = OVERLOADED_OPEN_DEALS_RANGE if (seg.name, j) == OVERLOADED_REP else OPEN_DEALS_RANGE
            n_open = rng.randint(lo, hi)
            slots = []
            for i in range(n_open):
                idx = self.n["open"] + i
                slot = idx % PLANT_CYCLE
                risk = OPPORTUNITY_RISKS[slot] if slot < len(OPPORTUNITY_RISKS) else None
                slots.append((risk, idx % ADVERSARIAL_CYCLE == ADVERSARIAL_SLOT))
            self.n["open"] += n_open
            rng.shuffle(slots)
            for risk, adversarial in slots:
                d = self._open_deal(rng, seg, accounts, risk)
                if adversarial:
                    d.next_step = rng.choice(words.ADVERSARIAL_NEXT_STEPS)
                open_deals.append(d)

        deals.sort(key=lambda d: d.created)
        open_deals.sort(key=lambda d: d.created)
        self._segment = seg.name  # loss reasons differ by segment (plant_coach)
        self._emit(sink, rep_id, deals + open_deals)

        if len(open_deals) >= RISK_DEFINITIONS["rep_overload"]["min_open_deals"]:
            planted = (seg.name, j) == OVERLOADED_REP
            if planted:
                self.planted["rep_overload"] += 1
            sink.write("ground_truth", [["rep", rep_id, "rep_overload", _bool(planted), f"{len(open_deals)} open deals"]])

    def _accounts(self, sink: _Sink, rng: random.Random, seg: Segment) -> list[_Account]:
        accounts, acc_rows, con_rows = [], [], []
        for _ in range(round(seg.accounts_per_rep * rng.uniform(0.85, 1.15))):
            acc_id = self._id("acc", 6)
            industry = rng.choice(words.INDUSTRIES)
            name = f"{rng.choice(words.COMPANY_PREFIXES)} {rng.choice(words.COMPANY_NOUNS[industry])}"
            if rng.random() < 0.5:
                name += f" {rng.choice(words.COMPANY_SUFFIXES)}"
            lo, hi = seg.employees_range
            employees = round(math.exp(rng.uniform(math.log(lo), math.log(hi))))
            tags = []
            if seg.name == "enterprise" and rng.random() < 0.10:
                tags.append("Strategic")
            if rng.random() < 0.25:
                tags.append(rng.choice(words.ACCOUNT_TAGS))
            acc_rows.append([acc_id, name, seg.name, industry, employees, ";".join(tags)])
            domain = "".join(ch for ch in name.lower() if ch.isalnum())[:24] + ".example"

            n_contacts = rng.randint(*seg.contacts_range)
            roles = ["decision_maker"]
            if n_contacts >= 4 and rng.random() < 0.25:
                roles.append("decision_maker")
            while len(roles) < n_contacts:
                roles.append(rng.choices(words.NON_DM_ROLES, words.NON_DM_ROLE_WEIGHTS)[0])
            dms, others = [], []
            for role in roles:
                con_id = self._id("con", 7)
                cf, cl = rng.choice(words.FIRST_NAMES), rng.choice(words.LAST_NAMES)
                con_rows.append(
                    [con_id, acc_id, f"{cf} {cl}", rng.choice(words.TITLES[role]), role, f"{cf}.{cl}@{domain}".lower()]
                )
                (dms if role == "decision_maker" else others).append(con_id)
            accounts.append(_Account(acc_id, name, dms, others))
        sink.write("accounts", acc_rows)
        sink.write("contacts", con_rows)
        return accounts

    # ------------------------------------------------------------------ deals

    def _new_deal(self, rng: random.Random, seg: Segment, accounts: list[_Account]) -> tuple[_Account, str, float]:
        account = rng.choice(accounts)
        lo, hi = seg.amount_range
        amount = round(math.exp(rng.uniform(math.log(lo), math.log(hi))) / 50) * 50
        return account, f"{account.name} - {rng.choice(words.PRODUCTS)}", float(amount)

    def _closed_deal(
        self, rng: random.Random, seg: Segment, accounts: list[_Account], win_rate: float, end_day: int
    ) -> _Deal:
        won = rng.random() < win_rate
        stints = [max(1, round(s * DAY)) for s in closed_stints(rng, seg, won)]
        total = sum(stints)
        lo, hi = self.H * DAY + total, end_day * DAY - 1
        if lo >= hi:  # too long for the window: squeeze (rare)
            f = (hi - self.H * DAY - DAY) / total
            stints = [max(1, int(s * f)) for s in stints]
            total = sum(stints)
            lo = self.H * DAY + total
        closed = rng.randint(lo, hi)
        created = closed - total
        entries, t = [], created
        for stage, s in zip(OPEN_STAGES, stints):
            entries.append((stage, t))
            t += s
        entries.append((CLOSED_WON if won else CLOSED_LOST, closed))
        account, name, amount = self._new_deal(rng, seg, accounts)
        d = _Deal(account, name, amount, amount, created, entries, closed // DAY, closed, won)

        # Close-date pushes: lost deals slip more often.
        dur_days = closed // DAY - created // DAY
        n_push = rng.choices((0, 1, 2), (0.70, 0.22, 0.08))[0] if won else rng.choices((0, 1, 2, 3), (0.4, 0.3, 0.2, 0.1))[0]
        if n_push and dur_days >= 3 * n_push + 3:
            c0 = created // DAY + max(1, int(dur_days * rng.uniform(0.35, 0.75)))
            cn = closed // DAY
            if cn - c0 - 1 >= n_push - 1:
                dates = [c0, *sorted(rng.sample(range(c0 + 1, cn), n_push - 1)), cn]
                times = sorted(rng.randint(created + 1, closed - 1) for _ in range(n_push))
                d.close_changes = [(dates[i], dates[i + 1], times[i]) for i in range(n_push)]
        if rng.random() < (0.15 if won else 0.25):
            if won:
                f = rng.uniform(0.8, 1.25)
            else:
                f = rng.uniform(0.5, 0.8) if rng.random() < 0.5 else rng.uniform(1.3, 1.8)
            lo_amt, hi_amt = seg.amount_range
            new = float(min(max(round(d.amount0 * f / 10) * 10, lo_amt), hi_amt))
            d.amount_changes = [(d.amount0, new, rng.randint(created + 1, closed - 1))]
            d.amount = new

        # Activities: lost deals engage decision makers less, and more often go quiet before the end.
        proposal = entries[3][1] if len(entries) > 4 else closed
        engaged = rng.random() < (0.92 if won else 0.45)
        dm_from = created + int((proposal - created) * rng.uniform(0.0, 0.8)) if engaged else None
        events = self._events(rng, seg, created, closed, 1.0 if won else 0.75)
        if not won:
            if rng.random() < 0.5:
                gap = rng.uniform(21, 45) * DAY
                if closed - created > gap + 7 * DAY:
                    events = [e for e in events if e[0] < closed - gap]
            if rng.random() < 0.25:
                events = [e for e in events if not (e[1] == "meeting" and e[0] >= closed - 28 * DAY)]
        d.activities = [(k, typ, self._link(rng, d.account, typ, dm_from is not None and k >= dm_from)) for k, typ in events]
        return d

    def _open_deal(self, rng: random.Random, seg: Segment, accounts: list[_Account], risk: str | None) -> _Deal:
        A, AK = self.A, self.AK
        b = self.baselines[seg.name]
        meds = seg.stage_medians

        # Current stage and days in it.
        if risk == "no_decision_maker":
            k = rng.choice((4, 5))
        elif risk == "meeting_cadence_drop":
            k = rng.choice((3, 4, 5))
        elif risk in ("no_recent_activity", "close_date_slipped", "past_due", "amount_swing"):
            k = rng.choices((2, 3, 4, 5), (0.3, 0.3, 0.22, 0.18))[0]
        else:
            k = rng.choices((1, 2, 3, 4, 5), (0.25, 0.24, 0.21, 0.17, 0.13))[0]
        stage = OPEN_STAGES[k - 1]
        if risk == "stalled_in_stage":
            in_stage = rng.uniform(3.5, 4.8) * b[stage]["p75"]
        else:
            in_stage = rng.uniform(0.05, 0.6) * b[stage]["p50"]

        gap = overdue = 0
        min_age = 0.0
        if risk == "no_recent_activity":
            gap = rng.randint(25, 50)
            min_age = gap + rng.uniform(7, 30)
        elif risk == "meeting_cadence_drop":
            min_age = rng.uniform(100, 140)
        elif risk == "past_due":
            overdue = rng.randint(5, 40)
            min_age = overdue + rng.uniform(10, 30)
        elif risk == "close_date_slipped":
            min_age = rng.uniform(35, 90)
        elif risk == "amount_swing":
            min_age = rng.uniform(35, 70)
        prior = [meds[i] * rng.lognormvariate(0.0, 0.3) for i in range(k - 1)]
        if prior and sum(prior) + in_stage < min_age:
            f = (min_age - in_stage) / sum(prior)
            prior = [p * f for p in prior]
        if prior and sum(prior) + in_stage > HISTORY_DAYS - 30:
            f = (HISTORY_DAYS - 30 - in_stage) / sum(prior)
            prior = [p * f for p in prior]

        entered = AK - max(1, round(in_stage * DAY))
        starts = [entered]
        for p in reversed(prior):
            starts.append(starts[-1] - max(1, round(p * DAY)))
        starts.reverse()
        created = starts[0]
        entries = list(zip(OPEN_STAGES[:k], starts))
        account, name, amount = self._new_deal(rng, seg, accounts)

        remaining = sum(meds[k:]) + max(0.0, meds[k - 1] - in_stage)
        close_date = A + max(10, round(remaining * rng.uniform(0.8, 1.4)))
        d = _Deal(account, name, amount, amount, created, entries, close_date, risk=risk)
        d.next_step = rng.choice(words.NEXT_STEPS)

        if risk == "past_due":
            d.close_date = A - overdue
        elif risk == "close_date_slipped":
            n = rng.randint(2, 4)
            dates = [created // DAY + rng.randint(15, 45)]
            for _ in range(n):
                dates.append(dates[-1] + rng.randint(10, 40))
            if dates[-1] < A + 14:
                dates[-1] = A + rng.randint(14, 45)
            times = sorted(rng.randint(created + DAY, AK - DAY) for _ in range(n))
            d.close_changes = [(dates[i], dates[i + 1], times[i]) for i in range(n)]
            d.close_date = dates[-1]
        elif risk == "amount_swing":
            # A >= 40% swing that stays inside the segment's amount range.
            lo_amt, hi_amt = seg.amount_range
            up = amount * 1.45 <= hi_amt and (amount * 0.6 < lo_amt or rng.random() < 0.5)
            f = rng.uniform(1.45, min(2.0, hi_amt / amount)) if up else rng.uniform(max(0.4, lo_amt / amount), 0.6)
            new = float(round(amount * f / 10) * 10)
            d.amount_changes = [(amount, new, AK - rng.randint(3 * DAY, 25 * DAY))]
            d.amount = new
        elif AK - created > 130 * DAY and rng.random() < 0.08:
            lo_amt, hi_amt = seg.amount_range
            new = float(min(max(round(amount * rng.uniform(0.85, 1.2) / 10) * 10, lo_amt), hi_amt))
            d.amount_changes = [(amount, new, rng.randint(created + DAY, AK - 100 * DAY))]
            d.amount = new

        # Decision-maker engagement: healthy deals engage one by the Proposal stage.
        dm_from = None
        if risk != "no_decision_maker":
            proposal = entries[3][1] if k >= 4 else AK
            if k >= 4 or rng.random() < 0.6:
                dm_from = created + int((proposal - created) * rng.uniform(0.0, 0.7))

        # Activities.
        end = AK - gap * DAY if risk == "no_recent_activity" else AK
        events = self._events(rng, seg, created, end, 0.5 if risk == "stalled_in_stage" else 1.0)
        def act(key: int, typ: str) -> list:
            return [key, typ, self._link(rng, account, typ, dm_from is not None and key >= dm_from)]

        acts = [act(key, typ) for key, typ in events]
        if dm_from is not None and k >= 4:
            # Engaged by Proposal, and (for a deal gone quiet) before it went quiet.
            hi = min(entries[3][1], end - DAY)
            if not any(a[0] <= hi and set(a[2]) & set(account.dms) for a in acts):
                lo = dm_from if dm_from < hi - DAY else created
                key = self._key_between(rng, lo, hi)
                acts.append([key, "meeting", (rng.choice(account.dms), rng.choice(account.others))])

        if risk == "no_recent_activity":
            acts.append(act(self._key_on(rng, A - gap, created, AK), "email"))
            acts = [a for a in acts if a[0] < (A - gap + 1) * DAY]
        else:
            if risk == "meeting_cadence_drop":
                acts = [a for a in acts if not (a[1] == "meeting" and a[0] >= (A - 31) * DAY)]
                earlier = sum(1 for a in acts if a[1] == "meeting" and (A - 82) * DAY <= a[0])
                day = A - 82
                while earlier < 10 and day < A - 31:
                    for _ in range(rng.randint(1, 2)):
                        kk = self._key_on(rng, day + rng.randint(0, 5), created, (A - 31) * DAY)
                        acts.append(act(kk, "meeting"))
                        earlier += 1
                    day += 7
                for typ in ("call", "email"):
                    kk = self._key_on(rng, A - rng.randint(1, 4), created, AK)
                    acts.append(act(kk, typ))
            if not any(a[0] >= (A - 4) * DAY for a in acts):
                typ = rng.choice(("call", "email"))
                kk = self._key_on(rng, A - rng.randint(1, 4), created, AK)
                acts.append(act(kk, typ))
            if risk != "meeting_cadence_drop" and AK - created >= 35 * DAY:
                earlier = sum(1 for a in acts if a[1] == "meeting" and (A - 85) * DAY <= a[0] < (A - 27) * DAY)
                recent = sum(1 for a in acts if a[1] == "meeting" and a[0] >= (A - 27) * DAY)
                while recent < 0.375 * earlier:
                    kk = self._key_on(rng, A - rng.randint(2, 25), created, AK)
                    acts.append(act(kk, "meeting"))
                    recent += 1
        acts.sort(key=lambda a: a[0])
        d.activities = [(a[0], a[1], a[2]) for a in acts]

        facts = self._facts(d, seg.name)
        met = evaluate(facts, A, self.baselines)
        if risk is None:
            problems = health_violations(facts, A, self.baselines)
            if met or problems:
                raise RuntimeError(f"demo generator bug: healthy deal is not healthy: {met} {problems}")
        elif risk not in met:
            raise RuntimeError(f"demo generator bug: planted {risk} not met: {met}")
        d.labels = met
        return d

    def _facts(self, d: _Deal, segment: str) -> DealFacts:
        dms = set(d.account.dms)
        return DealFacts(
            opportunity_id="",
            segment=segment,
            stage=d.entries[-1][0],
            created=d.created,
            stage_entered=d.entries[-1][1],
            close_date=d.close_date,
            close_date_changes=d.close_changes,
            amount_changes=d.amount_changes,
            activities=[(k, typ, any(c in dms for c in cs)) for k, typ, cs in d.activities],
        )

    # ------------------------------------------------------------------ activities

    @staticmethod
    def _key_on(rng: random.Random, day: int, lo: int, hi: int) -> int:
        """A business-hours key on ``day`` (weekends move to Friday), clamped into [lo, hi)."""
        wd = (day + 6) % 7
        if wd >= 5:
            day -= wd - 4
        key = day * DAY + _BIZ_START + rng.randrange(_BIZ_MINUTES)
        return min(max(key, lo + 1), hi - 1)

    def _key_between(self, rng: random.Random, lo: int, hi: int) -> int:
        if hi - lo < 2 * DAY:
            return min(lo + rng.randint(1, max(1, (hi - lo) // 2)), hi - 1) if hi - lo > 1 else lo
        return self._key_on(rng, rng.randint(lo // DAY + 1, hi // DAY - 1), lo, hi)

    @staticmethod
    def _events(rng: random.Random, seg: Segment, start: int, end: int, mult: float) -> list[tuple[int, str]]:
        """Activity (key, type) pairs in [start, end): meetings roughly weekly, calls/emails more often."""
        out: list[tuple[int, str]] = []
        span = (end - start) / DAY
        if span <= 0:
            return out
        s0 = start / DAY
        rand = rng.random

        def add(t: float, typ: str) -> None:
            day = int(t)
            wd = (day + 6) % 7
            if wd >= 5:
                day -= wd - 4
            key = day * DAY + _BIZ_START + int(rand() * _BIZ_MINUTES)
            if start <= key < end:
                out.append((key, typ))

        rate = seg.meetings_per_week * mult
        if rate > 0:
            step = 7.0 / rate
            t = s0 + rng.uniform(0.2, 1.0) * step
            while t < s0 + span:
                add(t, "meeting")
                t += step * rng.uniform(0.55, 1.45)
        for typ, per_week in (("call", seg.calls_per_week), ("email", seg.emails_per_week), ("task", seg.tasks_per_week)):
            n = int(per_week * mult * span / 7 * rng.uniform(0.7, 1.3) + rand())
            for _ in range(n):
                add(s0 + rand() * span, typ)
        out.sort()
        return out

    @staticmethod
    def _link(rng: random.Random, account: _Account, typ: str, dm_ok: bool) -> tuple[str, ...]:
        """1-2 contacts of the account; decision makers only once the deal has engaged one."""
        rand = rng.random
        others = account.others
        n = len(others)
        if dm_ok and rand() < (0.45 if typ == "meeting" else 0.2):
            dms = account.dms
            dm = dms[int(rand() * len(dms))]
            return (dm, others[int(rand() * n)]) if rand() < 0.35 else (dm,)
        i = int(rand() * n)
        if n > 1 and rand() < 0.3:
            j = int(rand() * (n - 1))
            return (others[i], others[j + (j >= i)])
        return (others[i],)

    # ------------------------------------------------------------------ rows

    def _emit(self, sink: _Sink, rep_id: str, deals: list[_Deal]) -> None:
        opps, shs, fhs, acts, links, gt = [], [], [], [], [], []
        subjects = words.SUBJECTS
        n_act = self.n["act"]
        for d in deals:
            opp_id = self._id("opp", 6)
            stage = d.entries[-1][0]
            opps.append([
                opp_id, d.account.account_id, rep_id, d.name, stage, _amount(d.amount), _ts(d.created),
                _day_str(d.close_date), _bool(d.closed is not None), _bool(d.is_won),
                _ts(d.closed) if d.closed is not None else "", d.next_step, "",
                plant_coach.loss_reason(opp_id, self._segment, d.entries, d.closed is not None and not d.is_won),
            ])
            for st, key in d.entries:
                shs.append([self._id("sh", 8), opp_id, st, _ts(key)])
            changes = [(key, "close_date", _day_str(o), _day_str(n)) for o, n, key in d.close_changes]
            changes += [(key, "amount", _amount(o), _amount(n)) for o, n, key in d.amount_changes]
            changes.sort()
            for key, fname, o, n in changes:
                fhs.append([self._id("fh", 8), opp_id, fname, o, n, _ts(key)])
            acc_id = d.account.account_id
            for key, typ, contacts in d.activities:
                n_act += 1
                act_id = f"act-{n_act:08d}"
                subj = subjects[typ]
                acts.append([act_id, opp_id, acc_id, rep_id, typ, _ts(key), subj[key % len(subj)]])
                for c in contacts:
                    links.append([act_id, c])
            if d.closed is None:
                if d.next_step in words.ADVERSARIAL_NEXT_STEPS:
                    self.adversarial.append(opp_id)
                for risk in OPPORTUNITY_RISKS:
                    if risk in d.labels:
                        primary = risk == d.risk
                        gt.append(["opportunity", opp_id, risk, _bool(primary), d.labels[risk]])
                        if primary:
                            self.planted[risk] += 1
                        else:
                            self.secondary[risk] += 1
        self.n["act"] = n_act
        sink.write("opportunities", opps)
        sink.write("stage_history", shs)
        sink.write("field_history", fhs)
        sink.write("activities", acts)
        sink.write("activity_contacts", links)
        sink.write("ground_truth", gt)
