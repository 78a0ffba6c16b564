"""Apache Kafka started in a namespace serves Kafka clients on the host, and its faults bite."""

from __future__ import annotations

import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from tests.kafka_admin import create_topic
from tests.netfault.servers import NetBroker


async def test_kafka_in_a_namespace_serves_produce_and_consume_from_the_host(
    netns_broker: NetBroker,
) -> None:
    topic = f"rig.{uuid.uuid4().hex[:8]}"
    await create_topic(netns_broker.bootstrap_servers, topic)
    producer = AIOKafkaProducer(
        bootstrap_servers=netns_broker.bootstrap_servers, enable_idempotence=True, acks="all"
    )
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, b"across the bridge", key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=netns_broker.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=10_000, max_records=1)
    finally:
        await consumer.stop()

    records = [record for batch in batches.values() for record in batch]
    assert [(r.key, r.value, r.offset) for r in records] == [
        (b"k", b"across the bridge", sent.offset)
    ]
    assert netns_broker.bootstrap_servers.startswith(netns_broker.namespace.address)


async def test_a_refused_broker_fails_a_client_start_at_once(netns_broker: NetBroker) -> None:
    netns_broker.namespace.refuse(9092)
    producer = AIOKafkaProducer(
        bootstrap_servers=netns_broker.bootstrap_servers, enable_idempotence=True
    )
    started = time.monotonic()
    with pytest.raises(KafkaConnectionError):
        await producer.start()
    assert time.monotonic() - started < 2.0
    await producer.stop()
