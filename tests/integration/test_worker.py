"""G5 (effect once, offsets after the transaction) and G8 (bounded stop) for the worker."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
from aiokafka import TopicPartition
from prometheus_client import REGISTRY

from order_service.config import Settings
from order_service.messaging.kafka_client import create_consumer, ensure_topics
from order_service.messaging.worker import run_worker
from tests.factories import Background, Raw, insert_order, insert_orders, produce
from tests.kafka_reader import read_all

pytestmark = pytest.mark.integration


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 20.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not await check():
            await asyncio.sleep(0.1)


async def count(db: asyncpg.Connection, sql: str, *args: object) -> int:
    return int(await db.fetchval(sql, *args))


async def committed_offsets(settings: Settings) -> dict[int, int | None]:
    consumer = create_consumer(settings)
    await consumer.start()
    try:
        return {
            p: await consumer.committed(TopicPartition(settings.kafka_order_topic, p))
            for p in range(settings.kafka_topic_partitions)
        }
    finally:
        await consumer.stop()


async def test_worker_commits_no_offset_before_its_transaction_and_stops_in_time_when_blocked(
    settings: Settings, db: asyncpg.Connection
) -> None:
    placed = await insert_orders(db, settings, 5)
    await ensure_topics(settings)
    await produce(settings, [Raw.of(m) for _, m in placed])
    failures = metric("worker_events_failed_total", reason="db_unavailable")

    blocker = await asyncpg.connect(settings.asyncpg_dsn)
    block = blocker.transaction()
    await block.start()
    await blocker.execute("LOCK TABLE inbox IN ACCESS EXCLUSIVE MODE")
    try:
        worker = Background(run_worker, settings)

        async def tried() -> bool:
            return metric("worker_events_failed_total", reason="db_unavailable") > failures

        await eventually(tried)
        took = await worker.stop()
        assert took < settings.shutdown_timeout_s
        assert await count(db, "SELECT count(*) FROM orders WHERE status = 'PENDING'") == 5
        assert set((await committed_offsets(settings)).values()) <= {None, -1}
    finally:
        await block.rollback()
        await blocker.close()

    # A fresh group resumes from the same (uncommitted) start and joins without waiting for
    # Tansu to expire the first member's session.
    settings = settings.model_copy(
        update={"kafka_consumer_group": f"{settings.kafka_consumer_group}-2"}
    )
    async with Background(run_worker, settings):

        async def confirmed() -> bool:
            return await count(db, "SELECT count(*) FROM orders WHERE status = 'CONFIRMED'") == 5

        await eventually(confirmed)
    records = await asyncio.to_thread(
        read_all, settings.kafka_bootstrap_servers, settings.kafka_order_topic
    )
    ends = {r.partition: r.offset + 1 for r in records}
    committed = await committed_offsets(settings)
    assert {p: committed[p] for p in ends} == ends
    assert await count(db, "SELECT count(*) FROM inbox") == 5


async def test_a_redelivered_event_has_no_second_effect(
    settings: Settings, db: asyncpg.Connection
) -> None:
    order, message = await insert_order(db, settings)
    await ensure_topics(settings)
    await produce(settings, [Raw.of(message)])
    status = "SELECT status FROM orders WHERE id = $1"
    async with Background(run_worker, settings):

        async def confirmed() -> bool:
            return bool(await db.fetchval(status, order.id) == "CONFIRMED")

        await eventually(confirmed)
        # Rewound by hand, so only the inbox stands between a redelivery and a second effect.
        await db.execute("UPDATE orders SET status = 'PENDING' WHERE id = $1", order.id)
        duplicates = metric("worker_events_duplicate_total")
        await produce(settings, [Raw.of(message), Raw.of(message)])

        async def skipped() -> bool:
            return metric("worker_events_duplicate_total") >= duplicates + 2

        await eventually(skipped)
    assert await db.fetchval(status, order.id) == "PENDING"
    assert await count(db, "SELECT count(*) FROM inbox WHERE event_id = $1", message.event_id) == 1


async def test_two_workers_sharing_the_group_through_a_rebalance_apply_each_event_once(
    settings: Settings, db: asyncpg.Connection
) -> None:
    first = await insert_orders(db, settings, 30)
    await ensure_topics(settings)
    await produce(settings, [Raw.of(m) for _, m in first])
    processed = metric("worker_events_processed_total")

    async with Background(run_worker, settings):

        async def some_confirmed() -> bool:
            return await count(db, "SELECT count(*) FROM orders WHERE status = 'CONFIRMED'") > 0

        await eventually(some_confirmed)
        async with Background(run_worker, settings):  # joins: the group rebalances
            second = await insert_orders(db, settings, 30)
            await produce(settings, [Raw.of(m) for _, m in second])

            async def all_confirmed() -> bool:
                return (
                    await count(db, "SELECT count(*) FROM orders WHERE status = 'CONFIRMED'") == 60
                )

            await eventually(all_confirmed, timeout_s=25)
    assert await count(db, "SELECT count(*) FROM inbox") == 60
    assert metric("worker_events_processed_total") - processed == 60


KILL_SCRIPT = """
import asyncio, os, signal
from order_service.config import Settings
from order_service.messaging import worker

async def die_before_commit(self, batch, stop):
    os.kill(os.getpid(), signal.SIGKILL)  # the transaction committed, the offsets did not

worker.Worker._commit = die_before_commit
asyncio.run(worker.run_worker(Settings(), stop=asyncio.Event()))
"""


async def test_a_worker_killed_between_its_transaction_and_its_offset_commit_has_no_second_effect(
    settings: Settings, db: asyncpg.Connection, tmp_path: Path
) -> None:
    placed = await insert_orders(db, settings, 10)
    await ensure_topics(settings)
    await produce(settings, [Raw.of(m) for _, m in placed])
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "POSTGRES_DSN": settings.postgres_dsn,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "KAFKA_ORDER_TOPIC": settings.kafka_order_topic,
        "KAFKA_STATUS_TOPIC": settings.kafka_status_topic,
        "KAFKA_CONSUMER_GROUP": settings.kafka_consumer_group,
        "KAFKA_ENABLE_IDEMPOTENCE": "false",
        "LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", KILL_SCRIPT, env=env, cwd=tmp_path
    )
    async with asyncio.timeout(30):
        assert await process.wait() == -signal.SIGKILL
    applied = await count(db, "SELECT count(*) FROM inbox")
    assert applied > 0
    assert set((await committed_offsets(settings)).values()) <= {None, -1}
    stamps = dict(await db.fetch("SELECT id, updated_at FROM orders WHERE status = 'CONFIRMED'"))

    # Nothing was committed, so any member of the group starts over from the beginning; a fresh
    # group does the same without waiting for Tansu to expire the killed member's session.
    processed = metric("worker_events_processed_total")
    duplicates = metric("worker_events_duplicate_total")
    again = settings.model_copy(
        update={"kafka_consumer_group": f"{settings.kafka_consumer_group}-2"}
    )
    async with Background(run_worker, again):

        async def all_confirmed() -> bool:
            return await count(db, "SELECT count(*) FROM orders WHERE status = 'CONFIRMED'") == 10

        await eventually(all_confirmed)
        await eventually(lambda: _caught_up(again, 10))
    assert await count(db, "SELECT count(*) FROM inbox") == 10
    assert metric("worker_events_processed_total") - processed == 10 - applied
    assert metric("worker_events_duplicate_total") - duplicates == applied
    for order_id, updated_at in stamps.items():
        assert (
            await db.fetchval("SELECT updated_at FROM orders WHERE id = $1", order_id) == updated_at
        )


async def _caught_up(settings: Settings, total: int) -> bool:
    committed = await committed_offsets(settings)
    return sum(o for o in committed.values() if o and o > 0) >= total
