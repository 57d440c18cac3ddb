"""The daily review step as plain functions: read the run's flags and drafts from the warehouse,
route them into manager digests, pick the outbound channels, and compute the review KPIs.
Dagster assets, the CLI and tests all call these."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import duckdb

from agents.drafting.runner import DraftedItem
from agents.ledger import Ledger
from agents.review.channels import LocalCrmNotesChannel, SlackDmChannel, SmtpEmailChannel
from agents.risk.models import RiskFlag


def _dicts(cur) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def load_digest_inputs(warehouse: Path, as_of: dt.date) -> dict[str, Any]:
    """The latest risk run for ``as_of``: (flag, draft) pairs, reps, managers, deal names, query names."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        run = con.execute(
            "select run_id from risk.coaching_drafts where as_of = ? order by rowid desc limit 1", [as_of]
        ).fetchone()
        pairs = []
        if run:
            rows = con.execute(
                """select f.flag_json, d.draft_json from risk.coaching_drafts d
                   join risk.risk_flags f on f.flag_id = d.flag_id and f.run_id = d.run_id
                   where d.run_id = ?""",
                [run[0]],
            ).fetchall()
            pairs = [(RiskFlag.model_validate_json(f), DraftedItem.model_validate_json(d)) for f, d in rows]
        reps = _dicts(con.execute("select rep_id, rep_name, manager_id, slack_user_id, email, is_active from marts.dim_reps"))
        managers = _dicts(con.execute("select manager_id, manager_name, slack_user_id, email from marts.dim_managers"))
        opp_ids = sorted({f.opportunity_id for f, _ in pairs if f.opportunity_id})
        deal_names = dict(
            con.execute(
                "select opportunity_id, opportunity_name from marts.fct_opportunities where opportunity_id in (select unnest(?::varchar[]))",
                [opp_ids],
            ).fetchall()
        )
        query_names = dict(
            con.execute(
                "select query_id, coalesce(saved_query, 'baseline query') from semantic.semantic_queries where as_of = ?", [as_of]
            ).fetchall()
        )
    return {
        "risk_run_id": run[0] if run else None,
        "pairs": pairs,
        "reps": reps,
        "managers": managers,
        "deal_names": deal_names,
        "saved_query_names": query_names,
    }


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
    }

