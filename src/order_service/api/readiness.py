"""Readiness of the api: PostgreSQL answers a query. The broker is reported, never required.

The api takes orders without Kafka (the outbox holds them until the relay can publish), so a
broker outage must not take api pods out of the Service (DESIGN.md §3): `/readyz` is 503 only
when the database is down or the process is draining after SIGTERM; the broker's state is in
the body and in `dependency_up{dependency="kafka"}`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import asyncpg

from order_service.api import draining
from order_service.observability.metrics import DEPENDENCY_UP
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


@dataclass(frozen=True, slots=True)
class ReadinessState:
    database: bool
    broker: bool
    draining: bool

    @property
    def ready(self) -> bool:
        return self.database and not self.draining


@dataclass
class Readiness:
    pool: asyncpg.Pool
    bootstrap_servers: str
    timeout_s: float = 1.0
    cache_s: float = 1.0
    draining: bool = False  # set at SIGTERM: the load balancer stops sending new requests
    _checked_at: float = 0.0
    _last: tuple[bool, bool] = (False, False)

    async def check(self) -> ReadinessState:
        """Cached briefly, so probes can't load the database."""
        now = time.monotonic()
        if now - self._checked_at >= self.cache_s:
            db_ok, broker_ok = await asyncio.gather(
                ping(self.pool, self.timeout_s),
                broker_reachable(self.bootstrap_servers, self.timeout_s),
            )
            self._checked_at, self._last = now, (db_ok, broker_ok)
            DEPENDENCY_UP.labels(dependency="postgres").set(int(db_ok))
            DEPENDENCY_UP.labels(dependency="kafka").set(int(broker_ok))
        return ReadinessState(*self._last, draining=self.draining or draining.is_draining())
