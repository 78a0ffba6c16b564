"""The dead-letter queue: where poison goes (G6), with headers that say why, and its replay.

A dead-lettered message keeps its key, value and original headers, plus `dlq.*` headers naming
the error, the attempts and where it came from. `replay_dlq` sends it back to that topic without
the `dlq.*` headers; the worker's inbox makes a replay of an already applied event harmless.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from order_service.config import Settings
from order_service.messaging.kafka_client import create_consumer, is_retriable
from order_service.messaging.lifecycle import prepare_topics, start_producer, stop_quietly
from order_service.messaging.producer_health import fatal_for_the_producer
from order_service.observability.logging import get_logger
from order_service.observability.metrics import DLQ_DROPPED, DLQ_TRIMMED

DLQ_PREFIX = "dlq."
MAX_ERROR_MESSAGE = 1000
IDLE_S = 2.0
log = get_logger(__name__)

RawHeaders = Sequence[tuple[str, bytes]]


def dlq_headers(
    record: ConsumerRecord, *, error_type: str, error_message: str, attempts: int
) -> list[tuple[str, bytes]]:
    extra = {
        "dlq.error.type": error_type,
        "dlq.error.message": error_message[:MAX_ERROR_MESSAGE],
        "dlq.attempts": str(attempts),
        "dlq.original.topic": record.topic,
        "dlq.original.partition": str(record.partition),
        "dlq.original.offset": str(record.offset),
        "dlq.failed_at": datetime.now(UTC).isoformat(),
    }
    return [*original_headers(record.headers), *((k, v.encode()) for k, v in extra.items())]


def original_headers(headers: RawHeaders | None) -> list[tuple[str, bytes]]:
    return [(k, v or b"") for k, v in headers or () if not k.startswith(DLQ_PREFIX)]


def header(headers: RawHeaders | None, name: str) -> str | None:
    for key, value in headers or ():
        if key == name:
            return (value or b"").decode(errors="replace")
    return None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: ConsumerRecord
    reason: str  # a low-cardinality label: the `dlq.error.type` header and the metric's reason
    detail: str
    attempts: int


async def send_dead_letters(
    producer: AIOKafkaProducer, topic: str, letters: Sequence[DeadLetter]
) -> None:
    """Send and await every acknowledgement: the caller commits the offsets only after (G6).

    A record the DLQ cannot take whole — too large for the broker or the producer, or with
    neither key nor value (aiokafka refuses those) — is dead-lettered trimmed: its headers and
    the `dlq.original.*` reference to its offset, without the value. One that cannot be sent
    even so is logged with its offset and skipped: the partition must move on. Retriable
    errors (the broker is away) propagate, and the caller retries the whole batch; so do
    errors fatal for the producer's id (a sequence gap): they say nothing about the record,
    and the caller retries with a new producer.
    """
    pending = []
    for letter in letters:
        if letter.record.key is None and letter.record.value is None:
            await _send_trimmed(producer, topic, letter, "neither key nor value")
            continue
        pending.append((letter, await _send(producer, topic, letter, trimmed=False)))
    for letter, delivery in pending:
        if delivery is None:
            continue
        try:
            await delivery
        except KafkaError as exc:
            if _not_the_record(exc):
                raise
            await _send_trimmed(producer, topic, letter, repr(exc))


async def _send(
    producer: AIOKafkaProducer, topic: str, letter: DeadLetter, *, trimmed: bool
) -> asyncio.Future[Any] | None:
    record = letter.record
    headers = dlq_headers(
        record, error_type=letter.reason, error_message=letter.detail, attempts=letter.attempts
    )
    value = record.value
    if trimmed:
        headers.append(("dlq.trimmed", b"true"))
        headers.append(("dlq.original.value_bytes", str(len(value or b"")).encode()))
        value = b""
    try:
        delivery: asyncio.Future[Any] = await producer.send(
            topic, value=value, key=record.key, headers=headers
        )
        return delivery
    except KafkaError as exc:
        if _not_the_record(exc) or trimmed:
            raise
        await _send_trimmed(producer, topic, letter, repr(exc))
        return None


async def _send_trimmed(
    producer: AIOKafkaProducer, topic: str, letter: DeadLetter, why: str
) -> None:
    """The copy without the value: the one path for every trimmed dead letter, and where
    each is counted (or, if even this fails for good, counted as dropped)."""
    log.warning(
        "dlq_sending_trimmed_copy",
        error=why,
        partition=letter.record.partition,
        offset=letter.record.offset,
    )
    try:
        delivery = await _send(producer, topic, letter, trimmed=True)
        if delivery is not None:
            await delivery
        DLQ_TRIMMED.inc()
    except KafkaError as exc:
        if _not_the_record(exc):
            raise
        DLQ_DROPPED.inc()
        log.error(
            "dlq_record_dropped",
            error=repr(exc),
            topic=letter.record.topic,
            partition=letter.record.partition,
            offset=letter.record.offset,
            reason=letter.reason,
        )


def _not_the_record(exc: KafkaError) -> bool:
    """The broker is away, or the producer can no longer send anything: the record is fine."""
    return is_retriable(exc) or fatal_for_the_producer(exc)


async def replay_dlq(settings: Settings, *, limit: int | None = None, dry_run: bool = False) -> int:
    """Re-publish dead letters to their original topic; returns how many (would have) moved.

    Stops when the DLQ is drained (no message for ~2 s) or `limit` is reached. Offsets are
    committed in the replay group only after the re-published messages were acknowledged, so an
    interrupted replay repeats messages rather than dropping them; a dry run commits nothing.
    """
    consumer = create_consumer(settings, group_id=f"{settings.kafka_consumer_group}-dlq-replay")
    await prepare_topics(settings)
    producer = await start_producer(settings)
    try:
        await consumer.start()
        partitions = await producer.partitions_for(settings.dlq_topic)
        # Explicit assignment (with the group only for offsets): no join round, no rebalance.
        consumer.assign([TopicPartition(settings.dlq_topic, p) for p in sorted(partitions)])
        return await _replay(consumer, None if dry_run else producer, limit)
    finally:
        await stop_quietly("dlq consumer", consumer.stop(), settings.shutdown_timeout_s)
        await stop_quietly("dlq producer", producer.stop(), settings.shutdown_timeout_s)


async def _replay(
    consumer: AIOKafkaConsumer, producer: AIOKafkaProducer | None, limit: int | None
) -> int:
    # Only what was dead-lettered before the replay began: a message that is still poison comes
    # straight back from a live worker, and replaying it again would ping-pong forever.
    started_ms = int(time.time() * 1000)
    moved = 0
    while limit is None or moved < limit:
        batch = await consumer.getmany(
            timeout_ms=int(IDLE_S * 1000), max_records=None if limit is None else limit - moved
        )
        if not batch:
            break
        futures = []
        done: dict[TopicPartition, int] = {}
        for tp, partition_records in batch.items():
            for record in partition_records:
                if record.timestamp >= started_ms:
                    consumer.pause(tp)
                    break
                done[tp] = record.offset + 1
                target = header(record.headers, "dlq.original.topic")
                if target is None:
                    log.warning(
                        "dlq_replay_skipped", partition=record.partition, offset=record.offset
                    )
                    continue
                moved += 1
                if producer is not None:
                    futures.append(
                        await producer.send(
                            target,
                            value=record.value,
                            key=record.key,
                            headers=original_headers(record.headers),
                        )
                    )
        if producer is not None:
            await asyncio.gather(*futures)
            if done:
                await consumer.commit(done)
        if consumer.assignment() <= consumer.paused():
            break
    log.info("dlq_replayed", count=moved, dry_run=producer is None)
    return moved
