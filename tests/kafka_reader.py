"""An independent reader (librdkafka via confluent-kafka) to check what really reached the broker.

It assigns partitions explicitly: a confluent-kafka group subscribe hangs against Tansu.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    headers: dict[str, str]


def _consumer(bootstrap: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "test-reader",  # required by librdkafka; never joined or committed
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )


def _text(value: str | bytes | None) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value or ""


def _record(msg: Message) -> Record:
    partition, offset, topic = msg.partition(), msg.offset(), msg.topic()
    assert partition is not None and offset is not None and topic is not None
    raw_key = msg.key()
    value = msg.value()
    return Record(
        topic=topic,
        partition=partition,
        offset=offset,
        key=raw_key.decode() if isinstance(raw_key, bytes) else raw_key,
        value=value.encode() if isinstance(value, str) else value or b"",
        headers={str(h[0]): _text(h[1]) for h in list(msg.headers() or [])},
    )


def read_all(
    bootstrap: str, topic: str, timeout_s: float = 10.0, idle_s: float = 1.0
) -> list[Record]:
    """Every message now in `topic`, by partition then offset.

    Tansu reports high watermarks per record batch rather than per record, so the reader keeps
    polling until the partitions have been quiet for `idle_s` after reaching those watermarks.
    """
    consumer = _consumer(bootstrap)
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s)
        partitions = sorted(metadata.topics[topic].partitions)
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)[1]
            for p in partitions
        }
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records: list[Record] = []
        next_offset: dict[int, int] = {}
        deadline = time.monotonic() + timeout_s
        quiet_since = time.monotonic()
        while True:
            caught_up = all(next_offset.get(p, 0) >= hi for p, hi in ends.items())
            if caught_up and time.monotonic() - quiet_since >= idle_s:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"read {len(records)} of {topic}; watermarks {ends}")
            msg = consumer.poll(0.1)
            if msg is None or msg.error():
                continue
            quiet_since = time.monotonic()
            record = _record(msg)
            records.append(record)
            next_offset[record.partition] = record.offset + 1
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


async def wait_for_records(
    bootstrap: str, topic: str, count: int, timeout_s: float = 20.0
) -> list[Record]:
    """Poll the topic until it holds at least `count` messages; return them all."""
    deadline = time.monotonic() + timeout_s
    records: list[Record] = []
    while time.monotonic() < deadline:
        try:
            records = await asyncio.to_thread(read_all, bootstrap, topic)
        except Exception:  # the topic may not exist yet, or the broker is restarting
            records = []
        if len(records) >= count:
            return records
        await asyncio.sleep(0.3)
    raise AssertionError(f"{topic} holds {len(records)} messages, expected at least {count}")
