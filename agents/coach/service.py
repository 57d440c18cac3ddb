"""Serving a brief: who may see it, the packet, the drafter, the validator, the audit row.

One domain function (``serve_brief``) that the CLI, the Slack slash command and any console page
call. A brief is read-only advice: it sends nothing and writes nothing to the CRM, so the deal's own
rep gets it without a manager's approval; only the owner rep, their manager and the manager's
allow-listed delegates may see it, and every brief served (or refused) is an audit row.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents.coach.facts import DealNotFound, TeamFigures, cached_team_figures, data_stamp, deal_packet, query_team_figures
from agents.coach.models import Brief, BriefPacket
from agents.coach.playbook import Playbook, load_playbook
from agents.coach.template import DRAFTER_NAME, draft_brief
from agents.coach.validator import brief_vocabulary, validate_brief
from agents.drafting.validator import Finding

AUDIT_SERVED = "coach.brief_served"
AUDIT_REFUSED = "coach.brief_refused"


class BriefRefused(PermissionError):
    """The requester may not see this deal's brief."""


class WarehouseBusy(RuntimeError):
    """Another process holds the warehouse (a pipeline run): try again when it ends."""


@dataclasses.dataclass
class BriefResult:
    brief: Brief
    packet: BriefPacket
    findings: list[Finding]  # of the served brief (empty when it passed)
    rejected: list[str]  # why a Claude draft was replaced by the template, if it was
    latency_s: float
    cost_usd: float
    team_figures_cached: bool


def may_see(requester: str, owner_rep_id: str | None, manager_id: str | None, delegates_of: Callable[[str], frozenset[str]]) -> bool:
    if not requester:
        return False
    if requester in (owner_rep_id, manager_id):
        return True
    return bool(manager_id) and requester in delegates_of(manager_id)


# Briefs asked at once (Slack runs each request in its own thread) take turns with the warehouse: DuckDB refuses a
# second connection to a file in one process with another configuration, and the semantic layer's connection (dbt's
# adapter) is not the read-only one below. Re-entrant: a thread holding it may connect again.
_WAREHOUSE_TURN = threading.RLock()


@contextlib.contextmanager
def _connect(warehouse: Any):
    """A read-only connection through agents.warehouse (a DuckDB file or PostgreSQL), one thread at a time."""
    with _WAREHOUSE_TURN:
        with _connect_now(warehouse) as con:
            yield con


@contextlib.contextmanager
def _connect_now(warehouse: Any):
    from agents.warehouse import Warehouse, WarehouseError

    wh = Warehouse.coerce(warehouse)
    if not wh.exists():
        raise FileNotFoundError(f"no warehouse at {wh.path}: run `sales-supervisor demo` (or `run`) first")
    try:
        cm = wh.connect(read_only=True)
        con = cm.__enter__()
    except WarehouseError as exc:
        raise WarehouseBusy(str(exc)) from None
    except Exception as exc:  # DuckDB: another process holds the file for writing
        if "lock" in str(exc).lower() or type(exc).__name__ == "IOException":
            raise WarehouseBusy(f"the {wh.label} is busy (a pipeline run holds it): try again when it ends") from None
        raise
    try:
        yield con
    except BaseException as exc:
        if not cm.__exit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        cm.__exit__(None, None, None)


def build_packet(
    warehouse: Any,
    opportunity_id: str,
    as_of: dt.date,
    *,
    cache_dir: Path,
    layer_factory: Callable[[], Any] | None,
    manifest_sha: str = "",
    playbook_version: str = "",
) -> tuple[BriefPacket, bool]:
    """(packet, team figures came from the cache). ``layer_factory`` None: no team figures (offline facts only)."""
    figures: TeamFigures | None = None
    if layer_factory is not None:
        with _connect(warehouse) as con:
            stamp = data_stamp(con)

        def compute() -> TeamFigures:
            with _WAREHOUSE_TURN:  # the semantic layer opens the warehouse too
                layer = layer_factory()
                try:
                    return query_team_figures(layer, as_of)
                finally:
                    close = getattr(layer, "close", None)
                    if close:
                        close()

        figures = cached_team_figures(cache_dir, as_of, manifest_sha, stamp, compute)
    with _connect(warehouse) as con:
        packet = deal_packet(con, opportunity_id, as_of, figures, playbook_version)
    return packet, bool(figures and figures.cached)


def brief_digest(brief: Brief) -> str:
    return hashlib.sha256(json.dumps(brief.model_dump(mode="json", exclude={"citations"}), sort_keys=True).encode()).hexdigest()


def serve_brief(
    opportunity_id: str,
    requester: str,
    *,
    warehouse: Any,
    ledger: Any,
    as_of: dt.date,
    cache_dir: Path,
    layer_factory: Callable[[], Any] | None,
    manifest_sha: str = "",
    playbook: Playbook | None = None,
    claude: Any | None = None,
    channel: str = "cli",
    clock: Callable[[], float] = time.monotonic,
) -> BriefResult:
    """The brief for one deal, for one requester, audited. Raises BriefRefused, DealNotFound, WarehouseBusy."""
    started = clock()
    playbook = playbook or load_playbook()
    packet, cached = build_packet(warehouse, opportunity_id, as_of, cache_dir=cache_dir, layer_factory=layer_factory,
                                  manifest_sha=manifest_sha, playbook_version=playbook.version)
    d = packet.deal
    if not may_see(requester, d.owner_rep_id, d.manager_id, ledger.delegates_of):
        ledger.record_event(requester or "unknown", AUDIT_REFUSED, "opportunity", opportunity_id,
                            {"channel": channel, "as_of": as_of.isoformat(), "owner_rep_id": d.owner_rep_id, "manager_id": d.manager_id,
                             "reason": "only the owner rep, their manager or the manager's delegates may see a deal's brief"})
        raise BriefRefused(f"{requester} may not see the brief of {opportunity_id}: only its rep ({d.owner_rep_id}), "
                           f"their manager ({d.manager_id}) or the manager's delegates may")
    brief = draft_brief(packet, playbook)
    vocab = brief_vocabulary(playbook, packet)
    findings = validate_brief(brief, packet, vocabulary=vocab)
    rejected: list[str] = []
    cost = 0.0
    if claude is not None:
        body, cost, error = claude.draft(packet, brief)
        if body is not None:
            candidate = Brief(**body.model_dump(), opportunity_id=brief.opportunity_id, as_of=brief.as_of, drafter=claude.name,
                              playbook_version=brief.playbook_version, citations=brief.citations, notes=list(brief.notes))
            bad = validate_brief(candidate, packet, vocabulary=vocab)
            if bad:
                rejected = [str(f) for f in bad]
            else:
                brief, findings = candidate, []
        else:
            rejected = [error or "no draft"]
        if rejected:
            brief.notes.append(f"{claude.name} draft not used ({len(rejected)} finding{'s' if len(rejected) != 1 else ''}: "
                               f"{rejected[0][:160]}); the template brief is shown")
    latency = clock() - started
    ledger.record_event(requester, AUDIT_SERVED, "opportunity", opportunity_id, {
        "channel": channel, "as_of": as_of.isoformat(), "drafter": brief.drafter, "playbook_version": brief.playbook_version,
        "latency_ms": round(latency * 1000), "cost_usd": round(cost, 6), "claude_rejected": rejected[:5],
        "findings": [str(f) for f in findings][:5], "citations": sorted(brief.citations), "brief_sha256": brief_digest(brief),
        "requester_role": "rep" if requester == d.owner_rep_id else "manager" if requester == d.manager_id else "delegate",
    })
    return BriefResult(brief, packet, findings, rejected, latency, cost, cached)


__all__ = ["AUDIT_REFUSED", "AUDIT_SERVED", "BriefRefused", "BriefResult", "DealNotFound", "WarehouseBusy", "build_packet",
           "may_see", "serve_brief", "DRAFTER_NAME"]
