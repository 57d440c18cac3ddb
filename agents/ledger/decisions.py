"""Decisions and who may take them: the item's manager or one of their allow-listed delegates."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from sqlalchemy import select

from agents.ledger.integrity import decision_record
from agents.ledger.audience import is_manager_only
from agents.ledger.errors import AlreadyDecided, ConfirmationRequired, EditTooLong, LedgerError, NotAuthorised, UnknownItem
from agents.ledger.models import ACTIONS, APPROVER_CHANNELS, APPROVING_ACTIONS, Decision, Item
from agents.ledger.unit_of_work import UnitOfWork


DEFAULT_MAX_EDITED_CHARS = 2000


class Authorization:
    """Who may decide for whom: a manager decides their own items; ``delegates`` maps a manager to others who may."""

    def __init__(self, delegates: Mapping[str, Iterable[str]] | None = None):
        self._delegates = {manager: frozenset(ds) for manager, ds in (delegates or {}).items()}

    def delegates_of(self, manager_id: str) -> frozenset[str]:
        return self._delegates.get(manager_id, frozenset())

    def is_authorised(self, approver_id: str, manager_id: str) -> bool:
        return bool(approver_id) and (approver_id == manager_id or approver_id in self.delegates_of(manager_id))


def record_decision(
    uow: UnitOfWork,
    auth: Authorization,
    item_id: str,
    action: Literal["approve", "edit", "dismiss"],
    approver_id: str,
    channel: Literal["cli", "slack", "console"],
    edited_text: str | None = None,
    reason: str | None = None,
    *,
    operator: str | None = None,
    max_edited_chars: int = DEFAULT_MAX_EDITED_CHARS,
    confirmed: bool = False,
) -> Decision:
    """Record the one effective decision on an item.

    Only the item's manager or an allow-listed delegate may decide; anyone
    else gets ``NotAuthorised`` and the attempt is audited. Decisions are
    final: repeating the same decision (a Slack retry, a double click)
    returns the recorded one unchanged; a different second decision raises
    ``AlreadyDecided`` and is audited as refused.

    ``operator``: who is really at the keyboard, when an interface knows it
    (the CLI's identities file). An operator may decide as ``approver_id`` only
    if it is them or they are that approver's delegate; otherwise
    ``NotAuthorised`` (audited). Both are recorded in the audit row.
    Edited text longer than ``max_edited_chars`` is refused (``EditTooLong``).
    Approving (or editing) a manager-only item (a PIP or CRITICAL scorecard) needs
    ``confirmed=True``, the explicit second confirmation; without it ``ConfirmationRequired``
    (audited). Such an item is never delivered to the rep whatever the decision (agents/ledger/audience.py).
    """
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, got {action!r}")
    if channel not in APPROVER_CHANNELS:
        raise ValueError(f"channel must be one of {APPROVER_CHANNELS}, got {channel!r}")
    if action == "edit" and not (edited_text and edited_text.strip()):
        raise ValueError("an edit needs the edited text")
    if action != "edit" and edited_text is not None:
        raise ValueError("edited_text goes only with action='edit'")
    if not approver_id or not approver_id.strip():
        raise ValueError("approver_id is required (an empty --as names nobody)")
    if edited_text is not None and len(edited_text) > max_edited_chars:
        raise EditTooLong(
            f"the edited text is {len(edited_text):,} characters; the limit is {max_edited_chars:,}. "
            "Shorten it (a coaching action is a sentence or two)."
        )
    attempt = {
        "action": action, "approver_id": approver_id, "channel": channel, "edited_text": edited_text, "reason": reason,
        "operator": operator or approver_id,
    }
    refusal: LedgerError | None = None
    with uow.write() as s:
        item = s.get(Item, item_id)
        if item is None:
            raise UnknownItem(item_id)
        if operator is not None and operator != approver_id and operator not in auth.delegates_of(approver_id):
            uow.audit(
                s, actor=operator, action="decision.refused", subject_type="item", subject_id=item_id,
                payload={**attempt, "refusal": "operator_may_not_act_as", "manager_id": item.manager_id},
            )
            refusal = NotAuthorised(
                f"{operator} may not act as {approver_id}: only {approver_id} or one of their delegates may"
            )
        elif not auth.is_authorised(approver_id, item.manager_id):
            # Only this audit row is in the transaction: it commits, then the caller gets the exception.
            uow.audit(
                s, actor=approver_id, action="decision.refused", subject_type="item", subject_id=item_id,
                payload={**attempt, "refusal": "not_authorised", "manager_id": item.manager_id},
            )
            refusal = NotAuthorised(
                f"{approver_id} may not decide item {item_id}: only manager {item.manager_id} "
                "or an allow-listed delegate may"
            )
        else:
            existing = s.scalars(select(Decision).where(Decision.item_id == item_id)).first()
            if existing is not None:
                if (existing.action, existing.approver_id, existing.edited_text) == (action, approver_id, edited_text):
                    return existing
                uow.audit(
                    s, actor=approver_id, action="decision.refused", subject_type="item", subject_id=item_id,
                    payload={**attempt, "refusal": "already_decided", "decision_id": existing.decision_id},
                )
                refusal = AlreadyDecided(
                    f"item {item_id} was already decided ({existing.action} by {existing.approver_id} "
                    f"at {existing.decided_at:%Y-%m-%d %H:%M}Z); decisions are final",
                    existing,
                )
            elif action in APPROVING_ACTIONS and is_manager_only(item) and not confirmed:
                uow.audit(
                    s, actor=approver_id, action="decision.refused", subject_type="item", subject_id=item_id,
                    payload={**attempt, "refusal": "needs_second_confirmation", "manager_id": item.manager_id},
                )
                refusal = ConfirmationRequired(
                    f"item {item_id} is a manager-only verdict ({item.rule_id}): it is never sent to the rep; "
                    "approving it records the verdict and needs an explicit second confirmation"
                )
            else:
                decision = Decision(
                    item_id=item_id,
                    action=action,
                    approver_id=approver_id,
                    approver_channel=channel,
                    decided_at=uow.now(),
                    edited_text=edited_text,
                    reason=reason,
                    mode=uow.get_meta(s, "mode", "shadow"),
                )
                s.add(decision)
                s.flush()
                uow.audit(
                    s, actor=approver_id, action="decision.recorded", subject_type="item", subject_id=item_id,
                    payload={
                        **attempt, "decision_id": decision.decision_id, "manager_id": item.manager_id,
                        "on_behalf_of": item.manager_id if approver_id != item.manager_id else None,
                        "mode": decision.mode, **decision_record(decision),
                        **({"manager_only": True, "second_confirmation": bool(confirmed)} if is_manager_only(item) else {}),
                    },
                )
                return decision
    assert refusal is not None
    raise refusal


def get_decision(uow: UnitOfWork, item_id: str) -> Decision | None:
    with uow.read() as s:
        return s.scalars(select(Decision).where(Decision.item_id == item_id)).first()


def decisions_for(uow: UnitOfWork, item_ids: Iterable[str]) -> dict[str, Decision]:
    """get_decision for many items in one read: item id -> its decision (undecided items are absent)."""
    ids = list(dict.fromkeys(item_ids))
    out: dict[str, Decision] = {}
    with uow.read() as s:
        for start in range(0, len(ids), 500):
            for d in s.scalars(select(Decision).where(Decision.item_id.in_(ids[start : start + 500])).order_by(Decision.decision_id)):
                out.setdefault(d.item_id, d)
    return out


def decisions_since(uow: UnitOfWork, cursor: str | int | None, *, limit: int = 500) -> tuple[list[Decision], str]:
    """Decisions recorded after ``cursor``, oldest first, and the cursor to pass next time.

    The cursor is an opaque string (a Dagster sensor cursor); ``None`` starts
    from the beginning. With no new decisions the cursor comes back unchanged.
    """
    try:
        after = int(cursor) if cursor not in (None, "") else 0
    except (TypeError, ValueError):
        raise ValueError(f"not a ledger decision cursor: {cursor!r}") from None
    with uow.read() as s:
        rows = list(
            s.scalars(select(Decision).where(Decision.decision_id > after).order_by(Decision.decision_id).limit(limit))
        )
    return rows, str(rows[-1].decision_id if rows else after)
