"""The hash chain behind the append-only audit trail, and its verifier.

Each row's ``row_hash`` is sha256 over a canonical JSON serialisation of its
content (at, actor, action, subject_type, subject_id, payload) and the
``prev_hash`` it links to; the first row links to ``GENESIS_HASH``.

``seq`` is the row's address, not part of the hashed content: the position is
already bound by ``prev_hash``, and keeping ``seq`` out means that renumbering
rows to slip one in (or to hide a deletion) shows up exactly where it happened
instead of as a flood of mismatches on every later row.

The database refuses UPDATE and DELETE on ``audit`` (triggers); the chain is
what catches someone who drops the triggers or edits the file. What a chain
cannot catch on its own is a valid-looking row appended at the end, or rows cut
from the end: for that, publish the head (``Ledger.audit_head()``) somewhere
else (the run log, the digest footer) and pass it back as ``anchor``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import hashlib
import json
from collections.abc import Iterable
from typing import Any, Literal

GENESIS_HASH = "0" * 64

ProblemKind = Literal[
    "altered", "deleted", "inserted", "chain_broken", "renumbered", "anchor_mismatch", "row_mismatch", "unrecorded"
]


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return format_timestamp(value) if value.tzinfo else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if hasattr(value, "model_dump"):  # pydantic models
        return value.model_dump(mode="json")
    raise TypeError(f"cannot put {type(value).__name__} in an audit payload")


def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no whitespace, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default, allow_nan=False)


def format_timestamp(at: dt.datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("audit timestamps must be aware (UTC)")
    return at.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def compute_row_hash(
    *, at: dt.datetime, actor: str, action: str, subject_type: str, subject_id: str, payload: str, prev_hash: str
) -> str:
    """sha256 over the canonical serialisation of a row's content and the hash it links to.

    ``payload`` is the stored canonical JSON text, hashed as text so the hash
    never depends on how a database round-trips JSON.
    """
    body = canonical_json(
        {
            "action": action,
            "actor": actor,
            "at": format_timestamp(at),
            "payload": payload,
            "prev_hash": prev_hash,
            "subject_id": subject_id,
            "subject_type": subject_type,
        }
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@dataclasses.dataclass(frozen=True)
class AuditProblem:
    seq: int
    kind: ProblemKind
    message: str


@dataclasses.dataclass(frozen=True)
class AuditReport:
    ok: bool
    rows_checked: int
    head_seq: int | None
    head_hash: str | None
    problems: tuple[AuditProblem, ...]

    @property
    def bad_seqs(self) -> list[int]:
        return sorted({p.seq for p in self.problems})

    def __str__(self) -> str:
        if self.ok:
            head = f"head seq {self.head_seq} {self.head_hash}" if self.head_seq else "empty trail"
            return f"audit trail OK: {self.rows_checked} rows verified, chain intact ({head})"
        lines = [f"audit trail TAMPERED: {len(self.problems)} problem(s) in {self.rows_checked} rows"]
        lines += [f"  {p.message}" for p in self.problems]
        return "\n".join(lines)


def _recompute(row: Any) -> str:
    return compute_row_hash(
        at=row.at,
        actor=row.actor,
        action=row.action,
        subject_type=row.subject_type,
        subject_id=row.subject_id,
        payload=row.payload,
        prev_hash=row.prev_hash,
    )


def verify_rows(rows: Iterable[Any], anchor: tuple[int, str] | None = None) -> AuditReport:
    """Walk rows in seq order (anything with the audit columns as attributes) and report every break.

    Messages (``{s}`` a seq, hashes shortened to 12 hex digits):

    - ``seq {s}: row altered (stored row_hash {h} != recomputed {r})``
    - ``seq {a}: row deleted (seq {b} follows seq {p})`` or ``seq {a}..{z}: {n} rows deleted (...)``
    - ``seq {s}: row inserted (seq {n} links to seq {p}, skipping it)``
    - ``seq {s}: chain broken (prev_hash {h} is not the row_hash of seq {p}: seq {p} was altered and re-hashed, or replaced)``
    - ``seq {a}..{z}: seq numbers missing but seq {b} still links to seq {p} (rows renumbered)``
    - ``seq {s}: anchor mismatch (...)``
    """
    problems: list[AuditProblem] = []
    prev = None  # the previous row
    before_prev = None  # the one before it
    checked = 0
    by_seq_hash: dict[int, str] = {}
    for row in rows:
        checked += 1
        seq = row.seq
        if anchor is not None and seq == anchor[0]:
            by_seq_hash[seq] = row.row_hash
        recomputed = _recompute(row)
        if recomputed != row.row_hash:
            problems.append(
                AuditProblem(seq, "altered", f"seq {seq}: row altered (stored row_hash {row.row_hash[:12]} != recomputed {recomputed[:12]})")
            )
        expected_seq = prev.seq + 1 if prev is not None else 1
        expected_prev_hash = prev.row_hash if prev is not None else GENESIS_HASH
        linked = row.prev_hash == expected_prev_hash
        if seq > expected_seq:
            span = f"seq {expected_seq}" if seq - 1 == expected_seq else f"seq {expected_seq}..{seq - 1}"
            after = f"seq {prev.seq}" if prev is not None else "the start"
            if linked:
                problems.append(
                    AuditProblem(expected_seq, "renumbered", f"{span}: seq numbers missing but seq {seq} still links to {after} (rows renumbered)")
                )
            else:
                n = seq - expected_seq
                what = "row deleted" if n == 1 else f"{n} rows deleted"
                problems.append(AuditProblem(expected_seq, "deleted", f"{span}: {what} (seq {seq} follows {after})"))
        elif not linked:
            if before_prev is not None and row.prev_hash == before_prev.row_hash:
                problems.append(
                    AuditProblem(prev.seq, "inserted", f"seq {prev.seq}: row inserted (seq {seq} links to seq {before_prev.seq}, skipping it)")
                )
            elif prev is not None and prev.seq == 1 and row.prev_hash == GENESIS_HASH:
                problems.append(AuditProblem(1, "inserted", f"seq 1: row inserted (seq {seq} links to the start, skipping it)"))
            else:
                after = f"the row_hash of seq {prev.seq}" if prev is not None else "the genesis hash"
                culprit = (
                    f"seq {prev.seq} was altered and re-hashed, or replaced" if prev is not None else "the first row was replaced"
                )
                problems.append(
                    AuditProblem(seq, "chain_broken", f"seq {seq}: chain broken (prev_hash {row.prev_hash[:12]} is not {after}: {culprit})")
                )
        before_prev, prev = prev, row
    if anchor is not None:
        a_seq, a_hash = anchor
        if a_seq not in by_seq_hash:
            problems.append(AuditProblem(a_seq, "anchor_mismatch", f"seq {a_seq}: anchor mismatch (the anchored row is missing: rows cut from the end?)"))
        elif by_seq_hash[a_seq] != a_hash:
            problems.append(
                AuditProblem(a_seq, "anchor_mismatch", f"seq {a_seq}: anchor mismatch (row_hash {by_seq_hash[a_seq][:12]} != anchored {a_hash[:12]})")
            )
    return AuditReport(
        ok=not problems,
        rows_checked=checked,
        head_seq=prev.seq if prev is not None else None,
        head_hash=prev.row_hash if prev is not None else None,
        problems=tuple(problems),
    )


def verify_audit(ledger: Any, anchor: tuple[int, str] | None = None) -> AuditReport:
    """Verify a ledger's whole audit trail (streams rows; the trail is never loaded at once)."""
    return ledger.verify_audit(anchor=anchor)


__all__ = [
    "GENESIS_HASH",
    "AuditProblem",
    "AuditReport",
    "canonical_json",
    "compute_row_hash",
    "format_timestamp",
    "verify_audit",
    "verify_rows",
]
