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

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from order_service.config import Settings
from order_service.messaging.kafka_client import create_consumer
from order_service.messaging.lifecycle import prepare_topics, start_producer, stop_quietly
from order_service.observability.logging import get_logger

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
    """Send and await every acknowledgement: the caller commits the offsets only after (G6)."""
    futures = [
        await producer.send(
            topic,
            value=letter.record.value,
            key=letter.record.key,
            headers=dlq_headers(
                letter.record,
                error_type=letter.reason,
                error_message=letter.detail,
                attempts=letter.attempts,
            ),
        )
        for letter in letters
    ]
    await asyncio.gather(*futures)


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
