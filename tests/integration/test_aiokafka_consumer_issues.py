"""aiokafka's open consumer issues, on Apache Kafka, against the worker:

#1187 — a member holding no partitions for longer than `max_poll_interval_ms` leaves the group
and never rejoins: aiokafka counts "idle" as time outside `getmany`, and refuses to rejoin an
idle member. It bites an application that stops polling while it holds nothing; the worker
polls without pause, holding partitions or not, so its idle member takes over at once.

#1154 — a consumer that stops consuming after a broker restart (its rejoin requested, never
done): the same idle rule is the only way aiokafka leaves a rejoin undone, so a worker that
keeps polling comes back by itself; shown here with its broker SIGKILLed past the session
timeout and restarted from its log.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from order_service.config import Settings
from order_service.devstack.kafka import KafkaBroker
from order_service.domain.order import Order
from order_service.messaging.kafka_client import create_consumer, create_producer, ensure_topics
from order_service.messaging.lifecycle import start_consumer
from order_service.messaging.producer_health import ProducerSlot
from order_service.messaging.rebalance import HandBack
from order_service.messaging.worker import Worker
from order_service.observability.metrics import WORKER_PRODUCER_RECREATED
from order_service.persistence.database import open_pool
from tests.conftest import Infra, make_settings
from tests.factories import Raw, insert_order, produce
from tests.integration.test_worker import eventually

pytestmark = pytest.mark.integration

MAX_POLL_INTERVAL_MS = 2000


async def confirmed(db: asyncpg.Connection, orders: list[Order]) -> bool:
    ids = [o.id for o in orders]
    done = await db.fetchval(
        "SELECT count(*) FROM orders WHERE id = ANY($1) AND status = 'CONFIRMED'", ids
    )
    return bool(done == len(ids))


@dataclass
class Member:
    worker: Worker
    consumer: AIOKafkaConsumer
    stop: asyncio.Event
    task: asyncio.Task[None]

    def holds(self) -> frozenset[TopicPartition]:
        return frozenset(self.consumer.assignment())

    async def leave(self) -> None:
        """Stop its loop, then leave the group: its partitions go to the other members."""
        self.stop.set()
        await self.task
        await self.consumer.stop()


@contextlib.asynccontextmanager
async def member(settings: Settings) -> AsyncIterator[Member]:
    """A worker wired as run_worker wires it, with a short max_poll_interval_ms."""
    async with contextlib.AsyncExitStack() as stack:
        pool = await open_pool(settings, min_size=1, max_size=2)
        stack.push_async_callback(pool.close)
        producers = ProducerSlot(
            lambda: create_producer(settings),
            start_timeout_s=10.0,
            replaced=WORKER_PRODUCER_RECREATED,
            owner="worker",
        )
        stack.push_async_callback(lambda: producers.close(5.0))
        holder: list[Worker] = []
        hand_back = HandBack(lambda: holder[0].busy if holder else None, 5.0)
        consumer = await start_consumer(
            settings,
            lambda c: c.subscribe([settings.kafka_order_topic], listener=hand_back),
            max_poll_interval_ms=MAX_POLL_INTERVAL_MS,
        )
        stack.push_async_callback(consumer.stop)
        holder.append(Worker(settings, pool, producers, consumer))
        stop = asyncio.Event()
        one = Member(holder[0], consumer, stop, asyncio.create_task(holder[0].run(stop)))
        try:
            yield one
        finally:
            stop.set()
            await one.task


async def test_a_worker_holding_no_partition_takes_over_long_after_max_poll_interval(
    infra: Infra, database: str, db: asyncpg.Connection
) -> None:
    """Two workers, one partition: the one holding nothing waits four times
    max_poll_interval_ms, then the holder leaves the group; the idle one takes the partition
    and applies the next events.

    Break caught: a worker that stops polling while it holds no partition (`run` waiting
    instead of calling getmany when `assignment()` is empty): aiokafka took it out of the
    group after max_poll_interval_ms and never let it rejoin — the events after the holder
    left stayed PENDING (the wait timed out after 30 s)."""
    settings = make_settings(infra, database, kafka_topic_partitions=1)
    await ensure_topics(settings)
    first = await insert_order(db, settings)
    later = [await insert_order(db, settings) for _ in range(3)]
    async with member(settings) as one, member(settings) as two:
        await produce(settings, [Raw.of(first[1])])
        await eventually(lambda: confirmed(db, [first[0]]), 60)
        await eventually(lambda: _split(one, two), 30)
        holder, idle = (one, two) if one.holds() else (two, one)
        await asyncio.sleep(4 * MAX_POLL_INTERVAL_MS / 1000)
        assert not idle.holds()
        await holder.leave()
        await produce(settings, [Raw.of(m) for _, m in later])
        await eventually(lambda: confirmed(db, [o for o, _ in later]), 30)
        assert idle.holds()


async def _split(one: Member, two: Member) -> bool:
    return len(one.holds() | two.holds()) == 1 and not (one.holds() and two.holds())


async def test_the_worker_consumes_again_after_its_broker_was_killed_and_restarted(
    infra: Infra, database: str, db: asyncpg.Connection, own_broker: KafkaBroker
) -> None:
    """The only broker SIGKILLed for 12 s (longer than the session timeout, 10 s, and than
    max_poll_interval_ms, 2 s), then started again from its log: the worker rejoins by itself,
    the events placed after are applied and the group's committed offsets reach the end.

    The evidence that #1154 does not bite the worker, not a guard of code of ours: no broken
    variant of the worker was seen failing it (tried: its poll loop without `except
    KafkaError` — getmany raised nothing in this fault; polls skipped while it holds no
    partition — the rejoin came before the idle limit). It fails if aiokafka stops rejoining
    after a broker restart."""
    settings = make_settings(infra, database, kafka_bootstrap_servers=own_broker.bootstrap_servers)
    await ensure_topics(settings)
    first = await insert_order(db, settings)
    later = [await insert_order(db, settings) for _ in range(5)]
    async with member(settings):
        await produce(settings, [Raw.of(first[1])])
        await eventually(lambda: confirmed(db, [first[0]]), 60)
        own_broker.kill()
        await asyncio.sleep(12)
        own_broker.start()
        await produce(settings, [Raw.of(m) for _, m in later])
        await eventually(lambda: confirmed(db, [o for o, _ in later]), 60)
        ends = await _ends(settings)
        await eventually(lambda: _committed_to(settings, ends), 30)


async def _ends(settings: Settings) -> dict[TopicPartition, int]:
    consumer = create_consumer(settings, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(settings.kafka_order_topic, p) for p in range(3)]
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


async def _committed_to(settings: Settings, ends: dict[TopicPartition, int]) -> bool:
    consumer = create_consumer(settings)
    await consumer.start()
    try:
        for tp, end in ends.items():
            if end and (await consumer.committed(tp) or 0) < end:
                return False
        return True
    finally:
        await consumer.stop()
