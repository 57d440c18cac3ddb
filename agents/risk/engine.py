"""The risk engine: apply a policy to every open deal and rep as of a date.

``evaluate`` is pure (features, baselines and policy in; a :class:`RiskRun`
out), so the Dagster asset, the CLI and the backtest all call the same code:

1. for each deal: the playbooks active for it, the rules its account tags
   exclude, then every enabled rule with its settings resolved for the deal's
   segment, stage and playbooks;
2. a rule that fires becomes a :class:`RiskFlag` citing CRM rows and the
   semantic-layer query behind its baseline (the model refuses a flag without
   both); excluded and snoozed flags are returned as ``suppressed`` with the
   reason, so they can be logged; rules that cannot judge a deal (missing data)
   are returned as ``not_applicable``;
3. recommendation fatigue: at most ``max_primary_flags_per_deal`` primary
   flags per deal (the other rules that fired ride along as supporting signals,
   their evidence merged into the primary flag), and at most
   ``max_deals_per_rep`` deals per rep per run, ranked by severity x amount;
   the rest are suppressed with reason ``fatigue``.

Flag ids are deterministic (rule, subject, as-of date).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import gc
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agents.risk.baselines import BaselineSet, fetch_baselines
from agents.risk.features import DealFeatures, RepFeatures, load_deal_features, load_rep_features
from agents.risk.models import CrmRecordRef, RiskFlag, SupportingSignal
from agents.risk.policy import REP_RULES, ResolvedRule, RiskPolicy
from agents.risk.rules import DEAL_RULES, REP_RULES as REP_RULE_FUNCS
from agents.risk.rules import NotApplicable as _NA
from agents.risk.rules import RuleContext, RuleHit, evaluate_custom_rule

if TYPE_CHECKING:
    from agents.semantic_layer import SemanticLayer

__all__ = ["NotApplicableRule", "RiskRun", "Snooze", "SuppressedFlag", "activity_windows", "assess", "evaluate", "gc_paused"]


class Snooze(BaseModel):
    """A manager's "not now": suppress a deal's flags (one rule, or all when rule_id is None) through a date.

    ``until`` is inclusive, as in the review ledger: the flag is silent on ``until`` and comes back the day after. For a rep-level flag, put the rep id in ``opportunity_id``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    opportunity_id: str = Field(min_length=1)
    rule_id: str | None = None
    until: dt.date
    reason: str = ""
    by: str = ""

    def covers(self, flag: RiskFlag, as_of: dt.date) -> bool:
        subject = flag.opportunity_id if flag.subject == "opportunity" else flag.rep_id
        return subject == self.opportunity_id and (self.rule_id in (None, flag.rule_id)) and as_of <= self.until


class SuppressedFlag(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    flag: RiskFlag
    kind: Literal["snooze", "exclusion", "fatigue"]
    reason: str
    by: str | None = None
    until: dt.date | None = None


class NotApplicableRule(BaseModel):
    """A rule that could not judge some subjects, and why (e.g. the source has no activity log)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    rule_id: str
    reason: str
    count: int
    subject_ids: list[str] = Field(default_factory=list)


class RiskRun(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    as_of: dt.date
    policy_version: str
    policy_digest: str = ""
    deals_evaluated: int
    reps_evaluated: int
    flags: list[RiskFlag]
    suppressed: list[SuppressedFlag] = Field(default_factory=list)
    not_applicable: list[NotApplicableRule] = Field(default_factory=list)
    semantic_query_ids: list[str] = Field(default_factory=list)

    def flags_by_rule(self, *, include_supporting: bool = True) -> dict[str, set[str]]:
        """rule id -> subject ids it fired on (primary or, by default, supporting)."""
        out: dict[str, set[str]] = defaultdict(set)
        for f in self.flags:
            subject = f.opportunity_id if f.subject == "opportunity" else f.rep_id
            out[f.rule_id].add(subject)
            if include_supporting:
                for s in f.supporting:
                    out[s.rule_id].add(subject)
        return dict(out)


# How far back the rules read a deal's activities: meetings over the cadence windows (and the
# custom-rule features: meetings_prior_8w looks 84 days back), any activity over "active within N days".
_MEETING_DAYS_PARAMS, _MEETING_WEEKS_PARAMS, _ANY_DAYS_PARAMS = ("recent_days",), ("prior_weeks",), ("active_within_days",)
_FEATURE_MEETING_DAYS = 84


def activity_windows(policy: RiskPolicy) -> tuple[int, int]:
    """(meeting days, any-activity days): how far back any rule of ``policy`` reads meetings and
    activities of any type, in any override or playbook (upper bounds: the largest day window plus
    the largest week window, plus a day). Anything older matters only as the deal's last activity,
    its last decision-maker activity and the activity count, which the compact feature query keeps
    (features.load_deal_features)."""
    meeting_days, meeting_weeks, any_days = [_FEATURE_MEETING_DAYS], [0], [0]

    def collect(params) -> None:
        if params is None:
            return
        values = params if isinstance(params, dict) else params.model_dump()
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                for names, into in ((_MEETING_DAYS_PARAMS, meeting_days), (_MEETING_WEEKS_PARAMS, meeting_weeks),
                                    (_ANY_DAYS_PARAMS, any_days)):
                    if key in names:
                        into.append(int(value))

    for rule_id, cfg in policy.all_rule_configs().items():
        collect(policy.resolve(rule_id).params)  # the defaults of the rule's parameter model
        collect(cfg.params)
        for ov in cfg.overrides:
            collect(ov.params)
    for pb in policy.spec.playbooks.values():
        for ov in pb.overrides.values():
            collect(ov.params)
    return max(meeting_days) + 7 * max(meeting_weeks) + 1, max(any_days) + 1


def _stage_orders(deals: Sequence[DealFeatures], given: Mapping[str, int] | None) -> dict[str, int]:
    out = dict(given or {})
    for d in deals:
        if d.stage and d.stage_order is not None:
            out.setdefault(d.stage, d.stage_order)
    return out


def _flag(
    hit: RuleHit,
    rule: ResolvedRule,
    *,
    as_of: dt.date,
    policy: RiskPolicy,
    playbooks: list[str],
    deal: DealFeatures | None = None,
    rep: RepFeatures | None = None,
) -> RiskFlag:
    confidence = max(0.0, min(1.0, rule.confidence * hit.confidence_factor))
    common: dict[str, Any] = dict(
        rule_id=hit.rule_id,
        observed=hit.observed,
        threshold=hit.threshold,
        baseline=hit.baseline,
        severity=rule.severity_for(hit.ratio),
        confidence=round(confidence, 3),
        message=hit.message,
        policy_version=policy.version,
        as_of=as_of,
        crm_records=list(hit.records),
        semantic_query_ids=hit.query_ids,
        action_hint=hit.action_hint,
        playbooks=list(playbooks),
    )
    if deal is not None:
        return RiskFlag(
            flag_id=RiskFlag.make_id(hit.rule_id, deal.opportunity_id, as_of),
            subject="opportunity",
            opportunity_id=deal.opportunity_id,
            rep_id=deal.owner_rep_id,
            manager_id=deal.manager_id,
            segment=deal.segment,
            stage=deal.stage,
            amount=deal.amount,
            **common,
        )
    assert rep is not None
    return RiskFlag(
        flag_id=RiskFlag.make_id(hit.rule_id, rep.rep_id, as_of),
        subject="rep",
        rep_id=rep.rep_id,
        manager_id=rep.manager_id,
        segment=rep.segment,
        amount=rep.open_amount,
        **common,
    )


def _merge_supporting(primary: RiskFlag, others: list[RiskFlag]) -> RiskFlag:
    if not others:
        return primary
    records: list[CrmRecordRef] = list(primary.crm_records)
    seen = {(r.object, r.record_id) for r in records}
    qids = list(primary.semantic_query_ids)
    for f in others:
        for r in f.crm_records:
            if (r.object, r.record_id) not in seen:
                seen.add((r.object, r.record_id))
                records.append(r)
        for q in f.semantic_query_ids:
            if q not in qids:
                qids.append(q)
    supporting = [
        SupportingSignal(rule_id=f.rule_id, severity=f.severity, observed=f.observed, threshold=f.threshold, message=f.message)
        for f in others
    ]
    return primary.model_copy(
        update={"crm_records": records, "semantic_query_ids": qids, "supporting": list(primary.supporting) + supporting}
    )


def _rank_key(f: RiskFlag, order: Mapping[str, int]) -> tuple:
    return (-f.severity_rank, -f.confidence, order.get(f.rule_id, 999), f.flag_id)


def evaluate(
    deals: Sequence[DealFeatures],
    reps: Sequence[RepFeatures],
    baselines: BaselineSet,
    policy: RiskPolicy,
    as_of: dt.date,
    snoozes: Iterable[Snooze] = (),
    *,
    stage_orders: Mapping[str, int] | None = None,
    deals_evaluated: int | None = None,
    may_fire: Mapping[str, Collection[str]] | None = None,
) -> RiskRun:
    """Apply ``policy`` to the deals and reps (features as of ``as_of``) and return the run.

    ``deals`` may be only the deals some rule can fire on (the set-based gate's candidates): then
    pass the open deals' ``stage_orders`` and their count as ``deals_evaluated``. ``may_fire`` (the
    gate's, :attr:`agents.risk.setbased.GateResult.may_fire`): deal -> the rules whose SQL condition
    holds for it; the other rules are not run on that deal (they cannot fire on it, nor fail to judge it)."""
    snoozes = list(snoozes)
    orders = _stage_orders(deals, stage_orders)
    rule_order = {r: i for i, r in enumerate(policy.rule_ids)}
    deal_rule_ids = [r for r in policy.rule_ids if r not in REP_RULES]
    na: dict[tuple[str, str], list[str]] = defaultdict(list)
    suppressed: list[SuppressedFlag] = []
    per_deal: list[list[RiskFlag]] = []  # primary first, for each deal with flags

    def snoozed(flag: RiskFlag) -> Snooze | None:
        return next((s for s in snoozes if s.covers(flag, as_of)), None)

    # A rule's settings depend only on (segment, stage, playbooks): resolve each combination once.
    resolved: dict[tuple, ResolvedRule] = {}

    def resolve(rule_id: str, segment: str | None, stage: str | None, playbooks: list[str]) -> ResolvedRule:
        key = (rule_id, segment, stage, tuple(playbooks))
        if key not in resolved:
            resolved[key] = policy.resolve(rule_id, segment=segment, stage=stage, playbooks=playbooks)
        return resolved[key]

    for deal in deals:
        scalars = deal.scalars()
        playbooks = policy.active_playbooks(as_of, scalars)
        excluded = policy.excluded_rules(deal.account_tags)
        fired: list[RiskFlag] = []
        allowed = None if may_fire is None else may_fire.get(deal.opportunity_id)
        for rule_id in deal_rule_ids:
            if allowed is not None and rule_id not in allowed:
                continue
            rule = resolve(rule_id, deal.segment, deal.stage, playbooks)
            if not rule.enabled:
                continue
            ctx = RuleContext(as_of=as_of, rule=rule, baselines=baselines, stage_orders=orders)
            fn = evaluate_custom_rule if rule.is_custom else DEAL_RULES[rule_id]
            outcome = fn(deal, ctx)
            if outcome is None:
                continue
            if isinstance(outcome, _NA):
                na[(rule_id, outcome.reason)].append(deal.opportunity_id)
                continue
            flag = _flag(outcome, rule, as_of=as_of, policy=policy, playbooks=playbooks, deal=deal)
            if rule_id in excluded:
                suppressed.append(SuppressedFlag(flag=flag, kind="exclusion", reason=excluded[rule_id]))
            elif (s := snoozed(flag)) is not None:
                suppressed.append(SuppressedFlag(flag=flag, kind="snooze", reason=s.reason or "snoozed", by=s.by or None, until=s.until))
            else:
                fired.append(flag)
        if not fired:
            continue
        fired.sort(key=lambda f: _rank_key(f, rule_order))
        n_primary = policy.fatigue.max_primary_flags_per_deal
        primaries = fired[:n_primary]
        rest = [f.model_copy(update={"is_primary": False}) for f in fired[n_primary:]]
        primaries[0] = _merge_supporting(primaries[0], rest)
        per_deal.append(primaries)

    # At most M deals per rep, ranked by severity x amount.
    by_rep: dict[str | None, list[list[RiskFlag]]] = defaultdict(list)
    for flags in per_deal:
        by_rep[flags[0].rep_id].append(flags)
    kept: list[RiskFlag] = []
    limit = policy.fatigue.max_deals_per_rep
    for rep_id in sorted(by_rep, key=lambda r: r or ""):
        ranked = sorted(
            by_rep[rep_id],
            key=lambda fl: (-max(f.priority for f in fl), -max(f.severity_rank for f in fl), fl[0].opportunity_id or ""),
        )
        for i, flags in enumerate(ranked):
            if rep_id is None or i < limit:
                kept.extend(flags)
            else:
                for f in flags:
                    suppressed.append(
                        SuppressedFlag(
                            flag=f, kind="fatigue",
                            reason=f"rep {rep_id} already has {limit} deals flagged in this run (ranked by severity x amount)",
                        )
                    )

    # Rep-level rules.
    for rep in reps:
        for rule_id in [r for r in policy.rule_ids if r in REP_RULES]:
            rule = policy.resolve(rule_id, segment=rep.segment, playbooks=policy.active_playbooks(as_of))
            if not rule.enabled:
                continue
            ctx = RuleContext(as_of=as_of, rule=rule, baselines=baselines, stage_orders=orders)
            outcome = REP_RULE_FUNCS[rule_id](rep, ctx)
            if outcome is None:
                continue
            if isinstance(outcome, _NA):
                na[(rule_id, outcome.reason)].append(rep.rep_id)
                continue
            flag = _flag(outcome, rule, as_of=as_of, policy=policy, playbooks=policy.active_playbooks(as_of), rep=rep)
            if (s := snoozed(flag)) is not None:
                suppressed.append(SuppressedFlag(flag=flag, kind="snooze", reason=s.reason or "snoozed", by=s.by or None, until=s.until))
            else:
                kept.append(flag)

    kept.sort(key=lambda f: (-f.priority, f.flag_id))
    return RiskRun(
        as_of=as_of,
        policy_version=policy.version,
        policy_digest=policy.digest,
        deals_evaluated=len(deals) if deals_evaluated is None else deals_evaluated,
        reps_evaluated=len(reps),
        flags=kept,
        suppressed=suppressed,
        not_applicable=[
            NotApplicableRule(rule_id=r, reason=reason, count=len(ids), subject_ids=sorted(ids))
            for (r, reason), ids in sorted(na.items())
        ],
        semantic_query_ids=baselines.query_ids,
    )


def assess(
    warehouse: Any,
    layer: SemanticLayer,
    policy: RiskPolicy,
    as_of: dt.date,
    snoozes: Iterable[Snooze] = (),
    *,
    baselines: BaselineSet | None = None,
    set_based: bool = True,
) -> tuple[RiskRun, BaselineSet]:
    """Baselines from the semantic layer, features from the warehouse, then :func:`evaluate`.

    ``warehouse``: an :class:`agents.warehouse.Warehouse` (DuckDB file or PostgreSQL), a DuckDB file's
    path, or an open :class:`agents.warehouse.WarehouseConnection` (the run's connection, used and
    left open). The semantic-layer queries run first, then the features are read (a new connection
    is read-only: DuckDB refuses a second in-process connection to a file with a different
    configuration). Returns the run and the baseline set (whose ``results`` the caller stores as
    provenance).

    ``set_based`` (the default): the rule conditions run as SQL in the warehouse
    (:mod:`agents.risk.setbased`) and only the deals they let through become Python
    objects; the flags are the same as the row-by-row path's (``set_based=False``).
    """
    if baselines is None:
        baselines = fetch_baselines(
            layer, as_of,
            min_closed_deals=policy.min_closed_deals,
            fallback_confidence=policy.baseline_settings.fallback_confidence,
        )
    with warehouse_connection(warehouse, read_only=True) as con, gc_paused():
        return evaluate_in_warehouse(con, baselines, policy, as_of, snoozes, set_based=set_based), baselines


@contextlib.contextmanager
def gc_paused():
    """Python's cyclic garbage collector paused for the block (restored as it was after it).

    The risk step builds many short-lived objects (the candidates' rows, features, flags) in a process
    whose heap is large (Dagster, dbt, MetricFlow): each collection walks that whole heap, and they
    cost more than the objects themselves (measured: building the scale-10 candidates' features
    0.17 -> 0.075 CPU-s with the collector paused). The block creates no reference cycles worth
    collecting early; reference counting still frees everything as usual."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def warehouse_connection(warehouse: Any, read_only: bool = False):
    """A context manager giving a WarehouseConnection: ``warehouse`` itself when it is one (left open),
    else a new connection to the Warehouse (or DuckDB path) it names."""
    from agents.warehouse import Warehouse, WarehouseConnection

    if isinstance(warehouse, WarehouseConnection):
        return contextlib.nullcontext(warehouse)
    return Warehouse.coerce(warehouse).connect(read_only=read_only)


def evaluate_in_warehouse(
    con,
    baselines: BaselineSet,
    policy: RiskPolicy,
    as_of: dt.date,
    snoozes: Iterable[Snooze] = (),
    *,
    set_based: bool = True,
) -> RiskRun:
    """:func:`evaluate` over the deals open in the warehouse at ``as_of``: a DuckDB connection, or a
    :class:`agents.warehouse.WarehouseConnection` (DuckDB or PostgreSQL).

    Set-based: the gate query (rule conditions as SQL) picks the deals some rule fires on or
    cannot judge; only those are loaded as features and judged by the rule functions (message,
    evidence, severity), then fatigue ranks the fired flags. Falls back to loading every open
    deal when the policy or the source needs it (:func:`agents.risk.setbased.gate_supported`).
    On PostgreSQL the gate runs on the server and the candidates' features are read from an
    in-memory copy of their rows (:mod:`agents.risk.mirror`)."""
    from agents.risk import setbased
    from agents.risk.features import load_source_coverage

    if getattr(con, "dialect", None) == "postgres":
        return _evaluate_on_server(con, baselines, policy, as_of, snoozes, set_based=set_based)
    con = getattr(con, "raw", con)  # the feature SQL takes DuckDB's own connection
    coverage = load_source_coverage(con)
    windows = activity_windows(policy)
    if set_based and setbased.gate_supported(policy, coverage) is None:
        # One query: the candidates, with their columns and evidence rows aggregated in SQL.
        gate = setbased.run_gate(con, policy, as_of, baselines, activity_windows=windows, coverage=coverage)
        deals = gate.deals
        reps = _reps_at(con, as_of, gate.open_deals)
        return evaluate(deals, reps, baselines, policy, as_of, snoozes,
                        stage_orders=gate.stage_orders, deals_evaluated=len(gate.open_deals), may_fire=gate.may_fire)
    deals = load_deal_features(con, as_of, coverage=coverage, activity_windows=windows)
    reps = load_rep_features(con, as_of, deals=deals)
    return evaluate(deals, reps, baselines, policy, as_of, snoozes)


def _evaluate_on_server(con, baselines, policy, as_of, snoozes, *, set_based: bool) -> RiskRun:
    """:func:`evaluate_in_warehouse` on PostgreSQL: the gate on the server, the features from a mirror."""
    from agents.risk import setbased
    from agents.risk.mirror import feature_mirror, server_coverage

    coverage = server_coverage(con)
    windows = activity_windows(policy)
    if set_based and setbased.gate_supported(policy, coverage) is None:
        gate = setbased.run_gate(con, policy, as_of, baselines)
        with feature_mirror(con, only=gate.candidates) as duck:
            deals = load_deal_features(duck, as_of, coverage=coverage, activity_windows=windows, only=gate.candidates)
            reps = _reps_at(duck, as_of, gate.open_deals)
        return evaluate(deals, reps, baselines, policy, as_of, snoozes,
                        stage_orders=gate.stage_orders, deals_evaluated=len(gate.open_deals))
    with feature_mirror(con) as duck:
        deals = load_deal_features(duck, as_of, coverage=coverage, activity_windows=windows)
        reps = load_rep_features(duck, as_of, deals=deals)
    return evaluate(deals, reps, baselines, policy, as_of, snoozes)


def _reps_at(con, as_of: dt.date, open_deals: Mapping[str, tuple[str | None, float | None]]) -> list[RepFeatures]:
    """Every rep with the deals they held open at ``as_of`` and their amounts then (as
    :func:`load_rep_features` counts them from the deal features)."""
    ids: dict[str, list[str]] = defaultdict(list)
    amounts: dict[str, float] = defaultdict(float)
    for opp, (rep_id, amount) in open_deals.items():  # in opportunity id order, as the features are
        if rep_id:
            ids[rep_id].append(opp)
            amounts[rep_id] += amount or 0.0
    return [
        dataclasses.replace(r, open_deal_ids=tuple(sorted(ids.get(r.rep_id, ()))),
                            open_amount=float(amounts.get(r.rep_id, 0.0)))
        for r in load_rep_features(con, as_of)
    ]
