"""Read a topic from its beginning and summarise each event: what an operator looks at to see
the events of an order (`order.created`, then its status events) as consumers will see them.

No consumer group: the partitions are assigned explicitly and nothing is committed, so reading
never moves a service's offsets nor triggers a rebalance. Reading stops once every partition has
reached the end offset it had when the read began: a topic that keeps receiving events does not
hold it up.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from order_service.config import Settings
from order_service.messaging.dlq import header
from order_service.messaging.kafka_client import create_consumer
from order_service.messaging.kafka_security import refusal_explained
from order_service.messaging.lifecycle import stop_quietly

FETCH_TIMEOUT_MS = 1000
IDLE_ROUNDS = 5


class UnknownTopic(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class EventSummary:
    partition: int
    offset: int
    key: str | None
    type: str | None  # ce_type; None for a record that is not a CloudEvent
    time: str | None  # ce_time
    status: str | None  # the order's status in the value, when it is an order
    value_bytes: int
    dead_letter_reason: str | None  # `dlq.error.type` on a dead letter

    @property
    def clock(self) -> str:
        """12:15:39.089 of the ISO 8601 `time`; empty without one."""
        return (self.time or "")[11:23]


def summarise(record: ConsumerRecord) -> EventSummary:
    """Never raises: a record of any shape (no key, no value, not JSON) gets a summary."""
    headers = record.headers
    value: bytes | None = record.value
    key: bytes | None = record.key
    return EventSummary(
        partition=record.partition,
        offset=record.offset,
        key=None if key is None else key.decode(errors="replace"),
        type=header(headers, "ce_type"),
        time=header(headers, "ce_time"),
        status=_status_of(value),
        value_bytes=len(value or b""),
        dead_letter_reason=header(headers, "dlq.error.type"),
    )


def _status_of(value: bytes | None) -> str | None:
    # orjson, as the worker reads events: past its depth limit a value is invalid JSON (a
    # ValueError), where the standard library's parser raises RecursionError.
    try:
        document = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    status = document.get("status") if isinstance(document, dict) else None
    return status if isinstance(status, str) else None


async def read_topic(
    settings: Settings, topic: str, *, key: str | None = None, limit: int | None = None
) -> list[EventSummary]:
    """Every event of `topic` (those of `key` only, when given) in the order they happened;
    with `limit`, the last `limit` of them (limit >= 1)."""
    async with _reader(settings, topic) as (consumer, ends):
        return _last(await _read_until(consumer, ends, key), limit)


async def follow_topic(
    settings: Settings,
    topic: str,
    on_event: Callable[[EventSummary], None],
    stop: asyncio.Event,
    *,
    key: str | None = None,
    limit: int | None = None,
) -> None:
    """What `read_topic` returns, then each event as it arrives, until `stop` is set."""
    async with _reader(settings, topic) as (consumer, ends):
        for event in _last(await _read_until(consumer, ends, key), limit):
            on_event(event)
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=FETCH_TIMEOUT_MS // 4)
            for event in in_time_order(_summaries(batch, key)):
                on_event(event)


def in_time_order(events: Sequence[EventSummary]) -> list[EventSummary]:
    """As they happened: each partition in offset order, the partitions merged by `ce_time`
    (ties by partition). One order's events share a partition, and its offsets are the order
    its transitions committed in — also where a clock put a later event's time before an
    earlier one's."""
    partitions: dict[int, list[EventSummary]] = {}
    for event in sorted(events, key=lambda e: (e.partition, e.offset)):
        partitions.setdefault(event.partition, []).append(event)
    return list(heapq.merge(*partitions.values(), key=lambda e: e.time or ""))


def _last(events: Sequence[EventSummary], limit: int | None) -> list[EventSummary]:
    ordered = in_time_order(events)
    return ordered if limit is None else ordered[-limit:]


def _summaries(
    batch: Mapping[TopicPartition, Sequence[ConsumerRecord]], key: str | None
) -> list[EventSummary]:
    """The records of one fetch, summarised; those of `key` only, when given."""
    wanted = None if key is None else key.encode()
    return [summarise(r) for rs in batch.values() for r in rs if wanted is None or r.key == wanted]


@asynccontextmanager
async def _reader(
    settings: Settings, topic: str
) -> AsyncIterator[tuple[AIOKafkaConsumer, dict[TopicPartition, int]]]:
    """A consumer on every partition of `topic`, at the beginning, and their end offsets."""
    consumer = create_consumer(settings, group_id=None, fetch_max_wait_ms=FETCH_TIMEOUT_MS)
    try:
        async with refusal_explained(settings):  # a refused login or certificate, named
            await consumer.start()
        # The partitions from a metadata request of our own: `partitions_for_topic` answers
        # from the consumer's metadata, which for one without a subscription holds no topic on
        # Apache Kafka (Tansu sends every topic), and aiokafka's consumer has no public call.
        metadata = await consumer._client.fetch_all_metadata()
        partitions = metadata.partitions_for_topic(topic)
        if not partitions:
            raise UnknownTopic(f"topic {topic} does not exist")
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        yield consumer, await consumer.end_offsets(assigned)
    finally:
        await stop_quietly("topic reader", consumer.stop(), settings.shutdown_timeout_s)


async def _read_until(
    consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int], key: str | None
) -> list[EventSummary]:
    """Read each partition until its position reaches the end offset it had when the read
    began; what a fetch brought beyond that is kept (the follow goes on from there).

    On Apache Kafka the end offset is the next record's offset. Tansu reports its last record
    batch's base offset + 1, but a fetch returns whole batches: reaching it means that batch's
    records came too, so nothing there at the start is missed on either broker."""
    events: list[EventSummary] = []
    behind = set(ends)
    idle_rounds = 0
    while idle_rounds < IDLE_ROUNDS:
        behind = {tp for tp in behind if await consumer.position(tp) < ends[tp]}
        if not behind:
            break
        batch = await consumer.getmany(*behind, timeout_ms=FETCH_TIMEOUT_MS)
        events.extend(_summaries(batch, key))
        # Behind the end and nothing comes: the broker is not answering.
        idle_rounds = 0 if batch else idle_rounds + 1
    return events


def json_line(event: EventSummary) -> str:
    """One JSON object a line: for `jq`, scripts and tests."""
    return json.dumps(dataclasses.asdict(event), separators=(",", ":"))


def text_line(event: EventSummary) -> str:
    """One event a line, for following a topic in a terminal."""
    reason = f"  {event.dead_letter_reason}" if event.dead_letter_reason else ""
    kind, key = event.type or "-", event.key or "-"
    return f"{event.clock:12}  {key:36}  {kind:16} p{event.partition} @{event.offset}{reason}"
