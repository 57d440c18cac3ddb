"""Builders shared by the review tests (flags, drafts, reps, managers, a ledger clock), plus their own checks."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time
from urllib.parse import urlencode

import pytest

from agents.risk.models import Baseline, CrmRecordRef, RiskFlag

AS_OF = dt.date(2026, 10, 1)
SIGNING_SECRET = "test-signing-secret-not-real"
BOT_TOKEN = "xoxb-test-not-real"

MANAGERS = [
    {"manager_id": "mgr-1", "manager_name": "Maria Manager", "slack_user_id": "UMGR1", "email": "maria@example.test"},
    {"manager_id": "mgr-2", "manager_name": "Omar Other", "slack_user_id": "UMGR2", "email": "omar@example.test"},
]
REPS = [
    {"rep_id": "rep-1", "rep_name": "Ann Rep", "manager_id": "mgr-1", "slack_user_id": "UREP1", "email": "ann@example.test", "is_active": True},
    {"rep_id": "rep-2", "rep_name": "Bob Rep", "manager_id": "mgr-1", "slack_user_id": "UREP2", "email": "bob@example.test", "is_active": True},
    {"rep_id": "rep-3", "rep_name": "Cy Quiet", "manager_id": "mgr-1", "slack_user_id": "UREP3", "email": "cy@example.test", "is_active": True},
    {"rep_id": "rep-4", "rep_name": "Di Gone", "manager_id": "mgr-1", "slack_user_id": None, "email": None, "is_active": False},
    {"rep_id": "rep-5", "rep_name": "Eve Rep", "manager_id": "mgr-2", "slack_user_id": "UREP5", "email": "eve@example.test", "is_active": True},
]


def make_flag(opp: str, rep: str, *, severity="high", amount=10_000.0, rule="stalled_in_stage", source_url=None, query="sq_stage_duration") -> RiskFlag:
    return RiskFlag(
        flag_id=RiskFlag.make_id(rule, opp, AS_OF),
        rule_id=rule,
        opportunity_id=opp,
        rep_id=rep,
        manager_id=None,
        segment="smb",
        stage="Proposal",
        amount=amount,
        observed=64,
        threshold=30,
        baseline=Baseline(metric="stage_duration_p75", value=30.0, slice={"segment": "smb", "stage": "Proposal"}, sample_size=120, semantic_query_id=query),
        severity=severity,
        confidence=0.8,
        message=f"{opp} has been in Proposal for 64 days against a p75 of 30 days.",
        policy_version="v1",
        as_of=AS_OF,
        crm_records=[CrmRecordRef(object="opportunity", record_id=opp, source_url=source_url, note="entered Proposal 2026-07-29")],
        semantic_query_ids=[query],
    )


def make_draft(opp: str) -> dict:
    return {
        "action": f"Book a pricing review with the buyer on {opp} by 2026-10-06.",
        "due_date": "2026-10-06",
        "actor": "rep",
        "rationale": f"{opp} has sat in Proposal for 64 days; the p75 for SMB Proposal is 30 days (sq_stage_duration).",
        "cited_ids": [opp, "sq_stage_duration"],
        "confidence": 0.7,
        "drafter": "template",
    }


def pairs() -> list[tuple[RiskFlag, dict]]:
    """rep-1: three flags (ranked by severity x amount), rep-2: one, rep-5 (mgr-2): one; rep-3 nothing."""
    spec = [
        ("opp-a", "rep-1", "medium", 50_000.0),   # 100k
        ("opp-b", "rep-1", "critical", 40_000.0),  # 160k
        ("opp-c", "rep-1", "low", 20_000.0),       # 20k
        ("opp-d", "rep-2", "high", 5_000.0),       # 15k
        ("opp-e", "rep-5", "high", 1_000.0),
    ]
    return [(make_flag(o, r, severity=s, amount=a), make_draft(o)) for o, r, s, a in spec]


class Clock:
    def __init__(self, start: dt.datetime | None = None):
        self.now = start or dt.datetime(2026, 10, 1, 8, 0, tzinfo=dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kw) -> None:
        self.now += dt.timedelta(**kw)


def sign(body: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    """Slack's v0 request signature headers for ``body``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": ts,
        "x-slack-signature": f"v0={digest}",
    }


def form_body(payload: dict) -> str:
    return urlencode({"payload": json.dumps(payload)})


def test_signature_helper_matches_slack_sdk():
    from slack_sdk.signature import SignatureVerifier

    body = form_body({"type": "block_actions"})
    headers = sign(body)
    assert SignatureVerifier(SIGNING_SECRET).is_valid_request(body, headers)
    assert not SignatureVerifier("another-secret").is_valid_request(body, headers)


def test_fixture_flags_rank_by_severity_times_amount():
    ranked = sorted((f for f, _ in pairs() if f.rep_id == "rep-1"), key=lambda f: -f.priority)
    assert [f.opportunity_id for f in ranked] == ["opp-b", "opp-a", "opp-c"]


@pytest.fixture
def clock():
    return Clock()
