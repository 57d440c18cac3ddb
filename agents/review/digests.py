"""Manager digests: one per manager per run, every active rep listed, flagged deals ranked.

A digest is plain data (no Slack, no files): ``blocks.py`` renders it as
Block Kit, ``outbox.py`` as Markdown and HTML, ``posting.py`` puts its items
in the review ledger and posts it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from agents.review.recurrence import HeldBack
from agents.risk.models import SEVERITY_RANK, CrmRecordRef, RiskFlag
from agents.ledger.audience import SCORECARD_RULE

log = logging.getLogger(__name__)

SEMANTIC_LINK_SCHEME = "semantic://"


def semantic_link(query_id: str) -> str:
    """The stable link form for a semantic-layer query id (resolved by the CLI/docs, not a web URL)."""
    return SEMANTIC_LINK_SCHEME + query_id


@dataclasses.dataclass(frozen=True)
class Link:
    label: str
    url: str | None  # None: no resolvable address, show the id as text

    @property
    def is_web(self) -> bool:
        return bool(self.url) and self.url.startswith(("http://", "https://"))


@dataclasses.dataclass
class DigestEntry:
    """One flagged deal (or rep) with its proposed action; ``item_id`` is set once it is in the ledger."""

    flag: RiskFlag
    draft: dict[str, Any]
    rank: int
    deal_name: str | None
    crm_links: tuple[Link, ...]
    query_links: tuple[Link, ...]
    item_id: str | None = None
    number: int = 0  # position in its rep's list (1 = most urgent)
    rep_name: str | None = None
    note: str | None = None  # "proposed again: ..." when a standing decision was reopened
    related_links: tuple[Link, ...] = ()  # comparable won deals, or a rep's weakest open deals
    decision: str | None = None  # "dismiss by mgr-1" when a re-run of the day finds the item already decided

    MAX_CRM_LINKS = 6

    @property
    def shown_crm_links(self) -> tuple[Link, ...]:
        """At most MAX_CRM_LINKS (a rep-level flag cites every open deal); the rest are in `explain`."""
        return self.crm_links[: self.MAX_CRM_LINKS]

    @property
    def hidden_crm_links(self) -> int:
        return max(len(self.crm_links) - self.MAX_CRM_LINKS, 0)

    @property
    def short_id(self) -> str | None:
        """The first 8 characters of a generated (32-hex) item id, enough for the CLI; other ids whole."""
        return short_item_id(self.item_id) if self.item_id else None

    @property
    def deal_link(self) -> Link:
        """The deal's name linked to its CRM record (the first opportunity row the flag cites)."""
        url = next((link.url for ref, link in zip(self.flag.crm_records, self.crm_links) if ref.object == "opportunity"), None)
        return Link(self.subject_label, url)

    @property
    def subject_label(self) -> str:
        if self.flag.subject == "rep":
            return f"Rep {self.rep_name or self.flag.rep_id}"
        return self.deal_name or str(self.flag.opportunity_id)

    @property
    def baseline_text(self) -> str | None:
        """The governed baseline the rule compares with; a segment win rate attached as filler is not shown."""
        if self.flag.baseline is not None and self.flag.baseline.metric in FILLER_BASELINES:
            return None
        return format_baseline(self.flag)

    @property
    def coaching_text(self) -> str:
        return coaching_text(self.draft)


@dataclasses.dataclass
class RepSection:
    rep_id: str
    rep_name: str
    slack_user_id: str | None
    email: str | None
    is_active: bool
    entries: list[DigestEntry]
    flagged: int  # flagged deals for this rep, shown or held back
    held_back: list[HeldBack] = dataclasses.field(default_factory=list)
    informational: list[DigestEntry] = dataclasses.field(default_factory=list)  # demoted rules: shown, not decided

    @property
    def omitted(self) -> int:
        return len(self.held_back)

    @property
    def held_back_summary(self) -> str | None:
        """'5 of 23 shown, 18 held back: 16 lower severity x amount, 2 dismissed earlier' (None: nothing held back)."""
        return held_back_summary(len(self.entries), self.held_back)


@dataclasses.dataclass
class Digest:
    run_id: str
    as_of: dt.date
    manager_id: str
    manager_name: str
    slack_user_id: str | None
    email: str | None
    reps: list[RepSection]
    max_items_per_rep: int
    decide_first_n: int = 5
    query_pages: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # id -> page data (query_pages.py)
    demoted: dict[str, float] = dataclasses.field(default_factory=dict)  # rule -> backtest lift below the floor
    lift_floor: float | None = None
    new_flags: list[str] = dataclasses.field(default_factory=list)  # set by record_digest: items not in the ledger before
    on_your_behalf: list[str] = dataclasses.field(default_factory=list)  # set by post_digest: L5 sends, autonomy notices
    console_url: str | None = None  # base URL of the supervisor console: the digest links each item there

    def console_link(self, short_id: str | None = None) -> str | None:
        """This digest (or one item of it) in the console, when a console URL is configured."""
        if not self.console_url:
            return None
        from urllib.parse import quote

        base = f"{self.console_url.rstrip('/')}/digest?manager={quote(self.manager_id, safe='')}"
        return base + (f"#item-{short_id}" if short_id else "")

    @property
    def informational(self) -> list[DigestEntry]:
        return [e for r in self.reps for e in r.informational]

    @property
    def reps_reviewed(self) -> int:
        return len(self.reps)

    @property
    def deals_flagged(self) -> int:
        return sum(r.flagged for r in self.reps)

    @property
    def held_back(self) -> list[HeldBack]:
        return [h for r in self.reps for h in r.held_back]

    @property
    def held_back_summary(self) -> str | None:
        return held_back_summary(self.item_count, self.held_back)

    @property
    def decide_first(self) -> list[DigestEntry]:
        """The team-wide top N by severity x amount: what the manager decides before anything else."""
        return [e for e in self.entries if e.flag.rule_id != SCORECARD_RULE][: self.decide_first_n]

    @property
    def scorecards(self) -> list[DigestEntry]:
        """The weekly scorecards (scorecard day only), most serious verdict first: shown before anything else."""
        order = {"CRITICAL": 0, "BELOW_FLOOR_PIP": 1, "BELOW_FLOOR": 2, "MEETS": 3, "EXCEEDS": 4}
        cards = [e for e in self.entries if e.flag.rule_id == SCORECARD_RULE]
        return sorted(cards, key=lambda e: (order.get(str(e.flag.observed), 0), e.rep_name or "", e.flag.flag_id))

    @property
    def entries(self) -> list[DigestEntry]:
        return sorted((e for r in self.reps for e in r.entries), key=lambda e: e.rank)

    @property
    def item_count(self) -> int:
        return sum(len(r.entries) for r in self.reps)

    def rep(self, rep_id: str) -> RepSection | None:
        return next((r for r in self.reps if r.rep_id == rep_id), None)


# --------------------------------------------------------------------------- text helpers


def _fmt_number(value: float | str | None) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".") if abs(value) >= 1 else f"{value:.3f}".rstrip("0").rstrip(".")


def short_item_id(item_id: str) -> str:
    return item_id[:8] if len(item_id) == 32 and all(ch in "0123456789abcdef" for ch in item_id) else item_id


# Baselines some rules carry without comparing with them (the rule measures days, pushes or a swing).
FILLER_BASELINES = frozenset({"win_rate"})

HELD_BACK_WHY = {
    "cap": "lower severity x amount than the ones shown",
    "dismissed": "dismissed earlier, evidence unchanged",
    "approved": "approved earlier, action still due",
    "l1": "at autonomy level L1 (answered when asked)",
}


def held_back_summary(shown: int, held: Sequence[HeldBack]) -> str | None:
    if not held:
        return None
    counts: dict[str, int] = {}
    for h in held:
        counts[h.kind] = counts.get(h.kind, 0) + 1
    why = ", ".join(f"{n} {HELD_BACK_WHY.get(kind, kind)}" for kind, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return f"{shown} of {shown + len(held)} shown, {len(held)} held back: {why}"


def format_amount(amount: float | None) -> str | None:
    return None if amount is None else f"${amount:,.0f}"


def format_baseline(flag: RiskFlag) -> str | None:
    b = flag.baseline
    if b is None:
        return None
    parts = [f"{b.metric} = {_fmt_number(b.value)}"]
    if b.slice:
        parts.append("(" + ", ".join(f"{k}={v}" for k, v in sorted(b.slice.items())) + ")")
    extra = []
    if b.sample_size is not None:
        extra.append(f"n={b.sample_size}")
    if b.fallback:
        extra.append(f"fallback: {b.fallback}")
    if extra:
        parts.append("[" + "; ".join(extra) + "]")
    return " ".join(parts)


def coaching_text(draft: Mapping[str, Any]) -> str:
    """The text a rep receives for an approved (unedited) draft; also the edit modal's starting text."""
    action = str(draft.get("action") or "").strip()
    rationale = str(draft.get("rationale") or "").strip()
    return f"{action}\n\nWhy: {rationale}" if rationale else action


def draft_dict(draft: Any) -> dict[str, Any]:
    """A draft as plain JSON: a CoachingDraft, a DraftedItem (its .draft) or a dict with the same keys."""
    inner = getattr(draft, "draft", None)
    if inner is not None and hasattr(inner, "model_dump"):
        draft = inner
    if hasattr(draft, "model_dump"):
        return draft.model_dump(mode="json")
    if isinstance(draft, Mapping):
        out = dict(draft)
        if isinstance(out.get("due_date"), dt.date):
            out["due_date"] = out["due_date"].isoformat()
        return out
    raise TypeError(f"not a coaching draft: {type(draft).__name__}")


def crm_link(ref: CrmRecordRef, crm_base_url: str | None) -> Link:
    label = f"{ref.object} {ref.record_id}"
    if ref.source_url:
        return Link(label, ref.source_url)
    if crm_base_url:
        if "{" in crm_base_url:  # a template such as https://crm.example/{object}/{record_id}
            return Link(label, crm_base_url.format(object=ref.object, record_id=quote(ref.record_id, safe="")))
        return Link(label, crm_base_url.rstrip("/") + "/" + quote(ref.record_id, safe=""))
    return Link(label, None)


def query_link(query_id: str, saved_query_names: Mapping[str, str] | None, *, page: bool = False) -> Link:
    """A query's link: its static page beside the digest when one is written (``page``), else the semantic:// id."""
    name = (saved_query_names or {}).get(query_id)
    label = f"{name} ({query_id})" if name else query_id
    if page:
        from agents.review.query_pages import query_page_href

        return Link(label, query_page_href(query_id))
    return Link(label, semantic_link(query_id))


# --------------------------------------------------------------------------- building


def _as_pair(item: Any) -> tuple[RiskFlag, Any]:
    if isinstance(item, tuple | list) and len(item) == 2:
        flag, draft = item
    else:
        raise TypeError("items must be (flag, draft) pairs")
    if isinstance(flag, Mapping):
        flag = RiskFlag.model_validate(flag)
    return flag, draft


def _rank_key(flag: RiskFlag) -> tuple:
    return (-flag.priority, -SEVERITY_RANK[flag.severity], flag.flag_id)


def route_items(
    items: Iterable[Any], reps: Sequence[Mapping[str, Any]], managers: Sequence[Mapping[str, Any]]
) -> tuple[dict[str, list[tuple[RiskFlag, Any]]], list[tuple[RiskFlag, Any]]]:
    """Group (flag, draft) pairs by manager: the rep's manager from dim_reps wins over the flag's.

    Returns (by manager id, unrouted): a pair whose manager is unknown is
    returned as unrouted, never silently dropped.
    """
    rep_manager = {str(r["rep_id"]): r.get("manager_id") for r in reps}
    known = {str(m["manager_id"]) for m in managers}
    by_manager: dict[str, list[tuple[RiskFlag, Any]]] = {}
    unrouted = []
    for raw in items:
        flag, draft = _as_pair(raw)
        manager = rep_manager.get(str(flag.rep_id)) if flag.rep_id is not None else None
        manager = manager or flag.manager_id
        if manager is None or str(manager) not in known:
            unrouted.append((flag, draft))
            continue
        by_manager.setdefault(str(manager), []).append((flag, draft))
    return by_manager, unrouted


def _unrouted_label(flag: Any, deal_names: Mapping[str, str] | None) -> str:
    """How a log names an item no digest carries: the deal's name and its rep, not a flag id."""
    opp = getattr(flag, "opportunity_id", None)
    name = (deal_names or {}).get(str(opp)) if opp else None
    what = f"{name!r}" if name else (f"deal {opp}" if opp else f"rep {getattr(flag, 'rep_id', None)}")
    rep = getattr(flag, "rep_id", None)
    return f"{what} ({getattr(flag, 'rule_id', '?')}, rep {rep})" if rep and opp else f"{what} ({getattr(flag, 'rule_id', '?')})"


def build_digests(
    items: Iterable[Any],
    reps: Sequence[Mapping[str, Any]],
    managers: Sequence[Mapping[str, Any]],
    as_of: dt.date,
    max_items_per_rep: int = 5,
    *,
    run_id: str | None = None,
    crm_base_url: str | None = None,
    saved_query_names: Mapping[str, str] | None = None,
    deal_names: Mapping[str, str] | None = None,
    notes: Mapping[str, str] | None = None,
    held_back: Iterable[HeldBack] = (),
    decide_first_n: int = 5,
    query_details: Mapping[str, Mapping[str, Any]] | None = None,
    metric_defs: Mapping[str, Mapping[str, Any]] | None = None,
    related: Mapping[str, Sequence[Link]] | None = None,
    demoted: Mapping[str, float] | None = None,
    lift_floor: float | None = None,
    remedy_queries: Mapping[str, Sequence[str]] | None = None,
) -> list[Digest]:
    """One digest per manager (every manager with at least one active rep or one flagged item).

    ``items``: (RiskFlag, draft) pairs, the draft a CoachingDraft, DraftedItem
    or dict. Per rep at most ``max_items_per_rep`` items, ranked by severity x
    amount (``RiskFlag.priority``); every active rep of the manager is listed,
    flagged or not. ``run_id`` defaults to the as-of date, so a retried run
    maps onto the same ledger digest. ``deal_names`` (opportunity id -> name)
    is CRM free text: renderers escape it. ``notes`` (flag id -> text) says why
    a flag a manager decided on before is proposed again; ``held_back`` are
    flags not drafted as items (the engine's per-rep cap, standing decisions):
    each is counted and listed under its rep, next to the items the
    per-rep cap here holds back.
    """
    if max_items_per_rep < 1:
        raise ValueError("max_items_per_rep must be at least 1")
    run_id = run_id or as_of.isoformat()
    by_manager, unrouted = route_items(items, reps, managers)
    if unrouted:
        log.warning(
            "%d flagged item(s) have no known manager and are left out of the digests: %s",
            len(unrouted), ", ".join(_unrouted_label(f, deal_names) for f, _ in unrouted[:10]),
        )
    reps_by_id = {str(r["rep_id"]): r for r in reps}
    rep_manager = {str(r["rep_id"]): str(r.get("manager_id")) for r in reps}
    held_by_rep: dict[str, list[HeldBack]] = {}
    for h in held_back:
        if h.deal_name is None and h.opportunity_id and deal_names:
            h = dataclasses.replace(h, deal_name=deal_names.get(str(h.opportunity_id)))
        held_by_rep.setdefault(str(h.rep_id), []).append(h)
    active_reps_of: dict[str, list[str]] = {}  # each manager's active reps in the order given (one pass, not one per manager)
    for r in reps:
        if _active(r):
            active_reps_of.setdefault(str(r.get("manager_id")), []).append(str(r["rep_id"]))
    digests = []
    page_cache: dict[str, dict[str, Any]] = {}  # one page-data object per query, shared by every digest citing it
    for manager in sorted(managers, key=lambda m: str(m["manager_id"])):
        manager_id = str(manager["manager_id"])
        pairs = by_manager.get(manager_id, [])
        by_rep: dict[str, list[tuple[RiskFlag, Any]]] = {}
        for flag, draft in pairs:
            by_rep.setdefault(str(flag.rep_id), []).append((flag, draft))
        rep_ids = list(active_reps_of.get(manager_id, ()))
        listed = set(rep_ids)
        for rid in by_rep:  # flagged inactive/unknown reps still show
            if rid not in listed:
                rep_ids.append(rid)
                listed.add(rid)
        for rid in held_by_rep:
            if rid not in listed and rep_manager.get(rid) == manager_id:
                rep_ids.append(rid)
                listed.add(rid)
        if not rep_ids:
            continue
        sections = []
        for rep_id in rep_ids:
            rep = reps_by_id.get(rep_id, {"rep_id": rep_id, "rep_name": rep_id, "is_active": False})
            all_ranked = sorted(by_rep.get(rep_id, []), key=lambda p: _rank_key(p[0]))
            # Demoted rules (backtest lift below the floor) are informational: listed apart, never decided or capped.
            info_pairs = [(f, d) for f, d in all_ranked if f.rule_id in (demoted or {})]
            ranked = [(f, d) for f, d in all_ranked if f.rule_id not in (demoted or {})]
            # The rep's weekly scorecard comes first and is never capped (issue 14).
            cards = [(f, d) for f, d in ranked if f.rule_id == SCORECARD_RULE]
            ranked = [(f, d) for f, d in ranked if f.rule_id != SCORECARD_RULE]
            entries = [
                DigestEntry(
                    flag=flag,
                    draft=draft_dict(draft),
                    rank=0,
                    deal_name=(deal_names or {}).get(str(flag.opportunity_id)) if flag.opportunity_id else None,
                    crm_links=tuple(crm_link(ref, crm_base_url) for ref in flag.crm_records),
                    query_links=tuple(
                        query_link(q, saved_query_names, page=q in (query_details or {})) for q in flag.semantic_query_ids
                    ) + tuple(
                        dataclasses.replace(query_link(q, None, page=q in (query_details or {})), label=f"what worked ({q})")
                        for q in (remedy_queries or {}).get(flag.flag_id, ()) if q not in flag.semantic_query_ids
                    ),
                    number=number,
                    rep_name=str(rep.get("rep_name") or rep_id),
                    note=(notes or {}).get(flag.flag_id),
                    related_links=tuple((related or {}).get(flag.flag_id, ())),
                )
                for number, (flag, draft) in enumerate([*cards, *ranked[:max_items_per_rep]], 1)
            ]
            capped = [
                HeldBack(
                    flag_id=flag.flag_id, rule_id=flag.rule_id, opportunity_id=flag.opportunity_id, rep_id=flag.rep_id,
                    severity=flag.severity, amount=flag.amount, kind="cap",
                    why=f"below the top {max_items_per_rep} of this rep by severity x amount",
                    deal_name=(deal_names or {}).get(str(flag.opportunity_id)) if flag.opportunity_id else None,
                )
                for flag, _ in ranked[max_items_per_rep:]
            ]
            rep_held = sorted(
                capped + held_by_rep.get(rep_id, []),
                key=lambda h: (-SEVERITY_RANK.get(h.severity or "low", 1) * max(h.amount or 0.0, 1.0), h.flag_id),
            )
            informational = [
                DigestEntry(
                    flag=flag, draft=draft_dict(draft), rank=0, number=0, rep_name=str(rep.get("rep_name") or rep_id),
                    deal_name=(deal_names or {}).get(str(flag.opportunity_id)) if flag.opportunity_id else None,
                    crm_links=tuple(crm_link(ref, crm_base_url) for ref in flag.crm_records),
                    query_links=tuple(query_link(q, saved_query_names, page=q in (query_details or {})) for q in flag.semantic_query_ids),
                )
                for flag, draft in info_pairs
            ]
            sections.append(
                RepSection(
                    rep_id=rep_id,
                    rep_name=str(rep.get("rep_name") or rep_id),
                    slack_user_id=rep.get("slack_user_id") or None,
                    email=rep.get("email") or None,
                    is_active=_active(rep),
                    entries=entries,
                    flagged=len({f.opportunity_id or f.flag_id for f, _ in ranked} | {h.opportunity_id or h.flag_id for h in rep_held}),
                    held_back=rep_held,
                    informational=informational,
                )
            )
        # Reps with the most urgent item first; reps with nothing flagged last, by name.
        def _lead(s):  # a rep's most urgent item other than the weekly scorecard leads the rep's ranking
            return next((e for e in s.entries if e.flag.rule_id != SCORECARD_RULE), s.entries[0])

        sections.sort(key=lambda s: (0, _rank_key(_lead(s).flag)) if s.entries else (1, (s.rep_name, s.rep_id)))
        for rank, entry in enumerate(sorted((e for s in sections for e in s.entries), key=lambda e: _rank_key(e.flag)), 1):
            entry.rank = rank
        digests.append(
            Digest(
                run_id=run_id,
                as_of=as_of,
                manager_id=manager_id,
                manager_name=str(manager.get("manager_name") or manager_id),
                slack_user_id=manager.get("slack_user_id") or None,
                email=manager.get("email") or None,
                reps=sections,
                max_items_per_rep=max_items_per_rep,
                decide_first_n=decide_first_n,
                query_pages=_pages_for(sections, query_details, metric_defs, page_cache),
                demoted=dict(demoted or {}),
                lift_floor=lift_floor,
            )
        )
    return digests


def _pages_for(sections, query_details, metric_defs, cache: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """The page data of every query a digest cites; ``cache`` (query id -> page data) shares one object per
    query between the digests of a run, so the outbox renders and writes each page once, not once per manager."""
    if not query_details:
        return {}
    from agents.review.query_pages import page_data

    cache = {} if cache is None else cache
    cited = {q for s in sections for e in s.entries for q in e.flag.semantic_query_ids}
    cited |= {link.url.rsplit("/", 1)[-1].removesuffix(".html") for s in sections for e in s.entries for link in e.query_links if link.url}
    pages = {}
    for q in sorted(cited):
        if q in query_details:
            if q not in cache:
                cache[q] = page_data(query_details[q], metric_defs or {})
            pages[q] = cache[q]
    return pages


def _active(rep: Mapping[str, Any]) -> bool:
    value = rep.get("is_active", True)
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "t", "yes", "y")
    return bool(value)


def entry_evidence(digest: Digest, section: RepSection, entry: DigestEntry) -> dict[str, Any]:
    """What the ledger keeps with an item: the flag, who to reach, and the links shown to the manager.

    The rep's and manager's contact ids live here so the Slack app and the
    publisher never need the warehouse (DuckDB admits one writing process).
    """
    return {
        "flag": entry.flag.model_dump(mode="json"),
        "deal_name": entry.deal_name,
        "subject_label": entry.subject_label,
        "rep": {"rep_id": section.rep_id, "rep_name": section.rep_name, "slack_user_id": section.slack_user_id, "email": section.email},
        "manager": {
            "manager_id": digest.manager_id, "manager_name": digest.manager_name,
            "slack_user_id": digest.slack_user_id, "email": digest.email,
        },
        "links": {
            "related": [dataclasses.asdict(link) for link in entry.related_links],
            "crm": [dataclasses.asdict(link) for link in entry.crm_links],
            "semantic": [dataclasses.asdict(link) for link in entry.query_links],
        },
        "run_id": digest.run_id,
        "rank": entry.rank,
        "number": entry.number,
        "note": entry.note,
    }
