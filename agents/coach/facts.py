"""What a brief may use, read from the warehouse (one deal's CRM rows) and the semantic layer (the team's figures).

The deal's rows are a handful of set-based queries over the marts. The team's figures (what won deals
had done when they left each stage, why lost deals were lost) are two MetricFlow queries per as-of
date, the same for every deal: they are cached per (as-of, semantic manifest, warehouse data) under
``<home>/coach/``, so a brief after the first costs a few warehouse reads and no MetricFlow start-up.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.coach.models import BriefPacket, Citation, Contact, DealFacts

EXIT_SEGMENT, EXIT_STAGE = "coach_exit__segment", "coach_exit__stage"
LOSS_SEGMENT, LOSS_STAGE, LOSS_REASON = "lost_deal__segment", "lost_deal__lost_from_stage", "lost_deal__loss_reason"
EXIT_METRICS = (
    "coach_won_exits", "coach_won_exits_with_decision_maker", "coach_won_exits_with_champion",
    "coach_won_exits_with_influencer", "coach_won_exits_with_technical_evaluator", "coach_won_exits_with_user",
    "coach_won_exits_multithreaded", "coach_won_exits_dm_meeting_in_stage", "coach_won_exits_champion_touch",
    "coach_won_exits_meeting_in_stage", "coach_won_exits_meeting_before_exit",
)
LOSS_METRICS = ("coach_lost_deals",)
ACTIVITY_WINDOW_DAYS = 90


class DealNotFound(LookupError):
    """No deal with that id in the warehouse."""


@dataclass
class TeamQuery:
    """A semantic-layer answer as the brief cites it (query id, request, SQL, rows)."""

    query_id: str
    request: dict[str, Any]
    sql: str
    manifest_hash: str
    result_hash: str
    rows: list[dict[str, Any]]

    @classmethod
    def from_result(cls, r: Any) -> TeamQuery:
        return cls(r.query_id, r.request.as_dict(), r.sql, r.manifest_hash, r.result_hash, [dict(x) for x in r.rows])

    def provenance(self) -> dict[str, Any]:
        return {"query_id": self.query_id, "request": self.request, "sql": self.sql,
                "manifest_hash": self.manifest_hash, "result_hash": self.result_hash}


@dataclass
class TeamFigures:
    as_of: dt.date
    exits: TeamQuery
    losses: TeamQuery
    cached: bool = False


def _where(as_of: dt.date) -> list[str]:
    return [f"{{{{ TimeDimension('metric_time', 'day') }}}} <= '{as_of.isoformat()}'"]


def query_team_figures(layer: Any, as_of: dt.date) -> TeamFigures:
    """The two semantic-layer queries behind every brief of this as-of date (no future outcomes)."""
    exits = layer.query(list(EXIT_METRICS), [EXIT_SEGMENT, EXIT_STAGE], where=_where(as_of))
    losses = layer.query(list(LOSS_METRICS), [LOSS_SEGMENT, LOSS_STAGE, LOSS_REASON], where=_where(as_of))
    return TeamFigures(as_of, TeamQuery.from_result(exits), TeamQuery.from_result(losses))


def data_stamp(con: Any) -> str:
    """A fingerprint of the warehouse's deals: a new landing gives new team figures."""
    row = con.execute(
        "select count(*), max(closed_at), max(created_at), sum(case when is_closed then 1 else 0 end) from marts.fct_opportunities"
    ).fetchone()
    return hashlib.sha256(json.dumps([str(v) for v in row]).encode()).hexdigest()[:16]


def cached_team_figures(
    cache_dir: Path, as_of: dt.date, manifest_sha: str, stamp: str, compute: Callable[[], TeamFigures]
) -> TeamFigures:
    path = Path(cache_dir) / f"team_figures_{as_of.isoformat()}_{manifest_sha[:12]}_{stamp}.json"
    if path.exists():
        try:
            data = json.loads(path.read_text())
            return TeamFigures(as_of, TeamQuery(**data["exits"]), TeamQuery(**data["losses"]), cached=True)
        except (ValueError, KeyError, TypeError):
            pass  # a damaged cache file is recomputed
    figures = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"exits": figures.exits.__dict__, "losses": figures.losses.__dict__}, default=str))
    tmp.replace(path)
    return figures


def _d(v: Any) -> dt.date | None:
    if v is None:
        return None
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    try:
        return dt.date.fromisoformat(str(v)[:10])
    except ValueError:
        return None


def _json_row(cols: list[str], row: tuple) -> dict[str, Any]:
    out = {}
    for k, v in zip(cols, row):
        if isinstance(v, (dt.datetime, dt.date)):
            v = v.isoformat()
        elif v is not None and not isinstance(v, (int, float, str, bool)):
            v = float(v) if hasattr(v, "__float__") else str(v)
        out[k] = v
    return out


def _rows(con: Any, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows as JSON-safe dicts, through agents.warehouse (``:name`` parameters, DuckDB or PostgreSQL)."""
    res = con.execute(sql, params)
    cols = res.columns
    return [_json_row(cols, r) for r in res.fetchall()]


def latest_risk_run(con: Any, as_of: dt.date | None = None) -> dict[str, Any] | None:
    try:
        rows = _rows(con, "select run_id, as_of, max(created_at) as flagged_at from risk.risk_flags "
                     + ("where as_of <= :as_of " if as_of else "") + "group by 1, 2 order by flagged_at desc limit 1",
                     {"as_of": as_of} if as_of else {})
    except Exception as exc:  # no risk schema yet (a warehouse without a risk run)
        if "risk_flags" not in str(exc) and "risk" not in str(exc).lower():
            raise
        return None
    return rows[0] if rows else None


def deal_packet(con: Any, opportunity_id: str, as_of: dt.date, figures: TeamFigures | None, playbook_version: str = "") -> BriefPacket:
    """The packet for one deal: its CRM rows (each cited by its id) and the team figures for its segment x stage."""
    deal_rows = _rows(con, """
        select o.opportunity_id, o.opportunity_name, o.account_id, a.account_name, o.segment, o.stage, o.amount,
               o.close_date, o.created_at, o.is_closed, o.owner_rep_id, r.rep_name, o.manager_id, m.manager_name,
               o.current_stage_entered_at, o.next_step is not null and trim(o.next_step) <> '' as has_next_step,
               o.source_url
        from marts.fct_opportunities o
        left join marts.dim_accounts a on a.account_id = o.account_id
        left join marts.dim_reps r on r.rep_id = o.owner_rep_id
        left join marts.dim_managers m on m.manager_id = o.manager_id
        where o.opportunity_id = :opp""", {"opp": opportunity_id})
    if not deal_rows:
        raise DealNotFound(f"no deal {opportunity_id!r} in the warehouse (marts.fct_opportunities)")
    d = deal_rows[0]
    deal = DealFacts(
        opportunity_id=d["opportunity_id"], name=d["opportunity_name"], account_name=d["account_name"],
        segment=d["segment"], stage=d["stage"], stage_entered=_d(d["current_stage_entered_at"]), amount=d["amount"],
        close_date=_d(d["close_date"]), created=_d(d["created_at"]), is_closed=bool(d["is_closed"]),
        owner_rep_id=d["owner_rep_id"], rep_name=d["rep_name"], manager_id=d["manager_id"], manager_name=d["manager_name"],
        has_next_step=bool(d["has_next_step"]), source_url=d["source_url"],
    )
    p = BriefPacket(as_of=as_of, deal=deal, playbook_version=playbook_version)
    shown = {k: v for k, v in d.items() if k != "has_next_step"}
    p.cite(Citation(id=deal.opportunity_id, kind="crm", table="marts.fct_opportunities", row=shown, url=d["source_url"]))

    horizon = as_of + dt.timedelta(days=1)
    since = as_of - dt.timedelta(days=ACTIVITY_WINDOW_DAYS)
    contacts = _rows(con, """
        with touches as (
            select b.contact_id, a.activity_type, a.occurred_at
            from marts.fct_activities a
            join marts.bridge_activity_contacts b on b.activity_id = a.activity_id
            where a.opportunity_id = :opp and a.occurred_at < :horizon
        )
        select c.contact_id, c.contact_name, c.title, c.buying_role,
               max(t.occurred_at) as last_touch,
               count(t.contact_id) as touches,
               count(case when t.activity_type = 'meeting' and t.occurred_at >= :since then 1 end) as meetings_90d
        from marts.dim_contacts c
        left join touches t on t.contact_id = c.contact_id
        where c.account_id = :account or c.contact_id in (select contact_id from touches)
        group by 1, 2, 3, 4
        order by max(t.occurred_at) desc nulls last, c.contact_id""",
        {"opp": opportunity_id, "horizon": horizon, "since": since, "account": d["account_id"]})
    for c in contacts:
        p.contacts.append(Contact(
            contact_id=c["contact_id"], name=c["contact_name"], title=c["title"], role=c["buying_role"],
            last_touch=_d(c["last_touch"]), meetings_90d=int(c["meetings_90d"] or 0), touches=int(c["touches"] or 0),
            engaged=bool(c["touches"]),
        ))
        p.cite(Citation(id=c["contact_id"], kind="crm", table="marts.dim_contacts + fct_activities", row=c))

    for s in _rows(con, """
            select stage_history_id, stage, entered_at, exited_at from marts.fct_stage_history
            where opportunity_id = :opp and entered_at < :horizon order by entered_at, stage_history_id""",
            {"opp": opportunity_id, "horizon": horizon}):
        p.stints.append(s)
        p.cite(Citation(id=s["stage_history_id"], kind="crm", table="marts.fct_stage_history", row=s))
    for f in _rows(con, """
            select field_history_id, field_name, old_value, new_value, changed_at from marts.fct_field_history
            where opportunity_id = :opp and field_name in ('amount', 'close_date') and changed_at < :horizon
            order by changed_at, field_history_id""", {"opp": opportunity_id, "horizon": horizon}):
        p.changes.append(f)
        p.cite(Citation(id=f["field_history_id"], kind="crm", table="marts.fct_field_history", row=f))
    for a in _rows(con, """
            select a.activity_id, a.activity_type, a.occurred_at, string_agg(b.contact_id, ',' order by b.contact_id) as contact_ids
            from marts.fct_activities a
            left join marts.bridge_activity_contacts b on b.activity_id = a.activity_id
            where a.opportunity_id = :opp and a.occurred_at < :horizon
            group by 1, 2, 3 order by a.occurred_at desc, a.activity_id limit 3""", {"opp": opportunity_id, "horizon": horizon}):
        p.activities.append(a)
        p.cite(Citation(id=a["activity_id"], kind="crm", table="marts.fct_activities", row=a))

    if deal.stage_entered is not None:
        for a in _rows(con, """
                select a.activity_id, a.occurred_at, string_agg(b.contact_id, ',' order by b.contact_id) as contact_ids
                from marts.fct_activities a
                left join marts.bridge_activity_contacts b on b.activity_id = a.activity_id
                where a.opportunity_id = :opp and a.activity_type = 'meeting' and a.occurred_at >= :entered
                  and a.occurred_at < :horizon
                group by 1, 2 order by a.occurred_at desc, a.activity_id limit 10""",
                {"opp": opportunity_id, "entered": deal.stage_entered, "horizon": horizon}):
            p.stage_meetings.append(a)
            p.cite(Citation(id=a["activity_id"], kind="crm", table="marts.fct_activities", row={**a, "activity_type": "meeting"}))

    p.risk_run = latest_risk_run(con, as_of)
    if p.risk_run is not None:
        for f in _rows(con, """
                select flag_id, rule_id, severity, message from risk.risk_flags
                where run_id = :run and opportunity_id = :opp order by priority desc nulls last, flag_id""",
                {"run": p.risk_run["run_id"], "opp": opportunity_id}):
            p.flags.append(f)
            p.cite(Citation(id=f["flag_id"], kind="risk", table="risk.risk_flags", row={**f, "run_id": p.risk_run["run_id"]}))

    if figures is not None:
        row = next((r for r in figures.exits.rows
                    if r.get(EXIT_SEGMENT) == deal.segment and r.get(EXIT_STAGE) == deal.stage), None)
        p.exits_query_id = figures.exits.query_id
        p.exits_row = row
        p.loss_rows = [r for r in figures.losses.rows if r.get(LOSS_SEGMENT) == deal.segment]
        p.losses_query_id = figures.losses.query_id
        p.cite(Citation(id=figures.exits.query_id, kind="query", table="coach_stage_exits", query=figures.exits.provenance(),
                        rows=[row] if row else []))
        p.cite(Citation(id=figures.losses.query_id, kind="query", table="lost_deals", query=figures.losses.provenance(),
                        rows=p.loss_rows))
    return p
