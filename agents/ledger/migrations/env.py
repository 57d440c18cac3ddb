"""Alembic env: uses the connection handed over by ``open_ledger`` (already inside a write transaction)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from agents.ledger.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite ALTERs go through table copies
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        url = config.get_main_option("sqlalchemy.url")
        if not url:
            raise RuntimeError("no connection or sqlalchemy.url: use agents.ledger.open_ledger or alembic_config(url)")
        engine = create_engine(url)
        with engine.begin() as conn:
            _run(conn)
        engine.dispose()
