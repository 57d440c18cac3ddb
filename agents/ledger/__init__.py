"""The review ledger and the tamper-evident audit trail (plain Python: no Dagster).

Open it with ``open_ledger(url)`` (or ``open_ledger(home=<state folder>)`` for
``<state folder>/ledger.sqlite``); the schema is created and migrated on open.
"""

from agents.ledger.audit import AuditProblem, AuditReport, verify_audit
from agents.ledger.business_days import business_days_between, window_start
from agents.ledger.ledger import (
    DELIVERY_SEMANTICS,
    REQUIRED_LIVE_GATES,
    AlreadyDecided,
    DecisionNotVerified,
    ApprovedItem,
    Claim,
    DecisionStats,
    DeliveryConflict,
    EditTooLong,
    SnoozeRefused,
    GateNotPassed,
    Ledger,
    LedgerError,
    NotApproved,
    NotAuthorised,
    SendsHalted,
    UnknownDelivery,
    UnknownDigest,
    UnknownItem,
    create_ledger_engine,
    ledger_url,
    open_ledger,
    upgrade_schema,
)
from agents.ledger.models import AuditRow, Decision, Delivery, Digest, Item, Snooze
from agents.ledger.learning_models import ActionOutcome, PolicyVersionRow  # noqa: F401  (registers the tables)
from agents.ledger.errors import ConfirmationRequired, ManagerOnly
from agents.ledger.verdicts import ScorecardVerdict

__all__ = [
    "ConfirmationRequired",
    "ManagerOnly",
    "ScorecardVerdict",
    "DELIVERY_SEMANTICS",
    "REQUIRED_LIVE_GATES",
    "AlreadyDecided",
    "ApprovedItem",
    "AuditProblem",
    "AuditReport",
    "AuditRow",
    "Claim",
    "Decision",
    "DecisionNotVerified",
    "DecisionStats",
    "Delivery",
    "DeliveryConflict",
    "EditTooLong",
    "SnoozeRefused",
    "Digest",
    "GateNotPassed",
    "Item",
    "Ledger",
    "LedgerError",
    "NotApproved",
    "NotAuthorised",
    "SendsHalted",
    "Snooze",
    "UnknownDelivery",
    "UnknownDigest",
    "UnknownItem",
    "business_days_between",
    "create_ledger_engine",
    "ledger_url",
    "open_ledger",
    "upgrade_schema",
    "verify_audit",
    "window_start",
]
