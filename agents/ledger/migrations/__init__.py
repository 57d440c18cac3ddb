"""Alembic environment for the review ledger, run programmatically by ``open_ledger``.

No alembic.ini is needed: ``alembic_config(url)`` builds the configuration in
code. To author a new revision against a scratch database::

    from alembic import command
    from agents.ledger.migrations import alembic_config
    command.revision(alembic_config("sqlite:///scratch.sqlite"), "what changed", autogenerate=True)

then spell the DDL out in the generated file (migrations are frozen history:
they do not import the models).
"""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent


def alembic_config(url: str | None = None, connection=None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg
