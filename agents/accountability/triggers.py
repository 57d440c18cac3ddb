"""Rep-level triggers: a rep's pipeline or performance crossing a line the policy draws.

``evaluate_rep_triggers`` is pure (governed rep metrics, the rep's CRM rows and the policy in;
flags, suppressed flags and "not applicable" reports out), in the shapes the risk engine and the
review loop already handle: each fired trigger is a :class:`~agents.risk.models.RiskFlag` with
``subject="rep"``, citing the rep's CRM rows and the semantic-layer query ids behind its numbers.

| trigger | fires when (defaults) |
|---|---|
| low_coverage | open pipeline closing in the quarter < 3x the remaining quota |
| win_rate_drop | win rate over the last 90 days > 10 points below the rep's own norm (the 365 days before) and below the segment's |
| attainment_below_midpoint | from the quarter's midpoint on, attainment to date < 50% |
| single_threaded_deals | 2+ open deals from Proposal on with at most one contact engaged |
| activity_below_floor | activities (meetings, calls, emails) per week over the last 2 complete weeks < 10 |
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from agents.accountability.evidence import RepRows
from agents.accountability.metrics import RepMetrics, RepMetricSet
from agents.accountability.policy import TRIGGERS, AccountabilitySettings, ResolvedTrigger
from agents.risk.models import SEVERITY_RANK, Baseline, CrmRecordRef, RiskFlag, SupportingSignal

MAX_DEALS_CITED = 5


class _NA:
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _money(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f}"


def _rep_ref(rep: RepRows, note: str) -> CrmRecordRef:
    return CrmRecordRef(object="rep", record_id=rep.rep_id, note=note)


def _deal_refs(deals: list[dict[str, Any]], note) -> list[CrmRecordRef]:
    return [
        CrmRecordRef(object="opportunity", record_id=d["opportunity_id"], source_url=d.get("source_url"), note=note(d))
        for d in deals[:MAX_DEALS_CITED]
    ]


class _Hit:
    """``at_stake``: the amount the item is about (ranks it, severity x amount, among the manager's items):
    the pipeline missing for coverage, the quota left for attainment, the single-threaded deals'
    amount; else the rep's open pipeline."""

    def __init__(self, observed, threshold, message, records, query_ids, baseline=None, ratio=None, at_stake=None) -> None:
        self.observed, self.threshold, self.message = observed, threshold, message
        self.records, self.query_ids, self.baseline, self.ratio = records, query_ids, baseline, ratio
        self.at_stake = at_stake


def _low_coverage(rep: RepRows, m: RepMetrics, ms: RepMetricSet, t: ResolvedTrigger):
    if not ms.has_quotas:
        return _NA("the source has no quotas (add a quotas file or map the CRM's quotas)")
    if m.coverage_quota is None:
        return _NA("no quota recorded for the rep in the period")
    remaining = m.remaining_quota
    if not remaining:
        return None  # quota already met: nothing to cover
    cov = m.pipeline_closing / remaining
    if cov >= t.params.min_coverage:
        return None
    p = ms.periods
    period = "this quarter" if p.coverage_start == p.quarter_start else "next quarter"
    qid = ms.query_id("pipeline_closing")
    msg = (f"Open pipeline closing {period} is {_money(m.pipeline_closing)}, {cov:.1f}x the remaining quota of "
           f"{_money(remaining)} (policy: at least {t.params.min_coverage:g}x).")
    closing = rep.deals.get("closing", [])
    refs = [_rep_ref(rep, f"quota {_money(m.coverage_quota)}, won {_money(m.coverage_won)} in the period"),
            *_deal_refs(closing, lambda d: f"open, {_money(d['amount'])}, closes {d['close_date']}")]
    base = Baseline(metric="pipeline_closing_amount", value=m.pipeline_closing, slice={"rep": rep.rep_id, "period": period},
                    semantic_query_id=qid)
    return _Hit(round(cov, 2), t.params.min_coverage, msg, refs,
                [qid, ms.query_id("coverage_quota"), ms.query_id("coverage_won")], base,
                ratio=t.params.min_coverage / max(cov, 0.01),
                at_stake=max(0.0, t.params.min_coverage * remaining - m.pipeline_closing))


def _win_rate_drop(rep: RepRows, m: RepMetrics, ms: RepMetricSet, t: ResolvedTrigger):
    pr = t.params
    if m.closed_recent < pr.min_closed or m.closed_norm < pr.min_closed or m.win_rate_recent is None or m.win_rate_norm is None:
        return _NA(f"fewer than {pr.min_closed} closed deals in the recent or the norm window")
    drop = (m.win_rate_norm - m.win_rate_recent) * 100
    if drop <= pr.max_drop_points:
        return None
    seg_rate, _ = ms.segment_win_rate.get(rep.segment or "", (None, 0))
    seg_drop = None if seg_rate is None else (seg_rate - m.win_rate_recent) * 100
    if pr.compare_segment and (seg_drop is None or seg_drop <= pr.max_drop_points):
        return None
    seg_txt = f" and the {rep.segment} segment's {seg_rate:.0%}" if seg_rate is not None else ""
    msg = (f"Win rate over the last {pr.recent_days} days is {m.win_rate_recent:.0%} ({m.closed_recent} closed deals), "
           f"{drop:.0f} points below the rep's own norm of {m.win_rate_norm:.0%}{seg_txt} "
           f"(policy: at most {pr.max_drop_points:g} points).")
    lost = rep.deals.get("lost", [])
    refs = [_rep_ref(rep, f"norm {m.win_rate_norm:.0%} over {m.closed_norm} closed deals"),
            *_deal_refs(lost, lambda d: f"lost, {_money(d['amount'])}")]
    qids = [ms.query_id("win_rate_recent"), ms.query_id("win_rate_norm")]
    if pr.compare_segment:
        qids.append(ms.query_id("win_rate_segment"))
    base = Baseline(metric="win_rate", value=m.win_rate_norm, slice={"rep": rep.rep_id, "window": f"{pr.norm_days} days before the last {pr.recent_days}"},
                    sample_size=m.closed_norm, semantic_query_id=ms.query_id("win_rate_norm"))
    return _Hit(round(m.win_rate_recent, 3), round(m.win_rate_norm - pr.max_drop_points / 100, 3), msg, refs, qids, base,
                ratio=drop / pr.max_drop_points)


def _attainment(rep: RepRows, m: RepMetrics, ms: RepMetricSet, t: ResolvedTrigger):
    if not ms.has_quotas:
        return _NA("the source has no quotas (add a quotas file or map the CRM's quotas)")
    p = ms.periods
    if ms.as_of < p.midpoint:
        return _NA(f"before the quarter's midpoint ({p.midpoint:%d %b %Y})")
    if not m.quota:
        return _NA("no quota recorded for the rep this quarter")
    att = m.attainment if m.attainment is not None else m.won_amount / m.quota
    if att >= t.params.min_attainment:
        return None
    qid = ms.query_id("attainment")
    msg = (f"Attainment to date is {att:.0%} ({_money(m.won_amount)} won of a {_money(m.quota)} quota) "
           f"{p.quarter_elapsed:.0%} into the quarter (policy: at least {t.params.min_attainment:.0%} from the midpoint).")
    refs = [_rep_ref(rep, f"quota {_money(m.quota)} for the quarter from {p.quarter_start}"),
            *_deal_refs(rep.deals.get("won", []), lambda d: f"won, {_money(d['amount'])}")]
    base = Baseline(metric="quota_attainment", value=att, slice={"rep": rep.rep_id, "quarter": p.quarter_start.isoformat()},
                    semantic_query_id=qid)
    return _Hit(round(att, 3), t.params.min_attainment, msg, refs, [qid], base,
                ratio=t.params.min_attainment / max(att, 0.01), at_stake=max(0.0, m.quota - m.won_amount))


def _single_threaded(rep: RepRows, m: RepMetrics, ms: RepMetricSet, t: ResolvedTrigger, stages: dict[str, int]):
    pr = t.params
    if not ms.has_activities:
        return _NA("the source has no activity log (contacts engaged are unknown)")
    if pr.from_stage not in stages:
        return _NA(f"stage {pr.from_stage!r} is not in the pipeline")
    order = stages[pr.from_stage]
    deals = [d for d in rep.deals.get("open", []) if (d["stage_order"] or 0) >= order and d["contacts"] <= pr.max_contacts]
    if len(deals) < pr.min_deals:
        return None
    amount = sum(d["amount"] or 0 for d in deals)
    msg = (f"{len(deals)} open deals from {pr.from_stage} on ({_money(amount)}) have at most {pr.max_contacts} "
           f"contact{'s' if pr.max_contacts != 1 else ''} engaged (policy: fewer than {pr.min_deals} such deals).")
    refs = [_rep_ref(rep, f"{len(deals)} single-threaded deals"),
            *_deal_refs(deals, lambda d: f"{d['stage']}, {d['contacts']} contact(s) engaged, {_money(d['amount'])}")]
    qid = ms.query_id("open_pipeline")
    base = Baseline(metric="pipeline_closing_amount", value=m.open_pipeline, slice={"rep": rep.rep_id, "open at": ms.as_of.isoformat()},
                    semantic_query_id=qid)
    return _Hit(len(deals), pr.min_deals, msg, refs, [qid], base, ratio=len(deals) / pr.min_deals, at_stake=amount)


def _activity_floor(rep: RepRows, m: RepMetrics, ms: RepMetricSet, t: ResolvedTrigger):
    pr = t.params
    if not ms.has_activities:
        return _NA("the source has no activity log")
    weeks = ms.periods.weeks[-pr.weeks:]
    if rep.hired_on is not None and rep.hired_on > weeks[0]:
        return _NA("hired during the window")
    total = sum(n for w in weeks for typ, n in m.activities_by_week.get(w, {}).items() if typ in pr.types)
    per_week = total / len(weeks)
    if per_week >= pr.min_per_week:
        return None
    msg = (f"{per_week:.1f} activities ({', '.join(pr.types)}) a week over the last {len(weeks)} complete weeks "
           f"(policy floor: {pr.min_per_week:g} a week).")
    refs = [_rep_ref(rep, f"{total} activities in {len(weeks)} weeks")] + [
        CrmRecordRef(object="activity", record_id=a["activity_id"], note=f"last {a['activity_type']} {a['occurred_at']:%Y-%m-%d}")
        for a in rep.recent_activities]
    qid = ms.query_id("activities_by_week")
    base = Baseline(metric="activity_count", value=per_week, slice={"rep": rep.rep_id, "per": "week"}, semantic_query_id=qid)
    return _Hit(round(per_week, 1), pr.min_per_week, msg, refs, [qid], base,
                ratio=pr.min_per_week / max(per_week, 0.1))


_FUNCS = {
    "low_coverage": _low_coverage,
    "win_rate_drop": _win_rate_drop,
    "attainment_below_midpoint": _attainment,
    "activity_below_floor": _activity_floor,
}


def evaluate_rep_triggers(
    metrics: RepMetricSet,
    reps: dict[str, RepRows],
    stages: dict[str, int],
    settings: AccountabilitySettings,
    *,
    as_of: dt.date,
    policy_version: str,
    playbooks: list[str] = (),
    snoozes: Iterable[Any] = (),
):
    """Fire the enabled triggers for every active rep. Returns (flags, suppressed, not_applicable)
    with the risk engine's types (agents/risk/engine.py)."""
    from agents.risk.engine import NotApplicableRule, SuppressedFlag

    snoozes = list(snoozes)
    flags_by_rep: dict[str, list[RiskFlag]] = defaultdict(list)
    na: dict[tuple[str, str], list[str]] = defaultdict(list)
    suppressed = []
    for rep in sorted(reps.values(), key=lambda r: r.rep_id):
        if not rep.is_active:
            continue
        m = metrics.reps.get(rep.rep_id) or RepMetrics(rep.rep_id)
        for tid in TRIGGERS:
            t = settings.trigger(tid, segment=rep.segment, playbooks=list(playbooks))
            if not t.enabled:
                continue
            out = (_single_threaded(rep, m, metrics, t, stages) if tid == "single_threaded_deals"
                   else _FUNCS[tid](rep, m, metrics, t))
            if out is None:
                continue
            if isinstance(out, _NA):
                na[(tid, out.reason)].append(rep.rep_id)
                continue
            flag = RiskFlag(
                flag_id=RiskFlag.make_id(tid, rep.rep_id, as_of), rule_id=tid, subject="rep", rep_id=rep.rep_id,
                manager_id=rep.manager_id, segment=rep.segment,
                amount=(out.at_stake if out.at_stake is not None else m.open_pipeline) or None,
                observed=out.observed, threshold=out.threshold, baseline=out.baseline,
                severity=t.severity_for(out.ratio), confidence=t.confidence, message=out.message,
                policy_version=policy_version, as_of=as_of, crm_records=out.records,
                semantic_query_ids=list(dict.fromkeys(out.query_ids)), playbooks=list(playbooks),
            )
            snooze = next((s for s in snoozes if s.covers(flag, as_of)), None)
            if snooze is not None:
                suppressed.append(SuppressedFlag(flag=flag, kind="snooze", reason=snooze.reason or "snoozed",
                                                 by=snooze.by or None, until=snooze.until))
            else:
                flags_by_rep[rep.rep_id].append(flag)
    kept: list[RiskFlag] = []
    for rep_id, fired in flags_by_rep.items():
        fired.sort(key=lambda f: (-SEVERITY_RANK[f.severity], -f.confidence, TRIGGERS.index(f.rule_id)))
        n = settings.max_primary_flags_per_rep
        primaries, rest = fired[:n], fired[n:]
        if rest:  # fatigue: the others ride along as supporting signals (like a deal's), their evidence merged
            primaries[0] = _merge(primaries[0], rest)
        kept.extend(primaries)
    not_applicable = [NotApplicableRule(rule_id=r, reason=why, count=len(ids), subject_ids=sorted(ids))
                      for (r, why), ids in sorted(na.items())]
    return kept, suppressed, not_applicable


def _merge(primary: RiskFlag, others: list[RiskFlag]) -> RiskFlag:
    records = list(primary.crm_records)
    seen = {(r.object, r.record_id) for r in records}
    qids = list(primary.semantic_query_ids)
    for f in others:
        for r in f.crm_records:
            if (r.object, r.record_id) not in seen:
                seen.add((r.object, r.record_id))
                records.append(r)
        qids += [q for q in f.semantic_query_ids if q not in qids]
    supporting = [SupportingSignal(rule_id=f.rule_id, severity=f.severity, observed=f.observed, threshold=f.threshold,
                                   message=f.message) for f in others]
    return primary.model_copy(update={"crm_records": records, "semantic_query_ids": qids,
                                      "supporting": list(primary.supporting) + supporting})
