"""Topics a test makes itself: the brokers, like MSK's, do not create topics on first use."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType


async def create_topic(
    bootstrap_servers: str, name: str, partitions: int = 1, replication_factor: int = 1
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, replication_factor)])
    finally:
        await admin.close()


async def set_topic_config(bootstrap_servers: str, topic: str, configs: dict[str, str]) -> None:
    """Alter `topic`'s dynamic configs (e.g. `max.message.bytes`), as an operator would."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs)])
    finally:
        await admin.close()
