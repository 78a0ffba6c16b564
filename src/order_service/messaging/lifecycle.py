"""Life cycle of the relay and the worker: reach Kafka with backoff, or fail clearly (their
PostgreSQL pool comes from persistence.database.open_pool, the same way); wait without missing a
stop; close within the shutdown budget.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from order_service.config import Settings
from order_service.domain.errors import ServiceUnavailable
from order_service.messaging.kafka_client import create_consumer, create_producer, ensure_topics
from order_service.messaging.kafka_security import KafkaAccessRefused, refusal_explained
from order_service.observability.logging import get_logger
from order_service.startup import reach

T = TypeVar("T")
log = get_logger(__name__)


def kafka_name(settings: Settings) -> str:
    return f"Kafka at {settings.kafka_bootstrap_servers}"


async def _kafka_with_backoff(settings: Settings, operation: Callable[[], Awaitable[T]]) -> T:
    async def attempt() -> T:
        async with refusal_explained(settings):  # a refused login or certificate: at once
            result = await operation()
        return result

    try:
        return await reach(settings, kafka_name(settings), attempt)
    except ServiceUnavailable as exc:
        if isinstance(exc.__cause__, KafkaAccessRefused):  # names the server and the setting
            raise ServiceUnavailable(str(exc.__cause__)) from exc.__cause__
        raise


async def prepare_topics(settings: Settings) -> None:
    await _kafka_with_backoff(settings, lambda: ensure_topics(settings))


async def start_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    async def attempt() -> AIOKafkaProducer:
        producer = create_producer(settings, **overrides)
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        return producer

    return await _kafka_with_backoff(settings, attempt)


async def start_consumer(
    settings: Settings, subscribe: Callable[[AIOKafkaConsumer], None], **overrides: Any
) -> AIOKafkaConsumer:
    async def attempt() -> AIOKafkaConsumer:
        consumer = create_consumer(settings, **overrides)
        subscribe(consumer)
        try:
            await consumer.start()
        except BaseException:
            await consumer.stop()
            raise
        return consumer

    return await _kafka_with_backoff(settings, attempt)


async def stop_quietly(what: str, closing: Awaitable[Any], timeout_s: float) -> None:
    """Shutdown must stay bounded (G8): a close that hangs on a dead peer is abandoned."""
    try:
        async with asyncio.timeout(timeout_s):
            await closing
    except Exception as exc:  # shutting down anyway; say what did not close
        log.warning("shutdown_close_failed", component=what, error=repr(exc))


async def wait_any(*events: asyncio.Event, timeout_s: float) -> None:
    """Return when any event is set or after `timeout_s`."""
    if any(e.is_set() for e in events):
        return
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


class ShutdownClock:
    """The one budget (SHUTDOWN_TIMEOUT_S) that draining and every close share (G8)."""

    def __init__(self, budget_s: float) -> None:
        self._budget_s = budget_s
        self._deadline = asyncio.get_running_loop().time() + budget_s

    def start(self) -> None:
        self._deadline = asyncio.get_running_loop().time() + self._budget_s

    def remaining(self, share: float = 1.0) -> float:
        left = self._deadline - asyncio.get_running_loop().time()
        return max(0.05, left * share)


async def unless_stopped(stop: asyncio.Event, starting: Awaitable[T]) -> T | None:
    """Start-up may wait up to STARTUP_TIMEOUT_S for dependencies; a stop ends it at once (G8)."""
    task = asyncio.ensure_future(starting)
    waiter = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None
