"""Settings from the environment (and an optional .env file), with defaults that work out of the box.

All local state lives under one folder, ``./var`` by default, overridable with
``SALES_SUPERVISOR_HOME``.
"""

from __future__ import annotations

import datetime as dt
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
SEMANTIC_MODELS_DIR = REPO_ROOT / "semantic_models"

# The demo CRM is anchored here so every demo run (and every test) sees the same world.
DEMO_AS_OF = dt.date(2026, 10, 1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SALES_SUPERVISOR_", env_file=".env", extra="ignore", frozen=True
    )

    home: Path = Field(default=Path("var"), description="Folder for all local state.")
    crm_source: Literal["demo", "csv", "hubspot", "salesforce", "pipedrive"] = Field(
        default="demo", description="Where CRM extracts come from."
    )
    csv_folder: Path | None = Field(default=None, description="Folder of CSV exports (crm_source=csv).")
    csv_mapping: Path | None = Field(default=None, description="Column-mapping YAML for the CSV folder.")
    demo_seed: int = 7
    demo_scale: int = Field(default=1, ge=1)
    landing_batch_size: int = Field(
        default=50_000, ge=1,
        description="Rows per Arrow batch when landing (CSV, demo and API sources): landing memory grows with it, not with the export's size.",
    )
    as_of: dt.date | None = Field(default=None, description="Run as-of date; default: the demo anchor for the demo CRM, else today.")
    max_items_per_rep: int = Field(default=5, ge=1, description="Items per rep in a manager's digest.")
    risk_policy: Path | None = Field(
        default=None, description="Risk policy YAML; default: agents/risk/default_policy.yaml."
    )
    ledger_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the review ledger; default: SQLite file <home>/ledger.sqlite."
    )
    delegates_file: Path | None = Field(
        default=None, description="YAML mapping manager_id -> list of approver ids allowed to decide for them."
    )
    # Review safety (issue 11): anchors of the audit chain, operator identities, edit limits.
    anchor_file: Path | None = Field(
        default=None, description="Append-only file of audit chain-head anchors; default <home>/anchors/audit-anchors.jsonl."
    )
    anchor_external_path: Path | None = Field(
        default=None, description="A second anchor file outside the state folder (e.g. a mount the ledger's writers cannot rewrite)."
    )
    anchor_slack_channel: str | None = Field(default=None, description="Slack channel id to post each audit anchor to.")
    identities_file: Path | None = Field(
        default=None, description="YAML mapping OS users and token digests to approver ids; default <home>/identities.yaml."
    )
    max_edited_chars: int = Field(default=2000, ge=1, description="Longest edited coaching text a manager may submit.")
    # The warehouse (issue 13): a DuckDB file under the home folder, or a PostgreSQL database by URL.
    warehouse: Literal["duckdb", "postgres"] = Field(
        default="duckdb", description="Warehouse engine: duckdb (a file under the home folder) or postgres (by URL)."
    )
    warehouse_url: str | None = Field(
        default=None, description="PostgreSQL URL of the warehouse (warehouse=postgres): postgresql://user:password@host:5432/dbname."
    )
    quotas_file: Path | None = Field(
        default=None, description="Quotas file (CSV or YAML: rep or team, period, amount) beside any CRM source; wins over the CRM's own."
    )

    @field_validator("warehouse", mode="before")
    @classmethod
    def _warehouse_kind(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() not in ("duckdb", "postgres", "postgresql", ""):
            raise ValueError(
                f"SALES_SUPERVISOR_WAREHOUSE chooses the warehouse engine (duckdb or postgres), got {value!r}; "
                "the DuckDB file is always <home>/warehouse.duckdb, and a PostgreSQL database is given by "
                "SALES_SUPERVISOR_WAREHOUSE_URL"
            )
        if isinstance(value, str):
            value = value.strip().lower() or "duckdb"
            return "postgres" if value == "postgresql" else value
        return value

    @cached_property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def warehouse_path(self) -> Path:
        return self.home_dir / "warehouse.duckdb"

    def warehouse_handle(self):
        """The configured warehouse (agents.warehouse.Warehouse): the one way code reaches it."""
        from agents.warehouse import Warehouse

        return Warehouse.from_settings(self)

    @property
    def demo_dir(self) -> Path:
        return self.home_dir / "demo_crm" / f"seed{self.demo_seed}_scale{self.demo_scale}"

    def delegates(self) -> dict[str, list[str]]:
        if self.delegates_file is None:
            return {}
        import yaml

        data = yaml.safe_load(self.delegates_file.read_text()) or {}
        if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
            raise ValueError(f"{self.delegates_file}: expected 'manager_id: [approver_id, ...]' entries")
        return {str(k): [str(x) for x in v] for k, v in data.items()}

    @property
    def identities_path(self) -> Path:
        return self.identities_file or self.home_dir / "identities.yaml"

    def effective_as_of(self) -> dt.date:
        if self.as_of is not None:
            return self.as_of
        return DEMO_AS_OF if self.crm_source == "demo" else dt.date.today()

    def risk_policy_in_force(self):
        """The risk policy a run reads: ``risk_policy`` (an explicit file: ``--policy`` or
        SALES_SUPERVISOR_RISK_POLICY) wins; else the version applied with ``sales-supervisor policy apply``
        (stored in the ledger); else the shipped agents/risk/default_policy.yaml."""
        from agents.risk.versions import effective_policy

        return effective_policy(self.risk_policy, ledger_url=self.ledger_url, home=self.home_dir)
