"""The asyncpg pool, with every timeout set so a dead database answers fast instead of hanging.

The hot paths speak SQL through asyncpg directly (one round-trip per batch); SQLAlchemy and
SQLModel describe the schema and drive Alembic.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg

from order_service.config import Settings
from order_service.domain.errors import ServiceUnavailable
from order_service.observability.metrics import DB_POOL_IN_USE, DB_POOL_SIZE, DB_UNAVAILABLE
from order_service.persistence import connect as connecting
from order_service.persistence.dsn import parse_dsn
from order_service.startup import reach

# Errors that mean "the database is not there right now", as opposed to a bad statement.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
)
# SQLSTATEs of an outage, a failover or overload (PostgreSQL appendix A): connection exception
# (08), insufficient resources (53: too many connections, out of memory, disk full), operator
# intervention (57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now, 57014 a
# statement timeout), 55P03 lock timeout, and 25006: a read-only transaction, what a demoted
# primary or a standby answers to a write.
UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53")
UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "57014", "55P03", "25006"})
# Retrying the same transaction is enough: a serialization failure or a deadlock victim.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})


def _sqlstate(exc: BaseException) -> str:
    return str(getattr(exc, "sqlstate", "") or "") if isinstance(exc, asyncpg.PostgresError) else ""


def is_unavailable(exc: BaseException) -> bool:
    """The database (or this node of it) cannot serve us now: a 503, or wait and retry."""
    if isinstance(exc, UNAVAILABLE_ERRORS):
        return True
    state = _sqlstate(exc)
    return state[:2] in UNAVAILABLE_SQLSTATE_CLASSES or state in UNAVAILABLE_SQLSTATES


def is_transient(exc: BaseException) -> bool:
    """Worth retrying as is, later: never a reason to dead-letter an event."""
    return is_unavailable(exc) or _sqlstate(exc) in RETRYABLE_SQLSTATES


def connection_lost(exc: BaseException) -> bool:
    """The server ended the session mid-statement (shutdown, crash, a failover): a commit in
    flight may have happened — PostgreSQL reports a commit that waited for a synchronous
    standby as "committed locally" and then terminates the session with 57P01."""
    state = _sqlstate(exc)
    return state[:2] == "08" or state in ("57P01", "57P02")


def is_wrong_node(exc: BaseException) -> bool:
    """Connected to a node that no longer takes writes (a failover happened): reconnect."""
    return _sqlstate(exc) == "25006"


def discard_connection(conn: asyncpg.Connection) -> None:
    """Close a connection in an unknown state (a lost answer); the pool opens a new one."""
    with contextlib.suppress(asyncpg.InterfaceError):  # already closed and released
        conn.terminate()


async def forget_connections_after(pool: asyncpg.Pool, exc: BaseException) -> None:
    """After a failover or a read-only answer, no pooled connection is trusted again: each is
    closed when next released, and new ones go to whichever host takes writes now."""
    if is_wrong_node(exc) or isinstance(exc, UNAVAILABLE_ERRORS):
        await pool.expire_connections()


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


async def _nothing_to_reset(conn: asyncpg.Connection) -> None:
    """Released connections carry no session state here (no LISTEN — the relay's listener has
    its own connection —, no session advisory locks, no SET, no cursors), so asyncpg's reset
    query (`pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`), one round-trip per
    release, is skipped. An open transaction is still rolled back by the pool itself."""


async def create_pool(settings: Settings, **overrides: Any) -> asyncpg.Pool:
    dsn = parse_dsn(settings.postgres_dsn)

    async def connect_one(*_: Any, **kwargs: Any) -> asyncpg.Connection:
        return await connecting.connect(dsn, **kwargs)

    options: dict[str, Any] = {
        "connect": connect_one,
        "min_size": settings.db_pool_min_size,
        "max_size": settings.db_pool_max_size,
        "timeout": settings.db_connect_timeout_s,
        "command_timeout": settings.db_statement_timeout_ms / 1000 + 1,
        "server_settings": _server_settings(settings),
        "max_inactive_connection_lifetime": 60.0,
        "reset": _nothing_to_reset,
    }
    options.update(overrides)
    pool = await asyncpg.create_pool(**options)
    assert pool is not None
    # Read at scrape time: the gauges always show the live pool, at no cost per query.
    DB_POOL_SIZE.set_function(pool.get_size)
    DB_POOL_IN_USE.set_function(lambda: pool.get_size() - pool.get_idle_size())
    return pool


def postgres_name(settings: Settings) -> str:
    return f"PostgreSQL at {parse_dsn(settings.postgres_dsn).describe()}"


async def open_pool(settings: Settings, **overrides: Any) -> asyncpg.Pool:
    """A process's pool at start-up: retried with backoff for STARTUP_TIMEOUT_S, then one
    ServiceUnavailable naming the database (never its password)."""
    return await reach(
        settings, postgres_name(settings), lambda: create_pool(settings, **overrides)
    )


async def connect(settings: Settings) -> asyncpg.Connection:
    """A dedicated connection (LISTEN needs one that the pool will not hand to anyone else)."""
    return await connecting.connect(
        parse_dsn(settings.postgres_dsn),
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
