"""One active writer per connector across replicas: a PostgreSQL session advisory lock.

The lock lives on a connection of its own, so it is held exactly as long as that connection: a replica that
dies (kill -9, a lost node) loses it when PostgreSQL notices the connection is gone, and another replica takes
over. The holder checks the connection before every cycle; if the check fails it stops writing at once.
"""

from __future__ import annotations

import logging

from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)


class WriterLock:
    """The advisory lock named ``pulse-crm-sync:<connector>``."""

    def __init__(self, engine: AsyncEngine, connector: str) -> None:
        self._engine = engine
        self.key = f"pulse-crm-sync:{connector}"
        self._conn: AsyncConnection | None = None

    async def acquire(self) -> bool:
        """Try to take the lock (never waits); return whether this process holds it now."""
        if await self.held():
            return True
        conn = await self._engine.connect()
        try:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            got = bool((await conn.execute(select(func.pg_try_advisory_lock(func.hashtextextended(self.key, 0)))))
                       .scalar())
        except Exception:
            await conn.close()
            raise
        if not got:
            await conn.close()
            return False
        self._conn = conn
        return True

    async def held(self) -> bool:
        """Whether the lock's connection is alive (so the lock is still this process's)."""
        if self._conn is None:
            return False
        try:
            await self._conn.execute(text("SELECT 1"))
            return True
        except (SQLAlchemyError, OSError) as exc:
            log.warning("writer lock connection lost; no longer the writer", extra={"lock": self.key,
                                                                                     "error": repr(exc)[:200]})
            await self._drop()
            return False

    async def release(self) -> None:
        """Give the lock up (on shutdown, so another replica takes over at once)."""
        if self._conn is None:
            return
        try:
            await self._conn.execute(select(func.pg_advisory_unlock(func.hashtextextended(self.key, 0))))
        except Exception:  # the connection is going anyway; closing it releases the lock
            log.debug("advisory unlock failed", exc_info=True)
        await self._drop()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except Exception:
                log.debug("closing the lock connection failed", exc_info=True)

