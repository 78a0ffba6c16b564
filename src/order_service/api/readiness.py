"""Readiness: PostgreSQL answers a query, and a Kafka bootstrap server accepts a connection."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import asyncpg

from order_service.persistence.database import ping


async def broker_reachable(bootstrap_servers: str, timeout_s: float) -> bool:
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            async with asyncio.timeout(timeout_s):
                _, writer = await asyncio.open_connection(host or "localhost", int(port or 9092))
            writer.close()
            return True
        except (OSError, TimeoutError, ValueError):
            continue
    return False


@dataclass
class Readiness:
    pool: asyncpg.Pool
    bootstrap_servers: str
    timeout_s: float = 1.0
    cache_s: float = 1.0
    _checked_at: float = 0.0
    _last: tuple[bool, bool] = (False, False)

    async def check(self) -> tuple[bool, bool]:
        """(database ok, broker ok), cached briefly so probes can't load the database."""
        now = time.monotonic()
        if now - self._checked_at < self.cache_s:
            return self._last
        db_ok, broker_ok = await asyncio.gather(
            ping(self.pool, self.timeout_s),
            broker_reachable(self.bootstrap_servers, self.timeout_s),
        )
        self._checked_at, self._last = now, (db_ok, broker_ok)
        return self._last
