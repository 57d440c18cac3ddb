"""Console settings (environment variables SALES_SUPERVISOR_CONSOLE_*, or .env), with working defaults."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SALES_SUPERVISOR_CONSOLE_", env_file=".env", extra="ignore", frozen=True)

    host: str = Field(default="127.0.0.1", description="Interface the console listens on.")
    port: int = Field(default=8040, description="HTTP port (3000 is the Dagster UI's, 3030 the Slack app's).")
    url: str | None = Field(
        default=None, description="Base URL people reach the console at (digests link here); default http://<host>:<port>."
    )
    secret: str | None = Field(
        default=None, description="Key that signs session cookies; default: a random key kept in <home>/console_secret."
    )
    users_file: Path | None = Field(default=None, description="Console accounts (YAML); default <home>/console_users.yaml.")
    trusted_header: str | None = Field(
        default=None,
        description="SSO: the header a trusted reverse proxy sets to the signed-in login (e.g. X-Forwarded-User). Off by default.",
    )
    trusted_proxies: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"], description="Client addresses whose trusted header is believed."
    )
    https: bool = Field(default=False, description="Served behind HTTPS: Secure cookies and HSTS.")
    session_hours: int = Field(default=10, ge=1, description="A sign-in lasts this long.")
    dagster_url: str = Field(default="http://127.0.0.1:3000", description="The running Dagster webserver (make dev).")
    dagster_location: str = Field(default="orchestration.definitions", description="Its code location name.")
    undecided_business_days: int = Field(default=2, ge=1, description="Exception queue: items undecided this many business days.")

    def base_url(self) -> str:
        return (self.url or f"http://{self.host}:{self.port}").rstrip("/")

    def users_path(self, home: Path) -> Path:
        return self.users_file or home / "console_users.yaml"

    def signing_key(self, home: Path) -> str:
        if self.secret:
            return self.secret
        path = home / "console_secret"
        if not path.exists():
            home.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
        return path.read_text().strip()
