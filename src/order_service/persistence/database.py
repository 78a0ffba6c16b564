"""The asyncpg pool, with every timeout set so a dead database answers fast instead of hanging.

The hot paths speak SQL through asyncpg directly (one round-trip per batch); SQLAlchemy and
SQLModel describe the schema and drive Alembic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg

from order_service.config import Settings
from order_service.domain.errors import ServiceUnavailable
from order_service.observability.metrics import DB_POOL_IN_USE, DB_POOL_SIZE, DB_UNAVAILABLE

# Errors that mean "the database is not there right now", as opposed to a bad statement.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.QueryCanceledError,
    asyncpg.exceptions.LockNotAvailableError,
)


def is_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, UNAVAILABLE_ERRORS)


@contextmanager
def database_errors_as_unavailable(op: str) -> Iterator[None]:
    """An unreachable database becomes ServiceUnavailable (503 at the edge); bugs stay bugs."""
    try:
        yield
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        DB_UNAVAILABLE.labels(op=op).inc()
        raise ServiceUnavailable("the database is unavailable") from exc


def _server_settings(settings: Settings) -> dict[str, str]:
    return {
        "application_name": settings.service_name,
        "statement_timeout": str(settings.db_statement_timeout_ms),
        "idle_in_transaction_session_timeout": str(settings.db_statement_timeout_ms * 6),
        "lock_timeout": str(settings.db_statement_timeout_ms),
    }


async def create_pool(settings: Settings, **overrides: Any) -> asyncpg.Pool:
    options: dict[str, Any] = {
        "dsn": settings.asyncpg_dsn,
        "min_size": settings.db_pool_min_size,
        "max_size": settings.db_pool_max_size,
        "timeout": settings.db_connect_timeout_s,
        "command_timeout": settings.db_statement_timeout_ms / 1000 + 1,
        "server_settings": _server_settings(settings),
        "max_inactive_connection_lifetime": 60.0,
    }
    options.update(overrides)
    pool = await asyncpg.create_pool(**options)
    assert pool is not None
    # Read at scrape time: the gauges always show the live pool, at no cost per query.
    DB_POOL_SIZE.set_function(pool.get_size)
    DB_POOL_IN_USE.set_function(lambda: pool.get_size() - pool.get_idle_size())
    return pool


async def connect(settings: Settings) -> asyncpg.Connection:
    """A dedicated connection (LISTEN needs one that the pool will not hand to anyone else)."""
    return await asyncpg.connect(
        settings.asyncpg_dsn,
        timeout=settings.db_connect_timeout_s,
        server_settings=_server_settings(settings),
    )


async def ping(pool: asyncpg.Pool, timeout_s: float) -> bool:
    try:
        async with asyncio.timeout(timeout_s):
            async with pool.acquire() as conn:
                return bool(await conn.fetchval("SELECT 1") == 1)
    except Exception:
        return False
