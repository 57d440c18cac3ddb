"""Console sign-in accounts: a login, an argon2 password hash, a role and the approver id it acts as.

The file (YAML, ``<home>/console_users.yaml`` by default, written by ``sales-supervisor console
add-user``) maps each login to the same approver ids the CLI identities file and the Slack app map
to, so a decision taken in the console is judged by the same ledger rules::

    users:
      maria:
        role: manager            # manager | delegate | ops_admin
        approver_id: mgr-0001    # a manager's or delegate's approver id (ops admins: optional)
        name: Maria Lopez
        password: "$argon2id$v=19$m=65536,t=3,p=4$..."

Passwords are hashed with argon2id (argon2-cffi); the file never holds a password. With single
sign-on, the reverse proxy authenticates and names the login in a header; the login must still be
in this file (it carries the role and approver id), and its password is not used.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

ROLES = ("manager", "delegate", "ops_admin")
ROLE_LABELS = {"manager": "manager", "delegate": "delegate", "ops_admin": "ops admin"}
MIN_PASSWORD_CHARS = 10
_hasher = PasswordHasher()
# Verified against when the login is unknown, so a wrong login costs the same time as a wrong password.
_DUMMY_HASH = _hasher.hash("not a real password, only for timing")


@dataclasses.dataclass(frozen=True)
class Account:
    login: str
    role: str
    approver_id: str | None = None
    name: str | None = None
    password_hash: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.login

    @property
    def is_admin(self) -> bool:
        return self.role == "ops_admin"

    def managers_in_scope(self, delegates: Mapping[str, Iterable[str]], all_managers: Iterable[str]) -> set[str]:
        """Whose digests this account may see: a manager their own (and any they are a delegate of), a delegate
        the managers who allow-listed them, an ops admin everyone's (read-only: the ledger decides who may decide)."""
        if self.is_admin:
            return set(all_managers)
        if not self.approver_id:
            return set()
        scope = {m for m, ds in delegates.items() if self.approver_id in set(ds)}
        if self.role == "manager":
            scope.add(self.approver_id)
        return scope


class AccountsFile:
    def __init__(self, path: Path | str):
        self.path = Path(path)

    def load(self) -> dict[str, Account]:
        import yaml

        if not self.path.exists():
            return {}
        data = yaml.safe_load(self.path.read_text(encoding="utf-8")) or {}
        users = data.get("users") if isinstance(data, dict) else None
        if not isinstance(users, dict):
            raise ValueError(f"{self.path}: expected a 'users:' mapping of login -> role, approver_id, password")
        out = {}
        for login, entry in users.items():
            if not isinstance(entry, dict) or entry.get("role") not in ROLES:
                raise ValueError(f"{self.path}: user {login!r} needs a role, one of {', '.join(ROLES)}")
            if entry["role"] != "ops_admin" and not entry.get("approver_id"):
                raise ValueError(f"{self.path}: user {login!r} ({entry['role']}) needs an approver_id")
            out[str(login)] = Account(
                login=str(login), role=entry["role"], approver_id=str(entry["approver_id"]) if entry.get("approver_id") else None,
                name=entry.get("name"), password_hash=entry.get("password"),
            )
        return out

    def get(self, login: str) -> Account | None:
        return self.load().get(login)

    def add(self, login: str, password: str | None, *, role: str, approver_id: str | None = None, name: str | None = None) -> Account:
        """Add or replace a login (password None: SSO only, no password sign-in)."""
        import yaml

        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        if role != "ops_admin" and not approver_id:
            raise ValueError(f"a {ROLE_LABELS[role]} needs --approver-id (the id the CLI and Slack map them to)")
        if not login or not login.strip() or any(c.isspace() for c in login):
            raise ValueError("a login is one word (no spaces)")
        if password is not None and len(password) < MIN_PASSWORD_CHARS:
            raise ValueError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
        data = {"users": {}}
        if self.path.exists():
            data = yaml.safe_load(self.path.read_text(encoding="utf-8")) or {"users": {}}
            data.setdefault("users", {})
        entry = {"role": role}
        if approver_id:
            entry["approver_id"] = approver_id
        if name:
            entry["name"] = name
        if password is not None:
            entry["password"] = _hasher.hash(password)
        data["users"][login] = entry
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(yaml.safe_dump(data, sort_keys=True), encoding="utf-8")
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)
        return self.load()[login]

    def authenticate(self, login: str, password: str) -> Account | None:
        """The account when the password matches its argon2 hash, else None (same cost for unknown logins)."""
        account = self.load().get(login)
        stored = account.password_hash if account and account.password_hash else _DUMMY_HASH
        try:
            _hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        return account if account is not None and account.password_hash else None


__all__ = ["ROLES", "ROLE_LABELS", "Account", "AccountsFile"]
