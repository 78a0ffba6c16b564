"""An independent reader (librdkafka via confluent-kafka) to check what really reached the broker.

It reads exactly up to the end offsets (high watermarks) taken when it starts: Apache Kafka
counts them per record, so the last record below them is the last one acks=all kept, and
nothing later slips in. It assigns partitions instead of joining a group: no membership, no
rebalance to wait for, no committed offsets left behind (a group subscribe works on Apache
Kafka; it hung on Tansu, which this reader was first written for). `rack` reads from the
replica in that rack (follower fetching, KIP-392), where the cluster is configured for it.
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


def _consumer(bootstrap: str, rack: str | None = None) -> Consumer:
    config: dict[str, str | bool] = {
        "bootstrap.servers": bootstrap,
        "group.id": "test-reader",  # required by librdkafka; never joined or committed
        "enable.auto.commit": False,
        "enable.partition.eof": False,
    }
    if rack is not None:
        config["client.rack"] = rack
    return Consumer(config)


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


def read_to_end(
    bootstrap: str, topic: str, timeout_s: float = 10.0, rack: str | None = None
) -> tuple[list[Record], dict[int, int]]:
    """Every record of `topic` below the end offsets taken at the start, by partition then
    offset, and those end offsets. A TimeoutError when they are not all read in time."""
    consumer = _consumer(bootstrap, rack)
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s)
        partitions = sorted(metadata.topics[topic].partitions)
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)[1]
            for p in partitions
        }
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records: list[Record] = []
        next_offset = dict.fromkeys(partitions, 0)
        deadline = time.monotonic() + timeout_s
        while any(next_offset[p] < end for p, end in ends.items()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"read {len(records)} of {topic}: at {next_offset}, ends {ends}")
            msg = consumer.poll(0.1)
            if msg is None or msg.error():
                continue
            record = _record(msg)
            if record.offset < ends[record.partition]:
                records.append(record)
            next_offset[record.partition] = record.offset + 1
        return sorted(records, key=lambda r: (r.partition, r.offset)), ends
    finally:
        consumer.close()


def read_all(bootstrap: str, topic: str, timeout_s: float = 10.0) -> list[Record]:
    """Every message now in `topic` (up to its end offsets), by partition then offset."""
    return read_to_end(bootstrap, topic, timeout_s)[0]


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
