"""Who is at the keyboard: the operator's approver id, established from an identities file, not asserted.

The file (YAML, ``<home>/identities.yaml`` by default) maps OS users and
per-user tokens to approver ids::

    users:                 # OS login -> approver id
      maria: mgr-0001
      dana: dlg-0007
    tokens:                # sha256 of a personal token -> approver id (for shared machines and service accounts)
      "sha256:9f86d0...": mgr-0002

A token (``SALES_SUPERVISOR_TOKEN``) is checked first; a token that matches no
entry is refused rather than falling back to the OS user. The file is read
by the interface (CLI); what an operator may do with ``--as`` is the ledger's
rule (``record_decision(..., operator=)``, ``snooze(..., operator=)``).
Limits: an OS login is as strong as the machine's accounts; anyone who can
edit the identities file can make themselves anyone (keep it owned by an
administrator), and a token is as secret as the person keeps it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from pathlib import Path

from agents.ledger.errors import LedgerError


class UnknownOperator(LedgerError, PermissionError):
    """The operator could not be established (no identities file, unmapped OS user, unknown token)."""


def token_digest(token: str) -> str:
    """What the identities file stores for a token: ``sha256:<hex>`` (the token itself is never written down)."""
    return "sha256:" + hashlib.sha256(token.strip().encode("utf-8")).hexdigest()


@dataclasses.dataclass(frozen=True)
class Identities:
    users: Mapping[str, str] = dataclasses.field(default_factory=dict)
    tokens: Mapping[str, str] = dataclasses.field(default_factory=dict)  # token digest -> approver id
    source: str = ""

    @classmethod
    def load(cls, path: Path | str) -> Identities:
        import yaml

        path = Path(path)
        if not path.exists():
            raise UnknownOperator(
                f"no identities file at {path}: the CLI cannot tell who you are. Create it with "
                "'users: {<your OS login>: <your approver id>}' (or set SALES_SUPERVISOR_IDENTITIES_FILE)"
            )
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict) or set(data) - {"users", "tokens"}:
            raise ValueError(f"{path}: expected 'users:' and/or 'tokens:' mappings")
        users, tokens = data.get("users") or {}, data.get("tokens") or {}
        if not isinstance(users, dict) or not isinstance(tokens, dict):
            raise ValueError(f"{path}: 'users' and 'tokens' must map names to approver ids")
        for digest in tokens:
            if not str(digest).startswith("sha256:"):
                raise ValueError(f"{path}: token entries are 'sha256:<hex>' digests (see token_digest), got {str(digest)[:12]!r}")
        return cls(
            users={str(k): str(v) for k, v in users.items()},
            tokens={str(k): str(v) for k, v in tokens.items()},
            source=str(path),
        )

    def operator(self, *, os_user: str | None, token: str | None = None) -> str:
        """The approver id of whoever runs the command."""
        if token is not None and token.strip():
            approver = self.tokens.get(token_digest(token))
            if approver is None:
                raise UnknownOperator(f"the token in SALES_SUPERVISOR_TOKEN matches no entry in {self.source}")
            return approver
        if os_user and os_user in self.users:
            return self.users[os_user]
        raise UnknownOperator(f"OS user {os_user!r} is not in {self.source}: ask an administrator to add you under 'users:'")


def current_os_user() -> str | None:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no login name (a container without a passwd entry)
        return None


__all__ = ["Identities", "UnknownOperator", "current_os_user", "token_digest"]
