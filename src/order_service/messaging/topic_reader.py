"""Read a topic from its beginning and summarise each event: what an operator looks at to see
the events of an order (`order.created`, then its status events) as consumers will see them.

No consumer group: the partitions are assigned explicitly and nothing is committed, so reading
never moves a service's offsets nor triggers a rebalance. Reading stops once every partition is
past the end it had when the read began and a fetch finds nothing more.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

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
    try:
        document = json.loads(value or b"")
    except ValueError:
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
    """As they happened (ce_time), ties by partition and offset. One order's events share a
    partition and their times follow its transitions, so its events keep their offset order."""
    return sorted(events, key=lambda e: (e.time or "", e.partition, e.offset))


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
        async with refusal_explained(settings):
            await consumer.start()
        if topic not in await consumer.topics():
            raise UnknownTopic(f"topic {topic} does not exist")
        partitions = await _partitions(consumer, topic)
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        yield consumer, await consumer.end_offsets(assigned)
    finally:
        await stop_quietly("topic reader", consumer.stop(), settings.shutdown_timeout_s)


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    """Every partition of `topic`. The consumer has a topic's metadata only once it tracks the
    topic (Apache Kafka answers the bootstrap's metadata request with no topics): assigning
    partition 0, which every topic has, makes it track the topic, and its end offset is
    answered only once that metadata is there."""
    first = TopicPartition(topic, 0)
    consumer.assign([first])
    await consumer.end_offsets([first])
    return set(consumer.partitions_for_topic(topic) or {0})


async def _read_until(
    consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int], key: str | None
) -> list[EventSummary]:
    """Read until a fetch comes back empty with every partition at least at its end offset.

    The end offsets are only a lower bound: Tansu reports them per record batch, not per record,
    so a reader that stopped at them would miss most of a busy topic."""
    events: list[EventSummary] = []
    idle_rounds = 0
    while idle_rounds < IDLE_ROUNDS:
        batch = await consumer.getmany(timeout_ms=FETCH_TIMEOUT_MS)
        events.extend(_summaries(batch, key))
        if batch:
            idle_rounds = 0
            continue
        if all([await consumer.position(tp) >= end for tp, end in ends.items()]):
            break
        idle_rounds += 1  # behind the end and nothing comes: the broker is not answering
    return events


def json_line(event: EventSummary) -> str:
    """One JSON object a line: for `jq`, scripts and tests."""
    return json.dumps(dataclasses.asdict(event), separators=(",", ":"))


def text_line(event: EventSummary) -> str:
    """One event a line, for following a topic in a terminal."""
    reason = f"  {event.dead_letter_reason}" if event.dead_letter_reason else ""
    kind, key = event.type or "-", event.key or "-"
    return f"{event.clock:12}  {key:36}  {kind:16} p{event.partition} @{event.offset}{reason}"
