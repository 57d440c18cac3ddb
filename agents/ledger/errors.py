"""What the ledger refuses, as exceptions (every refusal of a decision, delivery or mode is also audited)."""

from __future__ import annotations

from typing import Any


class LedgerError(Exception):
    """Base class for refusals and misuse reported by the ledger."""


class NotAuthorised(LedgerError, PermissionError):
    """The approver is neither the item's manager nor one of their allow-listed delegates."""


class AlreadyDecided(LedgerError):
    """The item already has its one effective decision; ``.decision`` is that decision."""

    def __init__(self, message: str, decision: Any):
        super().__init__(message)
        self.decision = decision


class UnknownItem(LedgerError, LookupError):
    pass


class UnknownDigest(LedgerError, LookupError):
    pass


class UnknownDelivery(LedgerError, LookupError):
    pass


class NotApproved(LedgerError):
    """A delivery was claimed for an item without a live-mode approval (invariant 4)."""


class DecisionNotVerified(NotApproved):
    """The item's decision (or its draft) no longer matches what the audit trail recorded: it is not sent."""


class ConfirmationRequired(LedgerError):
    """Approving a manager-only item (a PIP or CRITICAL scorecard) needs an explicit second confirmation."""


class ManagerOnly(NotApproved):
    """A manager-only item (a PIP or CRITICAL scorecard) may never be delivered to a rep or the CRM."""


class SendsHalted(LedgerError):
    """The kill switch is engaged, or the ledger is in shadow mode: nothing may be sent."""


class DeliveryConflict(LedgerError):
    """The key belongs to another item or channel, or the item/channel already has another key."""


class GateNotPassed(LedgerError):
    """Live mode was requested without every required gate recorded as passed."""


class EditTooLong(LedgerError, ValueError):
    """Edited coaching text over the configured limit (default 2,000 characters)."""


class SnoozeRefused(LedgerError, ValueError):
    """A snooze that would do nothing or cannot be judged: unknown deal or rule, no reason, an end date not after the flag."""
