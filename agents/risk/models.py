"""The typed contract of a risk flag: what was observed, against which governed baseline,
and which CRM rows and semantic-layer queries prove it.

Invariant 3 (evidence or nothing) lives here: a flag that cannot cite at least
one CRM record and one semantic-layer query id cannot be constructed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# The CRM objects a flag can cite (tables of the canonical marts).
CrmObject = Literal[
    "opportunity", "stage_history", "field_history", "activity", "contact", "account", "rep"
]
Severity = Literal["low", "medium", "high", "critical"]
SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3, "critical": 4}


class CrmRecordRef(BaseModel):
    """One CRM row behind a claim; ids are the CRM's own, so each resolves to a record (and a deep link)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    object: CrmObject
    record_id: str = Field(min_length=1)
    source_url: str | None = None
    note: str | None = Field(default=None, description="What this row shows, e.g. 'entered Proposal 2026-06-02'.")


class Baseline(BaseModel):
    """A governed number from the semantic layer, with the query that produced it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    metric: str
    value: float | None
    slice: dict[str, str] = Field(default_factory=dict, description="e.g. {'segment': 'smb', 'stage': 'Proposal'}")
    sample_size: int | None = None
    semantic_query_id: str = Field(min_length=1)
    fallback: str | None = Field(default=None, description="Set when a broader slice was used (too few closed deals).")


class SupportingSignal(BaseModel):
    """A further rule that fired on the same deal; attached to the primary flag, not shown as its own item."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    rule_id: str
    severity: Severity
    observed: float | str | None
    threshold: float | str | None
    message: str


class RiskFlag(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    flag_id: str = Field(description="Stable: hash of rule, subject and as-of date.")
    rule_id: str
    subject: Literal["opportunity", "rep"] = "opportunity"
    opportunity_id: str | None = None
    rep_id: str | None = None
    manager_id: str | None = None
    segment: str | None = None
    stage: str | None = None
    amount: float | None = None
    observed: float | str | None = Field(description="The observed value, e.g. 64 (days in stage).")
    threshold: float | str | None = Field(description="The threshold it was compared with.")
    baseline: Baseline | None = Field(default=None, description="The governed baseline the threshold came from.")
    severity: Severity
    confidence: float = Field(ge=0, le=1)
    message: str = Field(min_length=1, description="One plain sentence: what was observed against what.")
    policy_version: str = Field(min_length=1)
    as_of: dt.date
    crm_records: list[CrmRecordRef]
    semantic_query_ids: list[str]
    is_primary: bool = True
    supporting: list[SupportingSignal] = Field(default_factory=list)
    action_hint: str | None = Field(default=None, description="e.g. 'alert_manager' from a custom rule.")
    playbooks: list[str] = Field(default_factory=list, description="Playbooks active when the flag was raised.")

    @field_validator("crm_records")
    @classmethod
    def _cites_crm(cls, v: list[CrmRecordRef]) -> list[CrmRecordRef]:
        if not v:
            raise ValueError("a flag must cite at least one CRM record")
        return v

    @field_validator("semantic_query_ids")
    @classmethod
    def _cites_semantic_layer(cls, v: list[str]) -> list[str]:
        if not v or not all(q.strip() for q in v):
            raise ValueError("a flag must cite at least one semantic-layer query id")
        return v

    @model_validator(mode="after")
    def _subject_id(self) -> "RiskFlag":
        if self.subject == "opportunity" and not self.opportunity_id:
            raise ValueError("an opportunity flag needs opportunity_id")
        if self.subject == "rep" and not self.rep_id:
            raise ValueError("a rep flag needs rep_id")
        return self

    @property
    def severity_rank(self) -> int:
        return SEVERITY_RANK[self.severity]

    @property
    def priority(self) -> float:
        """Ranking key: severity x amount (amount floor 1 so rep-level flags still rank)."""
        return self.severity_rank * max(self.amount or 0.0, 1.0)

    @staticmethod
    def make_id(rule_id: str, subject_id: str, as_of: dt.date) -> str:
        return "flag_" + hashlib.sha256(f"{rule_id}|{subject_id}|{as_of.isoformat()}".encode()).hexdigest()[:20]
