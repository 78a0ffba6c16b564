"""The worker waits out a database that cannot take its writes — a failover, a read-only node,
an outage — and never dead-letters a healthy event for it (G5, G6, G10)."""

from __future__ import annotations

import asyncpg
import pytest
from prometheus_client import REGISTRY

from order_service.config import Settings
from order_service.messaging.kafka_client import ensure_topics
from order_service.messaging.worker import run_worker
from tests.factories import Background, Raw, insert_orders, produce
from tests.integration.test_worker import count, eventually, metric

pytestmark = pytest.mark.integration


async def test_a_read_only_database_is_retried_until_writable_and_nothing_is_dead_lettered(
    settings: Settings, db: asyncpg.Connection
) -> None:
    """What a demoted primary answers (SQLSTATE 25006). Break caught: the old worker counted it
    as a processing error and dead-lettered the events after WORKER_MAX_ATTEMPTS."""
    placed = await insert_orders(db, settings, 5)
    await ensure_topics(settings)
    database = settings.postgres_dsn.rsplit("/", 1)[1]
    await db.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
    dead_before = sum(
        REGISTRY.get_sample_value("worker_events_dead_lettered_total", {"reason": r}) or 0
        for r in ("processing_error", "unknown_order")
    )
    waits = metric("worker_events_failed_total", reason="db_unavailable")
    try:
        await produce(settings, [Raw.of(m) for _, m in placed])
        async with Background(run_worker, settings):

            async def retried_a_while() -> bool:
                return metric("worker_events_failed_total", reason="db_unavailable") >= waits + 5

            await eventually(retried_a_while, timeout_s=30)
            assert await count(db, "SELECT count(*) FROM orders WHERE status = 'PENDING'") == 5

            await db.execute(f'ALTER DATABASE "{database}" RESET default_transaction_read_only')

            # Sessions keep the setting they started with: the worker must reconnect by itself.
            async def confirmed() -> bool:
                return (
                    await count(db, "SELECT count(*) FROM orders WHERE status = 'CONFIRMED'") == 5
                )

            await eventually(confirmed, timeout_s=30)
    finally:
        await db.execute(f'ALTER DATABASE "{database}" RESET default_transaction_read_only')
    dead_after = sum(
        REGISTRY.get_sample_value("worker_events_dead_lettered_total", {"reason": r}) or 0
        for r in ("processing_error", "unknown_order")
    )
    assert dead_after == dead_before
    assert await count(db, "SELECT count(*) FROM inbox") == 5
