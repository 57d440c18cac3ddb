"""The drafting agent's typed contract: what goes in (an evidence packet per flagged deal)
and what comes out (one coaching draft, validated against that packet).

Two rules shape these models:

* Evidence or nothing (invariant 3): a packet always carries at least one CRM
  record id and one semantic-layer query id, and a `DraftedItem` (what leaves
  `draft_all`) cannot be constructed unless its draft cites one of each.
* Untrusted text stays data: deal names, account names, notes and next steps
  typed by people into the CRM live only in `EvidencePacket.untrusted_text`,
  are rendered inside explicit delimiters in prompts, and contribute no allowed
  number, date or id.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agents.risk.models import Baseline, CrmObject, RiskFlag, Severity, SupportingSignal

Actor = Literal["rep", "manager"]

# Untrusted free text is capped: a CRM note can be megabytes; the drafter needs a gist.
UNTRUSTED_FIELD_MAX_CHARS = 600
UNTRUSTED_FIELDS = ("opportunity_name", "account_name", "next_step", "notes", "description", "rep_name")

_ISO_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
_SAFE_PERSON_NAME = re.compile(r"^[A-Za-zÀ-ÖØ-öø-ÿ][A-Za-zÀ-ÖØ-öø-ÿ .'\-]{0,60}$")


class DealFacts(BaseModel):
    """Structured facts about the deal (or the rep, for rep-level flags) from the canonical marts.

    Only structured columns belong here: free text typed by people goes to
    `EvidencePacket.untrusted_text`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    opportunity_id: str | None = None
    account_id: str | None = None
    stage: str | None = None
    stage_order: int | None = None
    amount: float | None = None
    currency: str = "USD"
    created_at: dt.date | None = None
    close_date: dt.date | None = None
    owner_rep_id: str | None = None
    owner_rep_name: str | None = None
    manager_id: str | None = None
    segment: str | None = None
    days_in_stage: int | None = None
    days_since_last_activity: int | None = None
    open_deal_count: int | None = None
    source_url: str | None = None

    @field_validator("owner_rep_name")
    @classmethod
    def _plain_person_name(cls, v: str | None) -> str | None:
        # A rep name is a CRM user field: accept it only if it looks like a name;
        # anything else (digits, markup, sentences) is dropped so it cannot smuggle text.
        if v is None:
            return None
        v = " ".join(v.split())
        return v if _SAFE_PERSON_NAME.match(v) else None


_SAFE_TITLE = re.compile(r"^[A-Za-zÀ-ÖØ-öø-ÿ][A-Za-zÀ-ÖØ-öø-ÿ &/,.'\-]{0,60}$")
_SAFE_DEAL_NAME = re.compile(r"^[A-Za-zÀ-ÖØ-öø-ÿ][A-Za-zÀ-ÖØ-öø-ÿ &.,'\-]{0,90}$")
_NAME_MARKERS = ("ignore", "instruction", "approve", "disregard", "system", "prompt", "send", "all reps")


def safe_label(value: str | None, pattern: re.Pattern[str] = _SAFE_DEAL_NAME, max_words: int = 12) -> str | None:
    """CRM free text kept only when it is plainly a name or title: letters and simple punctuation, no digits,
    a few words, nothing that reads like an instruction. Anything else stays untrusted (never in a draft)."""
    if not value:
        return None
    v = " ".join(str(value).split())
    low = v.lower()
    if not pattern.match(v) or len(v.split()) > max_words or any(m in low for m in _NAME_MARKERS):
        return None
    if re.search(r"[.!?]\s", v):  # would split a one-sentence action
        return None
    return v


class ContactFact(BaseModel):
    """A person on the deal's account (dim_contacts), named only when the name is plainly a name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    contact_id: str
    name: str | None = None
    title: str | None = None
    buying_role: str | None = None
    last_met_on: dt.date | None = None  # last meeting on this deal with them (None: never met on it)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str | None) -> str | None:
        return safe_label(v, _SAFE_PERSON_NAME, 5)

    @field_validator("title")
    @classmethod
    def _plain_title(cls, v: str | None) -> str | None:
        return safe_label(v, _SAFE_TITLE, 8)

    @property
    def label(self) -> str:
        """'Carlos Novak (Head of Revenue)', or the role when the name is unusable."""
        role = (self.buying_role or "contact").replace("_", " ")
        if self.name:
            return f"{self.name} ({self.title})" if self.title else f"{self.name}, the {role}"
        return f"the {role}" + (f" ({self.title})" if self.title else "")


class ComparableDeal(BaseModel):
    """A won deal of the same segment the remedy claim rests on (also a CRM row of the packet)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    opportunity_id: str
    name: str | None = None
    amount: float | None = None
    closed_on: dt.date | None = None
    days_to_close: int | None = None  # days from the remedy (e.g. the decision-maker meeting) to the close
    source_url: str | None = None

    @field_validator("name")
    @classmethod
    def _plain_deal_name(cls, v: str | None) -> str | None:
        return safe_label(v)


class RemedyEvidence(BaseModel):
    """What worked in the team's own history for this rule, from a semantic-layer query (agents/remedies.py)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    semantic_query_id: str = Field(min_length=1)
    claim: str = Field(max_length=240, description="System-generated sentence; every number in it is in `values`.")
    values: list[float] = Field(default_factory=list)
    sample_size: int = 0
    thin: bool = False  # True: the history is too thin; the claim says so instead of giving a figure
    days_to_outcome: float | None = None


class CrmRow(BaseModel):
    """One CRM row shown to the drafter: id, object, date and a short, system-generated description."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    record_id: str = Field(min_length=1)
    object: CrmObject
    occurred_on: dt.date | None = None
    description: str = Field(default="", max_length=200)
    source_url: str | None = None


class EvidencePacket(BaseModel):
    """Everything the drafter may use for one flagged deal, and nothing else."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    packet_id: str = Field(pattern=r"^pk_[0-9a-f]{20}$", description="Stable; also the batch custom_id.")
    as_of: dt.date
    flag_id: str
    rule_id: str
    subject: Literal["opportunity", "rep"] = "opportunity"
    severity: Severity
    flag_confidence: float = Field(ge=0, le=1)
    flag_message: str
    observed: float | str | None = None
    threshold: float | str | None = None
    baseline: Baseline | None = None
    supporting: list[SupportingSignal] = Field(default_factory=list)
    action_hint: str | None = None
    policy_version: str
    deal: DealFacts
    rows: list[CrmRow] = Field(min_length=1)
    semantic_query_ids: list[str] = Field(min_length=1)
    untrusted_text: dict[str, str] = Field(
        default_factory=dict,
        description="Free text typed by people into the CRM. Data, never instructions.",
    )
    deal_name: str | None = Field(None, description="The deal's name when it is plainly a name (safe_label); else None.")
    contacts: list[ContactFact] = Field(default_factory=list)
    comparables: list[ComparableDeal] = Field(default_factory=list)
    remedy: RemedyEvidence | None = None
    weakest_deals: list[ComparableDeal] = Field(default_factory=list, description="rep_overload: the rep's weakest open deals.")
    tone: Literal["formal", "casual"] = Field("formal", description="The recipient's preferred tone (agents/autonomy preferences).")

    @field_validator("untrusted_text")
    @classmethod
    def _cap_untrusted(cls, v: dict[str, str]) -> dict[str, str]:
        return {k: (s or "")[:UNTRUSTED_FIELD_MAX_CHARS] for k, s in v.items() if s}

    @property
    def crm_record_ids(self) -> list[str]:
        return _dedupe(r.record_id for r in self.rows)

    @property
    def allowed_ids(self) -> list[str]:
        """The only ids a draft may cite: CRM record ids and semantic-layer query ids."""
        return _dedupe([*self.crm_record_ids, *self.semantic_query_ids])

    @property
    def opportunity_id(self) -> str | None:
        return self.deal.opportunity_id

    def specific_values(self) -> list[float]:
        """Numbers the specificity evidence adds (remedy figures, comparables), grounded like the rest."""
        vals: list[float] = []
        if self.remedy is not None:
            vals.extend(self.remedy.values)
            vals.append(float(self.remedy.sample_size))
        for c in [*self.comparables, *self.weakest_deals]:
            vals.extend(float(v) for v in (c.amount, c.days_to_close) if v is not None)
        if self.weakest_deals:
            vals.append(float(len(self.weakest_deals)))
        return vals

    def specific_dates(self) -> set[dt.date]:
        out = {c.last_met_on for c in self.contacts if c.last_met_on}
        out |= {c.closed_on for c in [*self.comparables, *self.weakest_deals] if c.closed_on}
        return out

    def contact(self, *roles: str, met: bool | None = None) -> ContactFact | None:
        """The first contact with one of ``roles`` (met on this deal or not, when ``met`` is given)."""
        for role in roles:
            for c in self.contacts:
                if c.buying_role == role and (met is None or (c.last_met_on is not None) == met):
                    return c
        return None

    @property
    def last_met(self) -> ContactFact | None:
        met = [c for c in self.contacts if c.last_met_on]
        return max(met, key=lambda c: c.last_met_on) if met else None

    @property
    def rep_label(self) -> str:
        return self.deal.owner_rep_name or self.deal.owner_rep_id or "the owning rep"

    def data_gaps(self) -> list[str]:
        """Missing or weak evidence the drafter should hedge on (shown in the prompt, lowers template confidence)."""
        gaps = []
        if self.subject == "opportunity":
            if self.deal.amount is None:
                gaps.append("amount missing")
            if self.deal.close_date is None:
                gaps.append("close date missing")
        if self.deal.owner_rep_name is None:
            gaps.append("rep name missing")
        if self.baseline is None:
            gaps.append("no governed baseline attached")
        else:
            if self.baseline.fallback:
                gaps.append(f"baseline from a broader slice ({self.baseline.fallback})")
            if self.baseline.sample_size is not None and self.baseline.sample_size < 20:
                gaps.append("baseline sample is small")
            if self.baseline.value is None:
                gaps.append("baseline value missing")
        gaps.extend(self.conflicts())
        return gaps

    def conflicts(self) -> list[str]:
        """Evidence that contradicts the flag, e.g. an activity logged inside a 'no recent activity' window."""
        out = []
        obs = self.observed
        if self.rule_id in ("no_recent_activity", "meeting_cadence_drop") and isinstance(obs, (int, float)):
            window_start = self.as_of - dt.timedelta(days=int(obs)) if self.rule_id == "no_recent_activity" else None
            for r in self.rows:
                if r.object != "activity" or r.occurred_on is None:
                    continue
                if window_start is not None and window_start < r.occurred_on <= self.as_of:
                    out.append(f"conflicting evidence: activity {r.record_id} on {r.occurred_on.isoformat()} falls inside the no-activity window")
        return out


class DraftToolInput(BaseModel):
    """The schema of the one tool the model may call; its JSON schema is the tool's input_schema."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: str = Field(
        min_length=10,
        max_length=240,
        description="One imperative sentence: who does what concrete step, ending with the due date (YYYY-MM-DD).",
    )
    due_date: dt.date = Field(description="ISO date (YYYY-MM-DD) after the as-of date.")
    actor: Actor = Field(description="Who carries out the action: the rep or the manager.")
    rationale: str = Field(
        min_length=10,
        max_length=420,
        description="1-3 sentences citing the evidence: numbers and dates only from the packet.",
    )
    cited_ids: list[str] = Field(
        min_length=2,
        max_length=8,
        description="Ids from the packet's allowed ids: at least one CRM record id and one semantic query id.",
    )
    confidence: float = Field(ge=0, le=1)


class CoachingDraft(DraftToolInput):
    """One coaching action for one flagged deal; `drafter` says who wrote it."""

    drafter: str = Field(pattern=r"^(claude:[\w.\-:@]+|template)$")
    fallback_reason: str | None = None

    @classmethod
    def tool_input_schema(cls) -> dict[str, Any]:
        return draft_tool_input_schema()


def draft_tool_input_schema() -> dict[str, Any]:
    """JSON schema for the submit_coaching_draft tool: DraftToolInput, closed to extra fields."""
    schema = DraftToolInput.model_json_schema()
    schema["additionalProperties"] = False
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return schema


class TokenUsage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    requests: int = 0
    batched: bool = False

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_creation_input_tokens=self.cache_creation_input_tokens + other.cache_creation_input_tokens,
            cache_read_input_tokens=self.cache_read_input_tokens + other.cache_read_input_tokens,
            requests=self.requests + other.requests,
            batched=self.batched or other.batched,
        )


class DraftOutcome(BaseModel):
    """What a drafter returns per packet: a draft that parsed against the schema, or an error. Not yet validated."""

    model_config = ConfigDict(extra="forbid")

    packet_id: str
    draft: CoachingDraft | None = None
    error: str | None = Field(default=None, description="e.g. 'schema: ...', 'api: ...', 'budget_exhausted'.")
    usage: TokenUsage = Field(default_factory=TokenUsage)
    cost_usd: float = 0.0
    raw_tool_input: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _draft_or_error(self) -> DraftOutcome:
        if (self.draft is None) == (self.error is None):
            raise ValueError("an outcome has exactly one of draft or error")
        return self


class DraftedItem(BaseModel):
    """A validated draft, ready for the digest. Cannot exist without a CRM and a semantic-layer citation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    packet_id: str
    flag_id: str
    rule_id: str
    opportunity_id: str | None
    rep_id: str | None
    manager_id: str | None
    as_of: dt.date
    draft: CoachingDraft
    cited_crm_record_ids: list[str] = Field(min_length=1)
    cited_semantic_query_ids: list[str] = Field(min_length=1)
    attempts: int = Field(ge=1)
    llm_findings: list[str] = Field(default_factory=list, description="Validator findings on rejected LLM attempts.")
    usage: TokenUsage = Field(default_factory=TokenUsage)
    cost_usd: float = 0.0

    @classmethod
    def from_validated(
        cls,
        packet: EvidencePacket,
        draft: CoachingDraft,
        *,
        attempts: int,
        llm_findings: Sequence[str] = (),
        usage: TokenUsage | None = None,
        cost_usd: float = 0.0,
    ) -> DraftedItem:
        crm = set(packet.crm_record_ids)
        sq = set(packet.semantic_query_ids)
        return cls(
            packet_id=packet.packet_id,
            flag_id=packet.flag_id,
            rule_id=packet.rule_id,
            opportunity_id=packet.deal.opportunity_id,
            rep_id=packet.deal.owner_rep_id,
            manager_id=packet.deal.manager_id,
            as_of=packet.as_of,
            draft=draft,
            cited_crm_record_ids=[i for i in draft.cited_ids if i in crm],
            cited_semantic_query_ids=[i for i in draft.cited_ids if i in sq],
            attempts=attempts,
            llm_findings=list(llm_findings),
            usage=usage or TokenUsage(),
            cost_usd=cost_usd,
        )


class DraftRunStats(BaseModel):
    """Counts, fallbacks, tokens and cost of one drafting run (Dagster output metadata)."""

    model_config = ConfigDict(extra="forbid")

    drafter: str
    items: int = 0
    drafted: int = 0
    by_llm: int = 0
    by_template: int = 0
    fallbacks: int = 0
    fallback_reasons: dict[str, int] = Field(default_factory=dict)
    llm_retries: int = 0
    validation_failures: int = 0
    rejected: int = Field(default=0, description="Items with no valid draft at all (not even the template).")
    llm_requests: int = 0
    batches: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_hits: int = Field(default=0, description="LLM responses that read the cached system prompt.")
    cost_usd: float = 0.0
    budget_usd: float = 0.0
    budget_exhausted: bool = False
    duration_s: float = 0.0

    def to_metadata(self) -> dict[str, Any]:
        """Flat primitives, ready to wrap in Dagster MetadataValue (the domain layer knows no Dagster)."""
        out = self.model_dump()
        out["cost_usd"] = round(self.cost_usd, 6)
        out["fallback_reasons"] = dict(sorted(self.fallback_reasons.items()))
        return out


def _dedupe(ids: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for i in ids:
        if i and i not in seen:
            seen[i] = None
    return list(seen)


def packet_id_for(flag_id: str, as_of: dt.date) -> str:
    return "pk_" + hashlib.sha256(f"{flag_id}|{as_of.isoformat()}".encode()).hexdigest()[:20]


def build_packet(
    flag: RiskFlag,
    deal_facts: DealFacts | Mapping[str, Any],
    rows: Iterable[CrmRow | Mapping[str, Any]],
    as_of: dt.date,
    *,
    untrusted_text: Mapping[str, str | None] | None = None,
    contacts: Sequence[ContactFact | Mapping[str, Any]] = (),
    comparables: Sequence[ComparableDeal | Mapping[str, Any]] = (),
    remedy: RemedyEvidence | None = None,
    weakest_deals: Sequence[ComparableDeal | Mapping[str, Any]] = (),
) -> EvidencePacket:
    """Assemble the evidence packet for one flag.

    `deal_facts` may carry free-text keys (opportunity_name, account_name,
    next_step, notes, ...): they are moved to `untrusted_text`, never kept as
    facts. The flag's own CRM records are always part of the rows (their note
    becomes the row description), so every id the flag cites can be cited.
    """
    facts = dict(deal_facts.model_dump() if isinstance(deal_facts, DealFacts) else deal_facts)
    deal_name = safe_label(facts.get("opportunity_name"))
    if deal_name:
        facts.pop("opportunity_name")  # plainly a name: a trusted label, not untrusted text
    untrusted: dict[str, str] = {}
    for key in UNTRUSTED_FIELDS:
        if key == "rep_name":
            continue
        value = facts.pop(key, None)
        if value:
            untrusted[key] = str(value)
    for key, value in (untrusted_text or {}).items():
        if value:
            untrusted[key] = str(value)
    # The flag's own fields fill gaps in the deal facts (a rep-level flag has no deal row).
    for key in ("opportunity_id", "owner_rep_id", "manager_id", "segment", "stage", "amount"):
        if facts.get(key) is None:
            facts[key] = getattr(flag, {"owner_rep_id": "rep_id"}.get(key, key), None)
    deal = DealFacts.model_validate(facts)
    raw_name = facts.get("owner_rep_name")
    if raw_name and deal.owner_rep_name is None:
        untrusted["rep_name"] = str(raw_name)

    crm_rows: list[CrmRow] = []
    seen: set[str] = set()
    for ref in flag.crm_records:
        m = _ISO_DATE.search(ref.note or "")
        try:
            when = dt.date.fromisoformat(m.group(0)) if m else None
        except ValueError:
            when = None
        crm_rows.append(
            CrmRow(
                record_id=ref.record_id,
                object=ref.object,
                occurred_on=when,
                description=(ref.note or "")[:200],
                source_url=ref.source_url,
            )
        )
        seen.add(ref.record_id)
    for row in rows:
        r = row if isinstance(row, CrmRow) else CrmRow.model_validate(dict(row))
        if r.record_id in seen:
            # Same record as the flag cites: keep the richer of the two (a date beats none).
            idx = next(i for i, c in enumerate(crm_rows) if c.record_id == r.record_id)
            old = crm_rows[idx]
            crm_rows[idx] = old.model_copy(
                update={
                    "occurred_on": old.occurred_on or r.occurred_on,
                    "description": old.description or r.description,
                    "source_url": old.source_url or r.source_url,
                }
            )
            continue
        seen.add(r.record_id)
        crm_rows.append(r)

    contact_facts = [c if isinstance(c, ContactFact) else ContactFact.model_validate(dict(c)) for c in contacts]
    comparable_deals = [c if isinstance(c, ComparableDeal) else ComparableDeal.model_validate(dict(c)) for c in comparables]
    weakest = [c if isinstance(c, ComparableDeal) else ComparableDeal.model_validate(dict(c)) for c in weakest_deals]
    # People and comparable deals are CRM rows too, so a draft may cite them.
    for c in contact_facts:
        if c.contact_id not in seen:
            seen.add(c.contact_id)
            crm_rows.append(CrmRow(record_id=c.contact_id, object="contact", occurred_on=c.last_met_on,
                                   description=(c.buying_role or "contact").replace("_", " ")))
    for c in [*comparable_deals, *weakest]:
        if c.opportunity_id not in seen:
            seen.add(c.opportunity_id)
            crm_rows.append(CrmRow(record_id=c.opportunity_id, object="opportunity", occurred_on=c.closed_on,
                                   description="won comparable" if c in comparable_deals else "open deal of the rep",
                                   source_url=c.source_url))

    query_ids = list(flag.semantic_query_ids)
    if flag.baseline is not None:
        query_ids.append(flag.baseline.semantic_query_id)
    if remedy is not None:
        query_ids.append(remedy.semantic_query_id)

    return EvidencePacket(
        packet_id=packet_id_for(flag.flag_id, as_of),
        as_of=as_of,
        flag_id=flag.flag_id,
        rule_id=flag.rule_id,
        subject=flag.subject,
        severity=flag.severity,
        flag_confidence=flag.confidence,
        flag_message=flag.message,
        observed=flag.observed,
        threshold=flag.threshold,
        baseline=flag.baseline,
        supporting=list(flag.supporting),
        action_hint=flag.action_hint,
        policy_version=flag.policy_version,
        deal=deal,
        rows=crm_rows,
        semantic_query_ids=_dedupe(query_ids),
        untrusted_text=untrusted,
        deal_name=deal_name,
        contacts=contact_facts,
        comparables=comparable_deals,
        remedy=remedy,
        weakest_deals=weakest,
    )
