"""The offline question grammar: plain-language questions to governed query plans, deterministically.

A question is read as a handful of recognised phrases; every word must belong to
one of them (or be a filler word such as "the", "show", "how"), otherwise the
question is refused with the words that were not understood. Nothing is guessed.

Grammar (case-insensitive; README "Questions through the semantic layer"):

* metric: a metric's name (``win_rate``) or label ("win rate"), or a synonym:
  win rate; won / lost / closed deals (wins, losses); open deals; pipeline,
  open pipeline; cycle length, sales cycle (median, p50 / p75); stage
  duration, time in stage; stage win rate; activities, meetings; meetings /
  activities per week; "how did ... do", "performance" = won deals, closed
  deals and win rate.
* group-by: "by | per | for each | broken down by" + segment, stage, rep,
  manager, team, account, industry, activity type, deal, day, week, month,
  quarter, year.
* filters: a segment (smb, mid market, enterprise; "the enterprise team" or
  "enterprise reps" is the reps' segment, otherwise the deal's), a stage by
  name ("in Negotiation"), "in the <industry> industry", an id ("rep rep-0002",
  "manager mgr-0001", "account acc-000001", "deal opp-000248"), "my team" (the
  asker's team, when the asker is a manager).
* time (relative to the as-of date): today, this / last week, month, quarter,
  year; month / quarter / year to date; last | past N days, weeks, months;
  since YYYY-MM-DD; between YYYY-MM-DD and YYYY-MM-DD; in Q1-Q4 [YYYY];
  in YYYY; in <month name> [YYYY].
* ranking: top | bottom N (needs a group-by), highest / lowest.
* stuck deals: "deals stuck | stalled | sitting in <stage> for more than N
  days | weeks | months" lists the open deals whose current stage is <stage>
  and which entered it more than N days before the as-of date (metric
  open_deals_in_stage by deal, with the day each entered the stage).

Refused, with the reason: forecasts ("will", "predict", "next quarter"),
write requests (send, update, delete, approve, ...), SQL, "why" questions,
and any word outside the grammar.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from agents.ask.catalog import Catalog
from agents.ask.plan import Filter, QueryPlan

# The canonical pipeline stages (the marts' stage names); a CRM with other stage
# names passes its own list.
DEFAULT_STAGES = ("Prospecting", "Discovery", "Qualification", "Proposal", "Negotiation", "Closed Won", "Closed Lost")
SEGMENTS = {"enterprise": "enterprise", "mid market": "mid_market", "mid-market": "mid_market", "midmarket": "mid_market",
            "mid_market": "mid_market", "smb": "smb", "small business": "smb"}

HOW_DID = ("won_deals", "closed_deals", "win_rate")

# Longest phrases first: "stage win rate" before "win rate".
METRIC_SYNONYMS: list[tuple[str, tuple[str, ...]]] = [
    (r"stage win rates?", ("stage_win_rate",)),
    (r"win rates?|win %|win percentage|close rate", ("win_rate",)),
    (r"(?:median |p50 )?(?:sales )?cycle (?:length|time)s? (?:p50 and p75|p50 and 75th)", ("cycle_length_p50", "cycle_length_p75")),
    (r"(?:p75|75th percentile) (?:sales )?cycle(?: length| time)?s?|(?:sales )?cycle (?:length|time)s? p75", ("cycle_length_p75",)),
    (r"(?:median |p50 )?(?:sales cycles?|cycle (?:length|time)s?)(?: p50)?", ("cycle_length_p50",)),
    (r"(?:p75|75th percentile) (?:stage duration|time in stage)|stage durations? p75", ("stage_duration_p75",)),
    (r"(?:median |p50 )?(?:stage durations?|time in stages?|days in stages?)(?: p50)?", ("stage_duration_p50",)),
    (r"meetings per week", ("meetings_per_week",)),
    (r"activities per week|activity rate", ("activities_per_week",)),
    (r"open pipeline(?: amount)?|pipeline(?: amount| value)?", ("open_pipeline_amount",)),
    (r"open deals|open opportunities", ("open_deals",)),
    (r"won deals|deals won|wins|won|win", ("won_deals",)),
    (r"lost deals|deals lost|losses|lost|lose", ("lost_deals",)),
    (r"closed deals|deals closed", ("closed_deals",)),
    (r"meetings", ("meeting_count",)),
    (r"activities|activity count", ("activity_count",)),
]

# A group-by word and the names it may mean, most specific first (the first the metrics admit wins).
GROUP_BY_WORDS: dict[str, tuple[str, ...]] = {
    "segment": ("opportunity__segment", "stage_stint__segment", "stage_stay__segment", "activity__segment", "stage_exit__segment"),
    "stage": ("stage_stint__stage", "stage_stay__stage", "activity__stage_at_activity", "stage_exit__stage", "opportunity__stage"),
    "rep": ("rep", "opportunity__rep"),
    "manager": ("manager", "opportunity__manager"),
    "team": ("manager", "opportunity__manager"),
    "account": ("account", "opportunity__account"),
    "industry": ("account__industry", "opportunity__account__industry"),
    "activity type": ("activity__activity_type",),
    "type": ("activity__activity_type",),
    "deal": ("opportunity",),
    "opportunity": ("opportunity",),
}
_GROUP_PLURALS = {"segments": "segment", "stages": "stage", "reps": "rep", "managers": "manager", "teams": "team",
                  "accounts": "account", "industries": "industry", "activity types": "activity type", "types": "type",
                  "deals": "deal", "opportunities": "opportunity"}
SEGMENT_FILTER = ("opportunity__segment", "stage_stint__segment", "stage_stay__segment", "activity__segment", "stage_exit__segment")
REP_SEGMENT_FILTER = ("rep__segment", "opportunity__rep__segment")
STAGE_FILTER = ("stage_stint__stage", "stage_stay__stage", "activity__stage_at_activity", "stage_exit__stage", "opportunity__stage")
INDUSTRY_FILTER = ("account__industry", "opportunity__account__industry")
ID_FILTERS = {"rep": ("rep", "opportunity__rep"), "manager": ("manager", "opportunity__manager"),
              "account": ("account", "opportunity__account"), "deal": ("opportunity",), "opportunity": ("opportunity",)}

FILLER = set("""
a an the of in on at for to from by with and or as is are was were be been being do does did doing done how what whats
which who show me us list give tell about our my we much many number count total overall all across each per it its
that this there than please can could you i see get have has had so far look looking like performance perform performed performing
go going went gone numbers figures result results stats statistics team reps deals deal opportunities s
""".split())

_REFUSALS: list[tuple[str, str]] = [
    (r"\b(select|insert|update|delete|drop|alter|create|truncate|grant)\b.*\b(from|into|table|set|where)\b|;\s*$|--",
     "raw SQL is not accepted: questions are answered only through the governed metrics of the semantic layer"),
    (r"^\s*(please\s+)?(send|email|e-mail|post|notify|message|update|change|set|delete|remove|approve|dismiss|snooze|write|create|assign|close|move)\b",
     "that is a request to change or send something; this answers questions from the governed metrics only "
     "(decisions go through the digest: Slack, Teams or `sales-supervisor review`)"),
    (r"\b(will|forecast|predict|prediction|projected|projection|next (week|month|quarter|year)|going to)\b",
     "that asks about the future; the semantic layer holds what has happened, not forecasts"),
    (r"^\s*why\b",
     "a why-question needs judgement, not a metric; ask for the metric behind it (e.g. win rate by stage)"),
]


@dataclass
class Refusal:
    """The question cannot be answered through the semantic layer, and why."""

    reason: str
    hints: list[str] = field(default_factory=list)


@dataclass
class _Text:
    """The question with the spans each recognised phrase consumed."""

    text: str
    used: list[bool] = field(init=False)

    def __post_init__(self) -> None:
        self.used = [False] * len(self.text)

    def take(self, pattern: str, flags: int = 0) -> list[re.Match[str]]:
        out = []
        # Search the text with consumed spans blanked out, so no phrase spans another one.
        masked = "".join("\x00" if u else c for c, u in zip(self.text, self.used))
        for m in re.finditer(pattern, masked, flags):
            if any(self.used[m.start():m.end()]):
                continue
            for i in range(m.start(), m.end()):
                self.used[i] = True
            out.append(m)
        return out

    def leftover_words(self) -> list[str]:
        rest = "".join(c if not u else " " for c, u in zip(self.text, self.used))
        words = [w.strip("'-") for w in re.findall(r"[a-z0-9_%'\-]+", rest)]
        words = [w[:-2] if w.endswith("'s") else w for w in words]  # "what's", "team's"
        return [w for w in words if w and w not in FILLER]


def normalise(question: str) -> str:
    q = question.strip().lower().replace("\u2019", "'")
    q = re.sub(r"[?!.,:]+(\s|$)", " ", q)
    return re.sub(r"\s+", " ", q).strip()


# Managers read names, not ids: grouping by a rep or a deal also shows its name.
_NAME_OF = {"rep": ("rep__rep_name",), "opportunity__rep": ("opportunity__rep__rep_name",), "opportunity": ("opportunity__deal_name",)}


def _names_for(name: str, allowed: dict) -> list[str]:
    return [n for n in _NAME_OF.get(name, ()) if n in allowed]


def _first_allowed(candidates: Sequence[str], allowed: dict) -> str | None:
    return next((c for c in candidates if c in allowed), None)


def _quarter_start(d: dt.date) -> dt.date:
    return dt.date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)


def _add_months(d: dt.date, months: int) -> dt.date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    return dt.date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}


def _time_range(t: _Text, as_of: dt.date) -> tuple[dt.date, dt.date, str] | Refusal | None:
    """(first day, last day, words) of the period the question names, inclusive."""
    iso = r"(\d{4}-\d{2}-\d{2})"
    if m := t.take(rf"\bbetween {iso} and {iso}\b"):
        a, b = dt.date.fromisoformat(m[0].group(1)), dt.date.fromisoformat(m[0].group(2))
        if b < a:
            return Refusal(f"the period ends ({b}) before it starts ({a})")
        return a, b, f"{a} to {b}"
    if m := t.take(rf"\bsince {iso}\b"):
        a = dt.date.fromisoformat(m[0].group(1))
        return a, as_of, f"since {a}"
    if m := t.take(r"\b(?:in |during )?(?:the )?(last|past|previous) (\d+) (day|week|month)s?\b"):
        n, unit = int(m[0].group(2)), m[0].group(3)
        start = as_of - dt.timedelta(days=n - 1) if unit == "day" else (
            as_of - dt.timedelta(weeks=n) + dt.timedelta(days=1) if unit == "week" else _add_months(as_of, -n) + dt.timedelta(days=1))
        return start, as_of, f"the last {n} {unit}s"
    if m := t.take(r"\b(?:in |during )?(?:the )?(this|current|last|previous|past) (week|month|quarter|year)\b"):
        which, unit = m[0].group(1), m[0].group(2)
        if unit == "week":
            start = as_of - dt.timedelta(days=as_of.weekday())
        elif unit == "month":
            start = as_of.replace(day=1)
        elif unit == "quarter":
            start = _quarter_start(as_of)
        else:
            start = dt.date(as_of.year, 1, 1)
        if which in ("this", "current"):
            return start, as_of, f"this {unit} (to {as_of})"
        prev_end = start - dt.timedelta(days=1)
        if unit == "week":
            prev_start = start - dt.timedelta(days=7)
        elif unit == "month":
            prev_start = prev_end.replace(day=1)
        elif unit == "quarter":
            prev_start = _quarter_start(prev_end)
        else:
            prev_start = dt.date(prev_end.year, 1, 1)
        return prev_start, prev_end, f"last {unit} ({prev_start} to {prev_end})"
    if m := t.take(r"\b(month|quarter|year)[ -]to[ -]date\b|\b(mtd|qtd|ytd)\b"):
        unit = m[0].group(1) or {"mtd": "month", "qtd": "quarter", "ytd": "year"}[m[0].group(2)]
        start = {"month": as_of.replace(day=1), "quarter": _quarter_start(as_of), "year": dt.date(as_of.year, 1, 1)}[unit]
        return start, as_of, f"{unit} to date ({start} to {as_of})"
    if t.take(r"\btoday\b"):
        return as_of, as_of, f"today ({as_of})"
    if m := t.take(r"\b(?:in |during )?q([1-4])(?:[ -](\d{4}))?\b"):
        q, year = int(m[0].group(1)), int(m[0].group(2) or as_of.year)
        start = dt.date(year, 3 * q - 2, 1)
        end = _add_months(start, 3) - dt.timedelta(days=1)
        return start, end, f"Q{q} {year} ({start} to {end})"
    month_names = "|".join(_MONTHS)
    if m := t.take(rf"\b(?:in |during )?({month_names})(?: (\d{{4}}))?\b"):
        month = _MONTHS[m[0].group(1)]
        year = int(m[0].group(2)) if m[0].group(2) else (as_of.year if month <= as_of.month else as_of.year - 1)
        start = dt.date(year, month, 1)
        end = _add_months(start, 1) - dt.timedelta(days=1)
        return start, end, f"{calendar.month_name[month]} {year}"
    if m := t.take(r"\b(?:in |during )(\d{4})\b"):
        year = int(m[0].group(1))
        return dt.date(year, 1, 1), dt.date(year, 12, 31), str(year)
    return None


def parse(
    question: str,
    *,
    catalog: Catalog,
    as_of: dt.date,
    stages: Sequence[str] = DEFAULT_STAGES,
    my_team: str | None = None,
) -> QueryPlan | Refusal:
    """A question -> a validated QueryPlan, or a Refusal that says why.

    ``my_team``: the asker's manager id, for "my team" (a manager's answers are
    limited to their team by the caller in any case; see agents.ask.answer).
    """
    text = normalise(question)
    if not text:
        return Refusal("the question is empty")
    for pattern, reason in _REFUSALS:
        if re.search(pattern, text):
            return Refusal(reason)
    t = _Text(text)
    stage_names = {s.lower(): s for s in stages}
    stage_alt = "|".join(re.escape(s) for s in sorted(stage_names, key=len, reverse=True))

    # Deals stuck in a stage.
    stuck = t.take(
        rf"\b(?:stuck|stalled|sitting|parked|idle|been) (?:in|at) (?:the )?(?P<stage>{stage_alt}|[a-z]+)(?: stage)? "
        r"(?:for )?(?:more than |over |longer than |at least |> ?)(?P<n>\d+) ?(?P<unit>day|week|month)s?\b"
    )
    if stuck:
        return _stuck_plan(t, stuck[0], catalog=catalog, as_of=as_of, stage_names=stage_names, my_team=my_team)

    for name in sorted(catalog.saved_queries, key=len, reverse=True):
        if t.take(rf"\b(?:saved query )?{re.escape(name)}\b"):
            leftovers = t.leftover_words()
            if leftovers:
                return Refusal(f"a saved query runs as defined; not understood: {', '.join(leftovers)}")
            return QueryPlan(saved_query=name, interpretation=f"saved query {name}")

    metrics: list[str] = []

    def add(*names: str) -> None:
        for n in names:
            if n not in metrics:
                metrics.append(n)

    # Exact metric names and labels from the manifest, then synonyms.
    for name in sorted(catalog.metrics, key=len, reverse=True):
        if "_" in name and t.take(rf"\b{re.escape(name)}\b"):
            add(name)
    for info in sorted(catalog.metrics.values(), key=lambda i: len(i.label), reverse=True):
        label = normalise(info.label)
        if len(label) > 3 and t.take(rf"(?<!\w){re.escape(label)}(?!\w)"):
            add(info.name)
    if t.take(r"\bhow (?:did|does|do|is|are|has|have|was|were)\b(?=.*\b(?:do|doing|done|perform|performing|performed|go|going|gone)\b)") or t.take(r"\bperformance\b"):
        add(*HOW_DID)
    for pattern, names in METRIC_SYNONYMS:
        if t.take(rf"(?<!\w)(?:{pattern})(?!\w)"):
            add(*names)
    if not metrics:
        return Refusal(
            "no governed metric matches the question",
            hints=["known metrics: " + ", ".join(f"{i.label} ({i.name})" for i in catalog.metrics.values())],
        )
    missing = [m for m in metrics if m not in catalog.metrics]
    if missing:
        return Refusal(f"the semantic layer has no metric {', '.join(missing)}")
    allowed = catalog.group_bys(metrics)
    group_by: list[str] = []
    filters: list[Filter] = []
    order_by: list[str] = []
    limit: int | None = None
    said: list[str] = []

    # Group-bys.
    words = "|".join(sorted(list(GROUP_BY_WORDS) + list(_GROUP_PLURALS) + ["day", "week", "month", "quarter", "year"], key=len, reverse=True))
    for m in t.take(rf"\b(?:by|per|for each|for every|broken down by|split by|grouped by|each) ((?:{words})(?:(?:,| and|,? and) (?:{words}))*)\b"):
        for word in re.split(r",? and |, ", m.group(1)):
            word = _GROUP_PLURALS.get(word.strip(), word.strip())
            if word in ("day", "week", "month", "quarter", "year"):
                group_by.append(f"metric_time__{word}")
                continue
            name = _first_allowed(GROUP_BY_WORDS[word], allowed)
            if name is None:
                return Refusal(f"{', '.join(metrics)} cannot be broken down by {word} in the semantic layer")
            group_by.append(name)
            group_by.extend(_names_for(name, allowed))

    # Filters: segments (team / reps = the reps' segment).
    seg_alt = "|".join(sorted((re.escape(s) for s in SEGMENTS), key=len, reverse=True))
    for m in t.take(rf"\b({seg_alt})(?: (?:sales )?(team|teams|reps|rep|sellers))?\b"):
        value = SEGMENTS[m.group(1)]
        cands = REP_SEGMENT_FILTER if m.group(2) else SEGMENT_FILTER
        name = _first_allowed(cands, allowed) or _first_allowed(SEGMENT_FILTER, allowed)
        if name is None:
            return Refusal(f"{', '.join(metrics)} cannot be filtered by segment")
        filters.append(Filter(dimension=name, values=(value,)))
    # Stages by name.
    for m in t.take(rf"\b(?:in|at|entering|entered|reached|reaching) (?:the )?({stage_alt})(?: stage)?\b"):
        name = _first_allowed(STAGE_FILTER, allowed)
        if name is None:
            return Refusal(f"{', '.join(metrics)} cannot be filtered by stage")
        filters.append(Filter(dimension=name, values=(stage_names[m.group(1)],)))
    # Industry.
    for m in t.take(r"\b(?:in |for )?(?:the )?([a-z]+(?: [a-z]+)?) (?:industry|vertical)\b"):
        name = _first_allowed(INDUSTRY_FILTER, allowed)
        if name is None:
            return Refusal(f"{', '.join(metrics)} cannot be filtered by industry")
        filters.append(Filter(dimension=name, values=(m.group(1).title(),)))
    # Ids.
    for m in t.take(r"\b(rep|manager|account|deal|opportunity) ([a-z0-9][\w\-]*\d[\w\-]*)\b"):
        name = _first_allowed(ID_FILTERS[m.group(1)], allowed)
        if name is None:
            return Refusal(f"{', '.join(metrics)} cannot be filtered by {m.group(1)}")
        filters.append(Filter(dimension=name, values=(m.group(2),)))
    if t.take(r"\bmy (?:team|reps|deals)\b"):
        if my_team is None:
            return Refusal("'my team' needs to know who is asking: ask as a manager (Slack, Teams, the console, or --as)")
        name = _first_allowed(ID_FILTERS["manager"], allowed)
        if name is None:
            return Refusal(f"{', '.join(metrics)} cannot be limited to a team")
        filters.append(Filter(dimension=name, values=(my_team,)))

    # Time.
    period = _time_range(t, as_of)
    if isinstance(period, Refusal):
        return period
    if period is not None:
        start, end, words_ = period
        filters.append(Filter(dimension="metric_time", op=">=", values=(start.isoformat(),)))
        filters.append(Filter(dimension="metric_time", op="<=", values=(end.isoformat(),)))
        said.append(words_)

    # Ranking ("top 5 reps by won deals" ranks reps).
    if m := t.take(rf"\b(top|bottom|best|worst|highest|lowest) (\d+) ({words})\b"):
        word = _GROUP_PLURALS.get(m[0].group(3), m[0].group(3))
        name = _first_allowed(GROUP_BY_WORDS.get(word, ("metric_time__" + word,)), allowed) or (
            "metric_time__" + word if word in ("day", "week", "month", "quarter", "year") else None)
        if name is None:
            return Refusal(f"{', '.join(metrics)} cannot be broken down by {word} in the semantic layer")
        group_by.append(name)
        group_by.extend(_names_for(name, allowed))
        limit = int(m[0].group(2))
        order_by.append(("" if m[0].group(1) in ("bottom", "worst", "lowest") else "-") + metrics[0])
    elif m := t.take(r"\b(top|bottom|best|worst|highest|lowest) (\d+)\b"):
        limit = int(m[0].group(2))
        order_by.append(("" if m[0].group(1) in ("bottom", "worst", "lowest") else "-") + metrics[0])
    elif m := t.take(r"\b(highest|most|best|lowest|least|worst)(?: first)?\b"):
        order_by.append(("" if m[0].group(1) in ("lowest", "least", "worst") else "-") + metrics[0])
    if order_by and not group_by:
        return Refusal("a ranking needs something to rank: add 'by rep', 'by segment', ...")

    leftovers = t.leftover_words()
    if leftovers:
        return Refusal(
            f"not understood: {', '.join(repr(w) for w in leftovers)} (the offline grammar reads metrics, "
            "group-bys, segments, stages, ids and periods; see `sales-supervisor ask --help`)"
        )
    plan = QueryPlan(metrics=tuple(metrics), group_by=tuple(dict.fromkeys(group_by)), filters=tuple(filters),
                     order_by=tuple(order_by), limit=limit)
    plan.interpretation = humanise(plan, catalog, period=said[0] if said else None)
    return plan


def dimension_words(name: str) -> str:
    """opportunity__segment -> "deal segment", metric_time__quarter -> "quarter", rep -> "rep"."""
    if name.startswith("metric_time"):
        return name.rpartition("__")[2] if "__" in name else "time"
    special = {"opportunity": "deal id", "rep": "rep id", "manager": "manager id", "account": "account id",
               "stage_stay__entered_stage_at__day": "entered stage on", "stage_stay__entered_stage_at": "entered stage on"}
    if name in special:
        return special[name]
    parts = name.split("__")
    if len(parts) >= 2 and parts[-1].startswith(parts[-2] + "_"):  # rep__rep_name -> rep_name
        name = "__".join(parts[:-2] + [parts[-1]])
    words = name.replace("opportunity__deal_name", "deal").replace("opportunity", "deal").replace("stage_stint", "stint")
    words = words.replace("stage_stay", "current stage").replace("activity__", "").replace("__", " ").replace("_", " ")
    return words


def humanise(plan: QueryPlan, catalog: Catalog, *, period: str | None = None) -> str:
    """What a plan asks, in words a manager reads (labels, not column names)."""
    labels = [catalog.metrics[m].label if m in catalog.metrics else m for m in plan.metrics]
    out = labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]
    if plan.group_by:
        companions = {n for names in _NAME_OF.values() for n in names}
        plain = {"opportunity": "deal", "rep": "rep", "manager": "manager", "account": "account"}
        out += " by " + ", ".join(plain.get(g) or dimension_words(g) for g in plan.group_by if g not in companions)
    conds = [f"{dimension_words(f.dimension)} {'is' if f.op == '=' else f.op} {', '.join(str(v) for v in f.values)}"
             for f in plan.filters if f.dimension != "metric_time"]
    if conds:
        out += ", where " + " and ".join(conds)
    if period:
        out += f", {period}"
    if plan.order_by:
        first = plan.order_by[0]
        out += f", {'highest' if first.startswith('-') else 'lowest'} first"
    if plan.limit:
        out += f", top {plan.limit}"
    return out


def _stuck_plan(
    t: _Text, m: re.Match[str], *, catalog: Catalog, as_of: dt.date, stage_names: dict[str, str], my_team: str | None
) -> QueryPlan | Refusal:
    metric = "open_deals_in_stage"
    if metric not in catalog.metrics:
        return Refusal("the semantic layer has no metric for deals in their current stage (open_deals_in_stage)")
    stage = stage_names.get(m.group("stage"))
    if stage is None:
        return Refusal(f"{m.group('stage')!r} is not a pipeline stage; stages: {', '.join(stage_names.values())}")
    n, unit = int(m.group("n")), m.group("unit")
    days = n * {"day": 1, "week": 7, "month": 30}[unit]
    cutoff = as_of - dt.timedelta(days=days)
    allowed = catalog.group_bys([metric])
    filters = [
        Filter(dimension="stage_stay__stage", values=(stage,)),
        # More than N days before as-of: entered strictly before the cut-off day.
        Filter(dimension="stage_stay__entered_stage_at", op="<", values=(cutoff.isoformat(),)),
    ]
    seg_alt = "|".join(sorted((re.escape(s) for s in SEGMENTS), key=len, reverse=True))
    for s in t.take(rf"\b({seg_alt})\b"):
        filters.append(Filter(dimension="opportunity__segment", values=(SEGMENTS[s.group(1)],)))
    for s in t.take(r"\b(rep|manager|account) ([a-z0-9][\w\-]*\d[\w\-]*)\b"):
        name = _first_allowed(ID_FILTERS[s.group(1)], allowed)
        if name:
            filters.append(Filter(dimension=name, values=(s.group(2),)))
    if t.take(r"\bmy (?:team|reps|deals)\b"):
        if my_team is None:
            return Refusal("'my team' needs to know who is asking: ask as a manager (Slack, Teams, the console, or --as)")
        filters.append(Filter(dimension=_first_allowed(ID_FILTERS["manager"], allowed) or "opportunity__manager", values=(my_team,)))
    leftovers = t.leftover_words()
    if leftovers:
        return Refusal(f"not understood: {', '.join(repr(w) for w in leftovers)}")
    group_by = ("opportunity", "opportunity__deal_name", "opportunity__segment", "stage_stay__entered_stage_at__day")
    return QueryPlan(
        metrics=(metric,),
        group_by=group_by,
        filters=tuple(filters),
        order_by=("stage_stay__entered_stage_at__day",),
        interpretation=(
            f"open deals whose current stage is {stage} and which entered it before {cutoff} "
            f"(more than {n} {unit}{'s' if n != 1 else ''} before {as_of}), oldest first"
        ),
    )
