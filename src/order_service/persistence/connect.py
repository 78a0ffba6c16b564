"""Open a connection to the host of a (multi-host) DSN that fits `target_session_attrs`.

asyncpg tries the hosts of a multi-host DSN one after the other under one shared timeout, so a
blackholed first host (the old primary after a failover) eats the whole budget and the new
primary is never tried. Here every host is tried at once, each with the full timeout, and the
first one that fits wins; the others are closed. The cost is one extra short-lived connection
per pool growth, paid only when several hosts are named.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from order_service.persistence.dsn import HostPort, PostgresDsn


class NoUsableHost(ConnectionError):
    """No host of the DSN could be connected to (or none takes writes); names each one."""

    def __init__(self, dsn: PostgresDsn, errors: dict[HostPort, BaseException]) -> None:
        self.errors = errors
        reasons = "; ".join(f"{host}: {_reason(exc)}" for host, exc in errors.items())
        super().__init__(f"no usable host of {dsn.describe()} ({reasons})")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncpg.exceptions.TargetServerAttributeNotMatched):
        return "does not take writes (standby or read-only)"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


async def connect(
    dsn: PostgresDsn, *, timeout: float, **kwargs: Any  # noqa: ASYNC109 - asyncpg's own kwarg
) -> asyncpg.Connection:
    """One connection, to the first host that answers and fits; raises NoUsableHost."""
    kwargs.pop("loop", None)
    if len(dsn.hosts) == 1:
        host = dsn.hosts[0]
        try:
            return await asyncpg.connect(dsn.for_host(host), timeout=timeout, **kwargs)
        except (OSError, TimeoutError, asyncpg.exceptions.TargetServerAttributeNotMatched) as exc:
            raise NoUsableHost(dsn, {host: exc}) from exc
    attempts = {
        asyncio.ensure_future(asyncpg.connect(dsn.for_host(h), timeout=timeout, **kwargs)): h
        for h in dsn.hosts
    }
    errors: dict[HostPort, BaseException] = {}
    winner: asyncio.Future[Any] | None = None
    try:
        pending = set(attempts)
        while pending and winner is None:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for attempt in done:
                error = attempt.exception()
                if error is not None:
                    errors[attempts[attempt]] = error
                elif winner is None:
                    winner = attempt
    finally:
        for attempt in attempts:
            if attempt is not winner:
                attempt.add_done_callback(_close_if_connected)
                attempt.cancel()
    if winner is not None:
        return winner.result()
    raise NoUsableHost(dsn, {h: errors[h] for h in dsn.hosts if h in errors})


def _close_if_connected(attempt: asyncio.Future[Any]) -> None:
    """A losing attempt that connected anyway (also after its cancel) is closed at once."""
    if not attempt.cancelled() and attempt.exception() is None:
        attempt.result().terminate()
