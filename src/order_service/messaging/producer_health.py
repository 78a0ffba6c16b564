"""When the relay must throw its Kafka producer away and start a new one before retrying.

A publish that timed out leaves batches inside the producer that it keeps retrying behind the
relay's back: the relay rolls its claim back and will publish those rows again, so the old
copies only add duplicates — and a producer wedged on a dead connection would stall every
later publish. With the idempotent producer (KAFKA_ENABLE_IDEMPOTENCE=true, the production
setting) a sequence error is fatal for the producer's id: every later batch of it fails the
same way until a new producer gets a new id (KIP-360). In both cases: a new producer.
"""

from __future__ import annotations

import asyncio

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
