"""Alembic, one migration history per stateful service, each in its own PostgreSQL schema.

A service's ``migrations/env.py`` calls :func:`run_env`; operators run ``python -m <service> migrate``
(the Kubernetes migration Job and ``make run`` do) before the service starts.
"""

from __future__ import annotations

import asyncio
from importlib import resources

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from pulse_shared.db import async_database_url


def alembic_config(package: str, database_url: str, schema: str) -> Config:
    """An Alembic config for the migrations shipped in ``package`` (for example ``scoring.migrations``)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files(package)))
    cfg.attributes["database_url"] = database_url
    cfg.attributes["schema"] = schema
    return cfg


def upgrade_to_head(package: str, database_url: str, schema: str) -> None:
    """Apply every migration of ``package`` (blocking; run it in a thread from async code)."""
    command.upgrade(alembic_config(package, database_url, schema), "head")


def run_env(target_metadata: MetaData) -> None:
    """Body of a service's ``env.py``: migrate its schema online, one replica at a time."""
    cfg = context.config
    url = async_database_url(cfg.attributes["database_url"])
    schema = cfg.attributes["schema"]

    def migrate(conn: Connection) -> None:
        context.configure(
            connection=conn,
            target_metadata=target_metadata,
            version_table_schema=schema,
            include_schemas=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def main() -> None:
        engine = create_async_engine(url, poolclass=NullPool)
        async with engine.connect() as conn:
            # Several replicas (or a Job and a developer) may migrate at once: serialise them.
            await conn.execute(text("SELECT pg_advisory_lock(hashtext(:s))"), {"s": f"pulse-migrate-{schema}"})
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            await conn.commit()
            await conn.run_sync(migrate)
            await conn.commit()
            await conn.execute(text("SELECT pg_advisory_unlock(hashtext(:s))"), {"s": f"pulse-migrate-{schema}"})
        await engine.dispose()

    asyncio.run(main())
