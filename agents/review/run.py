"""The daily review step as plain functions: read the run's flags and drafts from the warehouse,
route them into manager digests, pick the outbound channels, and compute the review KPIs.
Dagster assets, the CLI and tests all call these."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any


from agents.drafting.runner import DraftedItem
from agents.ledger import Ledger
from agents.review.channels import LocalCrmNotesChannel, SlackDmChannel, SmtpEmailChannel
from agents.review.demotion import demoted_rules
from agents.review.digests import Digest, build_digests
from agents.review.query_pages import load_query_details, metric_definitions
from agents.review.recurrence import HeldBack, apply_decisions, prior_decisions
from agents.risk.models import RiskFlag
from agents.risk.policy import RiskPolicy


def _dicts(result) -> list[dict[str, Any]]:
    return result.mappings()


def related_links(packet: dict[str, Any]) -> list[Any]:
    """The deals an item names besides its own, as links: comparable won deals, or a rep's weakest open deals."""
    from agents.review.digests import Link

    out = []
    rule, stage = packet.get("rule_id"), (packet.get("deal") or {}).get("stage")
    after = (
        "after its first decision-maker meeting" if rule in ("no_decision_maker", "stale_cycle")
        else "from creation" if rule in ("close_date_slipped", "amount_swing") or not stage
        else f"after entering {stage}"
    )
    for c in packet.get("comparables") or []:
        days = f", closed {c['days_to_close']} days {after}" if c.get("days_to_close") is not None else ""
        out.append(Link(f"won: {c.get('name') or c['opportunity_id']}{days}", c.get("source_url")))
    for c in packet.get("weakest_deals") or []:
        out.append(Link(f"weak: {c.get('name') or c['opportunity_id']}", c.get("source_url")))
    return out


def _cap_why(reason: str | None) -> str:
    """The engine's per-rep cap reason, in the digest's words ('below the top 5 of this rep by severity x amount')."""
    m = re.search(r"already has (\d+) deals", reason or "")
    return f"below the top {m.group(1)} of this rep by severity x amount" if m else (reason or "per-rep cap")


def _has_table(con, schema: str, table: str) -> bool:
    return con.has_table(schema, table)


def load_digest_inputs(warehouse: Any, as_of: dt.date, semantic_manifest: Path | None = None) -> dict[str, Any]:
    """The latest risk run for ``as_of``: (flag, draft) pairs, reps, managers, deal names, query names."""
    from agents.warehouse import Warehouse

    with Warehouse.coerce(warehouse).connect(read_only=True) as con:
        # the latest drafting run for the day
        run = con.execute(
            """select d.run_id from risk.coaching_drafts d
               where d.as_of = :as_of group by d.run_id order by max(d.created_at) desc nulls last limit 1""",
            {"as_of": as_of},
        ).fetchone()
        pairs = []
        related: dict[str, list[Any]] = {}
        remedy_queries: dict[str, list[str]] = {}
        if run:
            rows = con.execute(
                """select f.flag_json, d.draft_json, d.packet_json from risk.coaching_drafts d
                   join risk.risk_flags f on f.flag_id = d.flag_id and f.run_id = d.run_id
                   where d.run_id = :run_id""",
                {"run_id": run[0]},
            ).fetchall()
            pairs = [(RiskFlag.model_validate_json(f), DraftedItem.model_validate_json(d)) for f, d, _ in rows]
            packets = {flag.flag_id: json.loads(pk) for (flag, _), (_, _, pk) in zip(pairs, rows) if pk}
            related = {fid: related_links(pk) for fid, pk in packets.items()}
            remedy_queries = {fid: [pk["remedy"]["semantic_query_id"]] for fid, pk in packets.items() if pk.get("remedy")}
        reps = _dicts(con.execute("select rep_id, rep_name, manager_id, slack_user_id, email, is_active from marts.dim_reps"))
        managers = _dicts(con.execute("select manager_id, manager_name, slack_user_id, email from marts.dim_managers"))
        opp_ids = sorted({f.opportunity_id for f, _ in pairs if f.opportunity_id})
        deal_names = dict(
            con.execute(
                "select opportunity_id, opportunity_name from marts.fct_opportunities where opportunity_id = any(:ids)",
                {"ids": opp_ids},
            ).fetchall()
        )
        # Flagged deals the engine's per-rep cap kept out of drafting: counted and listed in the digest.
        held_rows = _dicts(
            con.execute(
                """select s.flag_id, s.rule_id, s.subject_id as opportunity_id, o.owner_rep_id as rep_id, o.amount,
                          o.opportunity_name as deal_name, s.reason
                   from risk.suppressed_flags s
                   left join marts.fct_opportunities o on o.opportunity_id = s.subject_id
                   where s.run_id = :run_id and s.kind = 'fatigue'""",
                {"run_id": run[0]},
            )
        ) if run and _has_table(con, "risk", "suppressed_flags") else []
        opp_ids = sorted(set(opp_ids) | {h["opportunity_id"] for h in held_rows if h["opportunity_id"]})
        cited = {q for f, _ in pairs for q in f.semantic_query_ids} | {q for qs in remedy_queries.values() for q in qs}
        query_details = load_query_details(con, cited, as_of) if _has_table(con, "semantic", "semantic_queries") else {}
        query_names = dict(
            con.execute(
                "select query_id, coalesce(saved_query, 'baseline query') from semantic.semantic_queries where as_of = :as_of", {"as_of": as_of}
            ).fetchall()
        )
    held_back = [
        HeldBack(
            flag_id=h["flag_id"], rule_id=h["rule_id"], opportunity_id=h["opportunity_id"], rep_id=h["rep_id"],
            severity=None, amount=h["amount"], kind="cap", why=_cap_why(h["reason"]), deal_name=h["deal_name"],
        )
        for h in held_rows
    ]
    return {
        "risk_run_id": run[0] if run else None,
        "held_back": held_back,
        "related": related,
        "remedy_queries": remedy_queries,
        "query_details": query_details,
        "metric_defs": metric_definitions(semantic_manifest),
        "pairs": pairs,
        "reps": reps,
        "managers": managers,
        "deal_names": deal_names,
        "saved_query_names": query_names,
    }


def prepare_digests(
    ledger: Ledger, inputs: dict[str, Any], policy: RiskPolicy, as_of: dt.date, max_items_per_rep: int,
    *, backtest_lifts: dict[str, float | None] | None = None,
) -> list[Digest]:
    """Today's digests with the managers' standing decisions applied (agents/review/recurrence.py).

    Keyed by the as-of date (not the risk run): re-running a day maps onto the same ledger digest and
    items, so decisions already taken on it stay attached and no second set of pending items appears.
    """
    result = apply_decisions(inputs["pairs"], prior_decisions(ledger, as_of), policy, as_of)
    from agents.autonomy.config import load_autonomy
    from agents.autonomy.digest import apply_levels

    shown, notes, at_l1 = apply_levels(result.shown, result.notes, load_autonomy(policy))  # L1 held back, L2 noted
    return build_digests(
        shown, inputs["reps"], inputs["managers"], as_of, max_items_per_rep,
        run_id=as_of.isoformat(),
        deal_names=inputs["deal_names"], saved_query_names=inputs["saved_query_names"],
        notes=notes, held_back=[*inputs.get("held_back", []), *result.held_back, *at_l1],
        query_details=inputs.get("query_details"), metric_defs=inputs.get("metric_defs"),
        related=inputs.get("related"),
        remedy_queries=inputs.get("remedy_queries"),
        demoted=demoted_rules(
            backtest_lifts, policy.demotion.lift_floor, enabled=policy.demotion.enabled, always=policy.demotion.rules
        ),
        lift_floor=policy.demotion.lift_floor if backtest_lifts or policy.demotion.rules else None,
    )


def slack_web_client(env: dict[str, str] | None = None):
    """A Slack Web API client when SLACK_BOT_TOKEN is set (posting needs no signing secret), else None."""
    env = dict(os.environ) if env is None else env
    if not env.get("SLACK_BOT_TOKEN"):
        return None
    from slack_sdk import WebClient

    base_url = env.get("SLACK_API_BASE_URL")
    return WebClient(token=env["SLACK_BOT_TOKEN"], **({"base_url": base_url} if base_url else {}))


def make_channels(
    ledger: Ledger, home: Path, env: dict[str, str] | None = None, crm_note_channel: Any | None = None
) -> dict[str, Any]:
    """Outbound channels from configuration: the rep's Slack DM (SLACK_BOT_TOKEN), email (SMTP_HOST),
    and the CRM note: the CRM's own note writer when given, else the local notes table (demo, CSV)."""
    env = dict(os.environ) if env is None else env
    channels: dict[str, Any] = {"crm_note": crm_note_channel or LocalCrmNotesChannel.at_home(ledger, home)}
    client = slack_web_client(env)
    if client is not None:
        channels["rep_slack"] = SlackDmChannel(ledger, client)
    if env.get("SMTP_HOST"):
        channels["rep_email"] = SmtpEmailChannel(
            ledger,
            env["SMTP_HOST"],
            int(env.get("SMTP_PORT", "25")),
            sender=env.get("SMTP_SENDER", "sales-supervisor@localhost"),
            username=env.get("SMTP_USERNAME") or None,
            password=env.get("SMTP_PASSWORD") or None,
            starttls=env.get("SMTP_STARTTLS", "false").lower() == "true",
        )
    return channels


def review_kpis(ledger: Ledger, digests: list[Any], reps: list[dict[str, Any]], evidence_rate: float | None) -> dict[str, Any]:
    """Reps reviewed, evidence rate, time from flag to approval, dismissal rate per rule, decisions per manager."""
    active = {r["rep_id"] for r in reps if r.get("is_active")}
    listed = {section.rep_id for d in digests for section in d.reps}
    median_days = ledger.median_business_days_to_approval()
    today = dt.date.today()  # agreement windows run on real decision dates, not the data's as-of
    return {
        "reps_reviewed_share": (len(active & listed) / len(active)) if active else None,
        "active_reps": len(active),
        "evidence_rate": evidence_rate,
        "median_business_days_flag_to_approval": median_days,
        "dismissal_rate_by_rule": {k: v.dismissal_rate for k, v in ledger.dismissal_rate_by_rule().items()},
        "decisions_by_manager": {k: v.decided for k, v in ledger.decisions_by_manager().items()},
        "shadow_agreement_by_rule": {k: v.agreement_rate for k, v in ledger.shadow_agreement(today, by="rule").items()},
        "shadow_agreement_by_manager": {
            k: v.agreement_rate for k, v in ledger.shadow_agreement(today, by="manager").items()
        },
        "items": sum(len(s.entries) for d in digests for s in d.reps),
        **_spend_kpis(ledger),
    }


def _spend_kpis(ledger: Ledger) -> dict[str, Any]:
    """Today's LLM spend (UTC day, agents/autonomy/spend.py) and the sends made at L5 in the last 7 days."""
    from agents.ledger import autonomy as store

    total, by_rep = store.spend_on(ledger.uow, ledger.uow.now().date())
    week = store.autonomous_sends(ledger.uow, since=ledger.uow.now() - dt.timedelta(days=7))
    return {
        "llm_spend_today_usd": round(total, 6),
        "llm_spend_today_by_rep_usd": {k: round(v, 6) for k, v in sorted(by_rep.items())},
        "sent_on_behalf_7d": len(week),
        "recalled_7d": sum(1 for r in week if r["recall"] is not None),
        "waiting_for_quiet_hours": len(store.waiting_sends(ledger.uow)),
    }

