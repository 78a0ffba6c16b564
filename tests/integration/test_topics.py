"""The topics the service creates on a real broker: the order, status and DLQ topics, with the
planned partitions and one replica per broker up to three (Tansu has one broker)."""

from __future__ import annotations

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from order_service.config import Settings
from order_service.messaging.kafka_client import client_options, ensure_topics

pytestmark = pytest.mark.integration


async def test_missing_topics_are_created_with_the_planned_partitions_and_replicas(
    settings: Settings,
) -> None:
    plan = await ensure_topics(settings)
    await ensure_topics(settings)  # a second start finds them: no error

    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        brokers = len((await admin.describe_cluster())["brokers"])
        described = {t["topic"]: t for t in await admin.describe_topics([s.name for s in plan])}
    finally:
        await admin.close()
    assert brokers == 1
    assert [s.name for s in plan] == [
        settings.kafka_order_topic,
        settings.kafka_status_topic,
        settings.dlq_topic,
    ]
    for spec in plan:
        partitions = described[spec.name]["partitions"]
        assert len(partitions) == spec.partitions
        assert {len(p["replicas"]) for p in partitions} == {spec.replication_factor} == {1}
