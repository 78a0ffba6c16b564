"""`order-service worker`: the process around the consume loop (messaging.worker_loop).

Opens PostgreSQL, a producer (DLQ) and the consumer in group `order-processor` on
`orders.created`; serves /metrics, /healthz and /readyz (PostgreSQL and the broker); on SIGTERM
lets the batch in flight finish within SHUTDOWN_TIMEOUT_S, then leaves the group so its
partitions move to the other members at once (G8).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from order_service.config import Settings
from order_service.messaging.broker_errors import BROKER_ERRORS, watch_aiokafka
from order_service.messaging.kafka_client import create_producer
from order_service.messaging.lifecycle import (
    ShutdownClock,
    prepare_topics,
    start_consumer,
    start_producer,
    stop_quietly,
    unless_stopped,
)
from order_service.messaging.producer_health import ProducerSlot
from order_service.messaging.rebalance import HandBack
from order_service.messaging.worker_loop import Worker
from order_service.observability.logging import get_logger
from order_service.observability.metrics import WORKER_PRODUCER_RECREATED
from order_service.persistence.database import open_pool
from order_service.service_http import db_check, kafka_check, serve_http

__all__ = ["Worker", "run_worker"]
log = get_logger(__name__)


async def run_worker(
    settings: Settings,
    *,
    stop: asyncio.Event,
    http_host: str | None = None,
    http_port: int | None = None,
) -> None:
    clock = ShutdownClock(settings.shutdown_timeout_s)

    def closing(what: str, close: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[None]]:
        return lambda: stop_quietly(what, close(), clock.remaining(0.5))

    async def start(stack: contextlib.AsyncExitStack) -> Worker:
        await prepare_topics(settings)
        pool = await open_pool(settings, min_size=1, max_size=2)
        stack.push_async_callback(closing("postgres pool", pool.close))
        # The dead-letter producer: replaced after an error fatal for its producer id, and
        # abandoned at the end rather than flushed (a dead letter not yet acknowledged belongs
        # to a batch whose offsets were not committed: the partition's next owner re-reads it).
        producers = ProducerSlot(
            lambda: create_producer(settings),
            start_timeout_s=settings.relay_publish_timeout_s,
            replaced=WORKER_PRODUCER_RECREATED,
            owner="worker",
            producer=await start_producer(settings),
        )
        stack.push_async_callback(lambda: producers.close(clock.remaining(0.5)))
        holder: list[Worker] = []
        hand_back = HandBack(
            lambda: holder[0].busy if holder else None, settings.shutdown_timeout_s
        )
        consumer = await start_consumer(
            settings, lambda c: c.subscribe([settings.kafka_order_topic], listener=hand_back)
        )
        # Leaving the group hands the partitions to the other members at once (G8).
        stack.push_async_callback(closing("kafka consumer", consumer.stop))
        holder.append(Worker(settings, pool, producers, consumer))
        watch_aiokafka()
        checks = {
            "postgres": db_check(pool),
            "kafka": kafka_check(
                lambda: producers.current, (settings.kafka_order_topic,), BROKER_ERRORS
            ),
        }
        await stack.enter_async_context(serve_http(checks, http_host, http_port))
        return holder[0]

    async with contextlib.AsyncExitStack() as stack:
        worker = await unless_stopped(stop, start(stack))
        if worker is None:
            clock.start()
            return
        log.info(
            "worker_started", topic=settings.kafka_order_topic, group=settings.kafka_consumer_group
        )
        task = asyncio.create_task(worker.run(stop), name="worker-loop")
        await _until(stop, task)
        clock.start()
        log.info("worker_stopping")
        # The batch in flight may use most of the budget to finish; the rest is for closing.
        _done, pending = await asyncio.wait({task}, timeout=clock.remaining(0.6))
        if pending:
            task.cancel()  # uncommitted: the next owner of the partitions re-reads it (G5)
        with contextlib.suppress(asyncio.CancelledError):
            await task
    log.info("worker_stopped")


async def _until(stop: asyncio.Event, task: asyncio.Task[Any]) -> None:
    waiter = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]
