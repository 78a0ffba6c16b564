"""Topics a test makes itself: the brokers, like MSK's, do not create topics on first use."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType


async def create_topic(
    bootstrap_servers: str,
    name: str,
    partitions: int = 1,
    replication_factor: int = 1,
    *,
    configs: dict[str, str] | None = None,
    replica_assignments: dict[int, list[int]] | None = None,
) -> None:
    """With `replica_assignments` (partition: broker ids), partitions and RF are left at -1."""
    if replica_assignments is not None:
        partitions, replication_factor = -1, -1
    topic = NewTopic(
        name,
        partitions,
        replication_factor,
        replica_assignments=replica_assignments,
        topic_configs=configs or {},
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([topic])
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
