"""When the relay or the worker must throw its Kafka producer away and start a new one.

A publish that timed out leaves batches inside the producer that it keeps retrying behind the
relay's back: the relay rolls its claim back and will publish those rows again, so the old
copies only add duplicates — and a producer wedged on a dead connection would stall every
later publish. With the idempotent producer (KAFKA_ENABLE_IDEMPOTENCE=true, the production
setting) a sequence error is fatal for the producer's id: every later batch of it fails the
same way until a new producer gets a new id (KIP-360). In both cases: a new producer.

aiokafka 0.14 makes such a sequence error out of a mere broker blip (aiokafka #1017): a batch
for a partition that has had no leader for longer than `request_timeout_ms` is failed with
LeaderNotAvailable after its sequence numbers were taken, and the partition's next batch then
gets OUT_OF_ORDER_SEQUENCE_NUMBER from the returned leader, as does every later one. And a
producer is never stopped with `stop()` here: with idempotence on aiokafka retries a batch
until it is acknowledged, so `stop()` waits for the fault to end while its sender goes on
retrying (aiokafka #1018); `discard_producer` cancels the sender first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    KafkaTimeoutError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    RequestTimedOutError,
    UnknownProducerId,
)
from prometheus_client import Counter

from order_service.observability.logging import get_logger

log = get_logger(__name__)

_FATAL_FOR_THE_PRODUCER_ID = (
    OutOfOrderSequenceNumber,
    UnknownProducerId,
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    ProducerFenced,
)


def replacement_reason(exc: BaseException) -> str | None:
    """ "timeout", "producer_id", or None when retrying with the same producer is right."""
    for cause in _chain(exc):
        if isinstance(cause, TimeoutError | KafkaTimeoutError | RequestTimedOutError):
            return "timeout"
        if isinstance(cause, _FATAL_FOR_THE_PRODUCER_ID):
            return "producer_id"
    return None


def fatal_for_the_producer(exc: BaseException) -> bool:
    """Every later send of this producer fails the same way: only a new one gets through."""
    return replacement_reason(exc) == "producer_id"


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


async def discard_producer(producer: AIOKafkaProducer, timeout_s: float) -> None:
    """Stop a producer that may be wedged: its pending batches are abandoned, not flushed.

    The sender task is cancelled first, so nothing more is retried; then the producer is
    stopped (nothing left to flush) and its connections closed, all within `timeout_s`."""
    sender = getattr(producer, "_sender", None)
    try:
        async with asyncio.timeout(timeout_s):
            if sender is not None:
                await sender.close()
            await producer.stop()
    except Exception as exc:  # closing a broken producer: say so and move on
        log.warning("relay_producer_discard_failed", error=repr(exc))
        client = getattr(producer, "client", None)
        if client is not None:
            try:
                async with asyncio.timeout(timeout_s):
                    await client.close()
            except Exception as close_error:
                log.warning("relay_producer_client_close_failed", error=repr(close_error))


class ProducerSlot:
    """The producer a relay or worker publishes with, replaced when it cannot go on.

    `get()` starts a new one after a replacement (bounded by `start_timeout_s`); `replace`
    abandons the current one, with its pending batches, and counts it in `replaced`;
    `close` abandons it for good at shutdown (never a flush that could wait on a fault)."""

    def __init__(
        self,
        factory: Callable[[], AIOKafkaProducer],
        *,
        start_timeout_s: float,
        replaced: Counter,
        owner: str,
        producer: AIOKafkaProducer | None = None,
    ) -> None:
        self._factory = factory
        self._start_timeout_s = start_timeout_s
        self._replaced = replaced
        self._owner = owner
        self._producer = producer

    @property
    def current(self) -> AIOKafkaProducer | None:
        return self._producer

    async def get(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        producer = self._factory()
        try:
            async with asyncio.timeout(self._start_timeout_s):
                await producer.start()
        except BaseException:
            await discard_producer(producer, timeout_s=1.0)
            raise
        self._producer = producer
        return producer

    async def replace(self, reason: str) -> None:
        """No abandoned batch may go on retrying behind our back: a new producer next time."""
        producer, self._producer = self._producer, None
        self._replaced.labels(reason=reason).inc()
        log.warning(f"{self._owner}_producer_replaced", reason=reason)
        if producer is not None:
            await discard_producer(producer, timeout_s=self._start_timeout_s)

    async def close(self, timeout_s: float) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await discard_producer(producer, timeout_s=timeout_s)
