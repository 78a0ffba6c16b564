"""LISTEN outbox_new on a dedicated connection: the relay wakes on commit instead of polling.

Losing the connection loses no event, only latency: the relay polls anyway, and every
(re)connect wakes it once to catch whatever was committed while no one was listening.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from order_service.config import Settings
from order_service.messaging.lifecycle import wait_any
from order_service.observability.logging import get_logger
from order_service.persistence.database import connect
from order_service.retry import backoff_delays

CHANNEL = "outbox_new"
LIVENESS_CHECK_S = 5.0
log = get_logger(__name__)


class OutboxListener:
    def __init__(self, settings: Settings, wake: asyncio.Event) -> None:
        self._settings = settings
        self._wake = wake

    def _on_notify(self, *_: Any) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        delays = backoff_delays(
            self._settings.retry_initial_backoff_s, self._settings.retry_max_backoff_s
        )
        while not stop.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await connect(self._settings)
                await conn.add_listener(CHANNEL, self._on_notify)
                self._wake.set()
                delays = backoff_delays(
                    self._settings.retry_initial_backoff_s, self._settings.retry_max_backoff_s
                )
                await self._hold(conn, stop)
            except Exception as exc:
                delay = next(delays)
                log.warning("relay_listener_lost", error=repr(exc), retry_in_s=round(delay, 2))
                await wait_any(stop, timeout_s=delay)
            finally:
                if conn is not None and not conn.is_closed():
                    conn.terminate()

    async def _hold(self, conn: asyncpg.Connection, stop: asyncio.Event) -> None:
        closed = asyncio.Event()
        conn.add_termination_listener(lambda _conn: closed.set())
        while not stop.is_set():
            await wait_any(stop, closed, timeout_s=LIVENESS_CHECK_S)
            if closed.is_set() or conn.is_closed():
                raise ConnectionError("LISTEN connection closed")
            if not stop.is_set():
                # A half-open TCP connection reports nothing; a round-trip proves it alive.
                await conn.fetchval("SELECT 1", timeout=self._settings.db_connect_timeout_s)
