"""The deal coach in Slack: `/brief OPP` answers privately (an ephemeral reply), only to whoever may see the deal.

Registered on the review app (agents/review/slack_app.py) with one call. Bolt has already verified the
request's signature when the handler runs. The Slack user is mapped to a person: a manager or delegate
through the app's approver map, else a rep through the warehouse's dim_reps.slack_user_id, else
``slack:<user id>`` (which a delegates list may name). ``serve_brief`` decides and audits; the reply
is escaped Slack text and goes only to the requester (``response_type: ephemeral``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

from agents.coach.facts import DealNotFound
from agents.coach.service import BriefRefused, BriefResult, WarehouseBusy, serve_brief

log = logging.getLogger(__name__)
BRIEF_COMMAND = "/brief"
_REPO = Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class SlackBriefService:
    """Where the briefs come from: the warehouse (read-only), the dbt project's semantic layer, the cache."""

    home: Path
    warehouse: Any  # agents.warehouse.Warehouse (or a DuckDB path)
    dbt_dir: Path = _REPO / "dbt_project"
    as_of: Any = None  # a date; None: the latest risk run's as-of

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SlackBriefService:
        from agents.warehouse import Warehouse

        env = os.environ if env is None else env
        home = Path(env.get("SALES_SUPERVISOR_HOME") or "var").expanduser().resolve()
        if (env.get("SALES_SUPERVISOR_WAREHOUSE") or "duckdb") == "postgres":
            return cls(home=home, warehouse=Warehouse("postgres", url=env.get("SALES_SUPERVISOR_WAREHOUSE_URL")))
        return cls(home=home, warehouse=Warehouse.duckdb(home / "warehouse.duckdb"))

    def requester(self, slack_user_id: str, approvers: Mapping[str, str]) -> str:
        if slack_user_id in approvers:
            return approvers[slack_user_id]
        from agents.coach.service import _connect

        try:
            with _connect(self.warehouse) as con:
                row = con.execute("select rep_id from marts.dim_reps where slack_user_id = :u", {"u": slack_user_id}).fetchone()
        except Exception:  # a busy or missing warehouse: the person stays unknown, and serving says why
            row = None
        return row[0] if row else f"slack:{slack_user_id}"

    def serve(self, opportunity_id: str, requester: str, ledger: Any) -> BriefResult:
        import datetime as dt

        from agents.coach.facts import latest_risk_run
        from agents.coach.service import _connect
        from agents.semantic_layer import SemanticLayer, manifest_hash
        from agents.warehouse import Warehouse

        as_of = self.as_of
        if as_of is None:
            with _connect(self.warehouse) as con:
                run = latest_risk_run(con)
            as_of = dt.date.fromisoformat(str(run["as_of"])[:10]) if run else dt.date.today()
        wh = Warehouse.coerce(self.warehouse)
        target = self.dbt_dir / "target"
        return serve_brief(
            opportunity_id, requester, warehouse=self.warehouse, ledger=ledger, as_of=as_of, cache_dir=self.home / "coach",
            layer_factory=lambda: SemanticLayer(self.dbt_dir, self.dbt_dir, target, wh.path, env=None if wh.path else wh.dbt_env()),
            manifest_sha=manifest_hash(target / "semantic_manifest.json"), channel="slack",
        )


def add_brief_command(manifest: dict[str, Any], request_url: str | None) -> dict[str, Any]:
    """The Slack app manifest with the /brief slash command (and the `commands` scope it needs)."""
    command: dict[str, Any] = {"command": BRIEF_COMMAND, "description": "A private brief for one of your deals",
                               "usage_hint": "DEAL_ID", "should_escape": False}
    if request_url:
        command["url"] = request_url
    manifest.setdefault("features", {}).setdefault("slash_commands", []).append(command)
    scopes = manifest.setdefault("oauth_config", {}).setdefault("scopes", {})
    scopes["bot"] = [*scopes.get("bot", []), *([] if "commands" in scopes.get("bot", []) else ["commands"])]
    return manifest


def register_brief_command(app: Any, ledger: Any, approvers: Mapping[str, str],
                           service: SlackBriefService | Callable[[], SlackBriefService] | None = None) -> None:
    from agents.coach.render import to_slack_text
    from agents.review.escaping import slack_mrkdwn

    def get_service() -> SlackBriefService:
        if isinstance(service, SlackBriefService):
            return service
        return service() if callable(service) else SlackBriefService.from_env()

    @app.command(BRIEF_COMMAND)
    def on_brief(ack, body, respond):
        words = str(body.get("text") or "").split()
        user = str(body.get("user_id") or "")
        if not words:
            ack(text=f"Usage: {BRIEF_COMMAND} DEAL_ID (e.g. {BRIEF_COMMAND} opp-000219): a private brief for a deal you own, "
                     "manage, or are a delegate for.")
            return
        opp = words[0]
        ack(text=f"Preparing the brief for {slack_mrkdwn(opp)} (only you see it)...")
        try:
            svc = get_service()
            result = svc.serve(opp, svc.requester(user, approvers), ledger)
        except BriefRefused:
            text = (f"You may not see the brief of {slack_mrkdwn(opp)}: only its rep, their manager or the manager's "
                    "delegates may. The attempt was logged.")
        except DealNotFound:
            text = f"No deal {slack_mrkdwn(opp)} in the warehouse. Check the id (the CRM's own id, e.g. opp-000219)."
        except (WarehouseBusy, FileNotFoundError) as exc:
            text = f"The brief cannot be made right now: {slack_mrkdwn(str(exc))[:300]}"
        except Exception:  # a reply beats a silent failure; the details go to the log
            log.exception("brief for %s failed", opp)
            text = "The brief failed; the error is in the Slack app's log."
        else:
            text = to_slack_text(result.brief)
        respond(text=text, response_type="ephemeral", replace_original=False)
