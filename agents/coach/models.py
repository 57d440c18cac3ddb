"""The brief's contract: the packet of facts it may use, and the typed brief either drafter returns.

Every fact in a ``BriefPacket`` is a ``Citation``: a CRM row (table, id, the row's values) or a
semantic-layer query (query id, request, SQL, rows). A ``Brief`` is sections of ``Line``s; each line
cites the ids it rests on, and the validator (agents/coach/validator.py) checks that every number,
date and name in a line is in the rows or queries it cites.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_LINE_CHARS = 320


class Citation(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: str
    kind: Literal["crm", "query", "risk"]  # a CRM row, a semantic-layer query, a risk-run flag
    table: str = Field(description="marts.<table> for a CRM row, the semantic model for a query")
    row: dict[str, Any] = Field(default_factory=dict, description="The CRM row's values (kind crm)")
    query: dict[str, Any] = Field(default_factory=dict, description="provenance: request, sql, manifest/result hash (kind query)")
    rows: list[dict[str, Any]] = Field(default_factory=list, description="The query's rows this brief used (kind query)")
    derived: list[float] = Field(default_factory=list, description="Figures computed from these rows (shares, in %)")
    url: str | None = None


class Contact(BaseModel):
    contact_id: str
    name: str | None = None
    title: str | None = None
    role: str | None = None
    last_touch: dt.date | None = None
    meetings_90d: int = 0
    touches: int = 0
    engaged: bool = False


class DealFacts(BaseModel):
    opportunity_id: str
    name: str | None = None
    account_name: str | None = None
    segment: str | None = None
    stage: str
    stage_entered: dt.date | None = None
    amount: float | None = None
    close_date: dt.date | None = None
    created: dt.date | None = None
    is_closed: bool = False
    owner_rep_id: str | None = None
    rep_name: str | None = None
    manager_id: str | None = None
    manager_name: str | None = None
    has_next_step: bool = False
    source_url: str | None = None


class BriefPacket(BaseModel):
    """Everything a brief may say, each fact with its citation id."""

    as_of: dt.date
    deal: DealFacts
    contacts: list[Contact] = Field(default_factory=list)
    stints: list[dict[str, Any]] = Field(default_factory=list)  # stage_history_id, stage, entered, exited
    changes: list[dict[str, Any]] = Field(default_factory=list)  # field_history_id, field, old, new, on
    activities: list[dict[str, Any]] = Field(default_factory=list)  # activity_id, type, on, contact_ids (newest first)
    stage_meetings: list[dict[str, Any]] = Field(default_factory=list)  # meetings since the stage was entered (newest first)
    flags: list[dict[str, Any]] = Field(default_factory=list)  # flag_id, rule_id, severity, message
    risk_run: dict[str, Any] | None = None  # run_id, as_of of the latest risk run (None: none recorded)
    exits_query_id: str | None = None
    exits_row: dict[str, Any] | None = None  # the segment x stage row of coach_stage_exits (None: no won exits)
    losses_query_id: str | None = None
    loss_rows: list[dict[str, Any]] = Field(default_factory=list)  # segment rows of lost_deals (all stages)
    citations: dict[str, Citation] = Field(default_factory=dict)
    playbook_version: str = ""

    def cite(self, c: Citation) -> str:
        self.citations[c.id] = c
        return c.id


class Line(BaseModel):
    """One sentence of the brief and the ids it rests on."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=MAX_LINE_CHARS)
    cites: list[str] = Field(default_factory=list, max_length=16)

    @field_validator("text")
    @classmethod
    def _one_line(cls, v: str) -> str:
        return " ".join(v.split())

    @field_validator("cites")
    @classmethod
    def _dedupe(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(v))


class NextAction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Line
    reason: Line
    timing: Line
    who: Line
    success: Line
    alternative: Line | None = None


class Criterion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    criterion: str = Field(max_length=160)
    met: bool
    evidence: Line


class BriefBody(BaseModel):
    """What a drafter writes (the Claude tool's input schema)."""

    model_config = ConfigDict(extra="forbid")
    headline: Line
    stakeholders: list[Line] = Field(default_factory=list, max_length=12)
    missing_roles: list[Line] = Field(default_factory=list, max_length=6)
    threading: list[Line] = Field(default_factory=list, max_length=4)
    next_action: NextAction | None = None
    adherence: list[Criterion] = Field(default_factory=list, max_length=10)
    history: list[Line] = Field(default_factory=list, max_length=5)
    risks: list[Line] = Field(default_factory=list, max_length=8)
    questions: list[Line] = Field(default_factory=list, max_length=6)
    objections: list[Line] = Field(default_factory=list, max_length=5)

    def lines(self) -> list[tuple[str, Line]]:
        out: list[tuple[str, Line]] = [("headline", self.headline)]
        for name in ("stakeholders", "missing_roles", "threading"):
            out += [(name, ln) for ln in getattr(self, name)]
        if self.next_action is not None:
            na = self.next_action
            out += [(f"next_action.{k}", getattr(na, k)) for k in ("action", "reason", "timing", "who", "success")]
            if na.alternative is not None:
                out.append(("next_action.alternative", na.alternative))
        out += [("adherence", c.evidence) for c in self.adherence]
        for name in ("history", "risks", "questions", "objections"):
            out += [(name, ln) for ln in getattr(self, name)]
        return out


class Brief(BriefBody):
    opportunity_id: str
    as_of: dt.date
    drafter: str
    playbook_version: str = ""
    citations: dict[str, Citation] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list, description="What the drafter fell back on, and why")
