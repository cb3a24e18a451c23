"""PostgreSQL plumbing: URL normalisation, engines, readiness, and which errors are transient."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from pulse_shared.settings import ServiceSettings

_ASYNC_SCHEME = "postgresql+asyncpg"


def async_database_url(url: str) -> str:
    """Accept ``postgres://``, ``postgresql://`` or ``postgresql+asyncpg://``; return the asyncpg form."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql", _ASYNC_SCHEME}:
        raise ValueError(f"DATABASE_URL must be a postgresql:// URL, not {parts.scheme}://")
    return urlunsplit((_ASYNC_SCHEME, *parts[1:]))


def plain_database_url(url: str) -> str:
    """The ``postgresql://`` form (for asyncpg.connect and libpq tools)."""
    parts = urlsplit(url)
    return urlunsplit(("postgresql", *parts[1:]))


def create_engine(url: str, *, pool_size: int = 10, command_timeout: float | None = None,
                  connect_timeout: float = 10.0, pre_ping: bool = True, max_overflow: int | None = None) -> AsyncEngine:
    """An async engine with a checked pool: dead connections are replaced before use (``pre_ping``, three
    round trips per checkout; a caller that retries every statement on transient errors may turn it off, as a
    dead connection then fails one attempt and invalidates the pool). ``command_timeout`` bounds each
    statement (None: unbounded, for long maintenance commands). Overflow connections (``max_overflow``, by
    default as many as the pool) are opened for a burst and closed after it."""
    return create_async_engine(
        async_database_url(url),
        pool_size=pool_size,
        max_overflow=pool_size if max_overflow is None else max_overflow,
        pool_pre_ping=pre_ping,
        pool_recycle=1800,
        connect_args={"command_timeout": command_timeout, "timeout": connect_timeout},
    )


def service_engine(settings: ServiceSettings, *, pre_ping: bool = True, pool_size: int | None = None,
                   max_overflow: int | None = None) -> AsyncEngine:
    """The engine of a service's workers and API, sized and bounded by its settings (``pool_size`` and
    ``max_overflow`` for a worker under steady load: overflow connections opened and closed all the time cost a
    new PostgreSQL backend each, so such a worker waits for a pooled connection instead)."""
    return create_engine(settings.require_database_url(), pool_size=pool_size or settings.database_pool_size,
                         max_overflow=max_overflow,
                         command_timeout=settings.database_command_timeout_seconds,
                         connect_timeout=settings.database_connect_timeout_seconds, pre_ping=pre_ping)


async def ping(engine: AsyncEngine) -> None:
    """Readiness check: one round trip to the database."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


_TRANSIENT_SQLSTATES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "53300",  # too_many_connections
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now
        "08000", "08003", "08006", "08001", "08004",  # connection exceptions
    }
)


def is_transient(exc: BaseException) -> bool:
    """Whether a failure is worth retrying: lost connections, restarts, timeouts, deadlocks."""
    if isinstance(exc, (OSError, TimeoutError, asyncio.TimeoutError, ConnectionError)):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated or isinstance(exc, (OperationalError, InterfaceError)):
            return True
        return is_transient(exc.orig) if exc.orig is not None else False
    if isinstance(exc, (asyncpg.PostgresConnectionError, asyncpg.InterfaceError)):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        return getattr(exc, "sqlstate", None) in _TRANSIENT_SQLSTATES
    cause = exc.__cause__
    return cause is not None and cause is not exc and is_transient(cause)
