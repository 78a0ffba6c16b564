"""Topics a test makes itself: the brokers, like MSK's, do not create topics on first use."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic


async def create_topic(
    bootstrap_servers: str, name: str, partitions: int = 1, replication_factor: int = 1
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, replication_factor)])
    finally:
        await admin.close()
