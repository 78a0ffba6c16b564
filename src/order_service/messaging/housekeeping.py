"""The relay's housekeeping: backlog gauges every few seconds, and expired rows deleted about
once a minute — in bounded batches, so each DELETE finishes well within the statement timeout
and a large backlog of expired rows shrinks pass after pass instead of timing out forever.

What expires: published outbox rows after OUTBOX_RETENTION_HOURS, idempotency keys after
IDEMPOTENCY_TTL_HOURS (≥ 24 h), inbox rows after INBOX_RETENTION_HOURS (longer than the topic's
retention, or a replay from the start would apply old events twice).
"""

from __future__ import annotations

import asyncio

import asyncpg

from order_service.config import Settings
from order_service.messaging.lifecycle import wait_any
from order_service.messaging.outbox_store import backlog
from order_service.observability.logging import get_logger
from order_service.observability.metrics import (
    HOUSEKEEPING_DELETED,
    OUTBOX_BACKLOG,
    OUTBOX_OLDEST_AGE,
)

log = get_logger(__name__)

GAUGE_INTERVAL_S = 5.0
HOUSEKEEPING_EVERY = 12  # gauge ticks: deletes run about once a minute
DELETE_BATCH = 5000  # rows per statement: a few tens of milliseconds each
PASS_BUDGET_S = 20.0  # one pass stops after this long; the next pass goes on

# Each statement picks a bounded set of expired rows through an index on the age column and
# deletes exactly those (by ctid where the key has several columns).
_EXPIRED = {
    "outbox": (
        "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox "
        "WHERE published_at < now() - make_interval(hours => $1) LIMIT $2)"
    ),
    "idempotency_keys": (
        "DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(SELECT ctid FROM idempotency_keys "
        "WHERE created_at < now() - make_interval(hours => $1) LIMIT $2))"
    ),
    "inbox": (
        "DELETE FROM inbox WHERE event_id IN (SELECT event_id FROM inbox "
        "WHERE processed_at < now() - make_interval(hours => $1) LIMIT $2)"
    ),
}


class Housekeeping:
    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        *,
        batch: int = DELETE_BATCH,
        budget_s: float = PASS_BUDGET_S,
    ) -> None:
        self._pool = pool
        # Bounds the wait for a connection and its release: a hung database costs a timeout.
        self._acquire_timeout_s = settings.db_connect_timeout_s
        self._batch = batch
        self._budget_s = budget_s
        self._retention_hours = {
            "outbox": settings.outbox_retention_hours,
            "idempotency_keys": settings.idempotency_ttl_hours,
            "inbox": settings.inbox_retention_hours,
        }

    async def refresh_backlog(self) -> None:
        async with self._pool.acquire(timeout=self._acquire_timeout_s) as conn:
            state = await backlog(conn)
        OUTBOX_BACKLOG.set(state.rows)
        OUTBOX_OLDEST_AGE.set(state.oldest_age_s)

    async def delete_expired(self) -> dict[str, int]:
        """One pass over every table: rows deleted per table (a pass stops at its budget)."""
        loop = asyncio.get_running_loop()
        stop_at = loop.time() + self._budget_s
        deleted = dict.fromkeys(_EXPIRED, 0)
        for table, sql in _EXPIRED.items():
            while loop.time() < stop_at:
                async with self._pool.acquire(timeout=self._acquire_timeout_s) as conn:
                    status = await conn.execute(sql, self._retention_hours[table], self._batch)
                count = int(status.rsplit(" ", 1)[-1])
                deleted[table] += count
                HOUSEKEEPING_DELETED.labels(table=table).inc(count)
                if count < self._batch:
                    break
                await asyncio.sleep(0)  # let the relay's own work through between batches
        if any(deleted.values()):
            log.info("relay_housekeeping", **{f"{t}_deleted": n for t, n in deleted.items()})
        return deleted

    async def maintain(self, stop: asyncio.Event, interval_s: float = GAUGE_INTERVAL_S) -> None:
        tick = 0
        while not stop.is_set():
            try:
                await self.refresh_backlog()
                if tick % HOUSEKEEPING_EVERY == 0:
                    await self.delete_expired()
            except Exception as exc:  # metrics and cleanup wait for the next tick
                log.warning("relay_maintenance_failed", error=repr(exc))
            tick += 1
            await wait_any(stop, timeout_s=interval_s)
