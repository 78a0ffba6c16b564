"""The Kafka cluster as an operator needs to see it: brokers, the active controller, and the
state of the service's topics' partitions (offline, under min.insync.replicas, under-replicated).

Read with the service's own client settings (TLS/SASL as configured), so `doctor` sees what the
relay and the worker see.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.admin import DescribeConfigsRequest
from aiokafka.protocol.metadata import MetadataRequest

from order_service.config import Settings
from order_service.messaging.kafka_client import client_options
from order_service.messaging.kafka_quorum import DescribeQuorumRequest, Quorum, parse_quorum

TOPIC_RESOURCE = 2


@dataclass(frozen=True, order=True)
class Broker:
    node_id: int
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Partition:
    topic: str
    partition: int
    leader: int  # -1: offline
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    min_isr: int | None  # None: the broker did not say (DescribeConfigs refused)

    @property
    def name(self) -> str:
        return f"{self.topic}-{self.partition}"

    @property
    def offline(self) -> bool:
        return self.leader < 0

    @property
    def below_min_isr(self) -> bool:
        """acks=all writes are refused (NOT_ENOUGH_REPLICAS)."""
        return len(self.isr) < min(self.min_isr or 1, len(self.replicas))

    @property
    def under_replicated(self) -> bool:
        return len(self.isr) < len(self.replicas)


@dataclass(frozen=True)
class ClusterState:
    brokers: tuple[Broker, ...]
    quorum: Quorum | None  # None: the cluster did not answer DescribeQuorum (not KRaft)
    partitions: tuple[Partition, ...]
    missing_topics: tuple[str, ...]

    @property
    def absent_nodes(self) -> tuple[int, ...]:
        """Nodes the cluster expects (controller voters, partition replicas) that are not live."""
        live = {b.node_id for b in self.brokers}
        expected = set(self.quorum.voters if self.quorum else ())
        for partition in self.partitions:
            expected.update(partition.replicas)
        return tuple(sorted(expected - live))


def service_topics(settings: Settings) -> list[str]:
    return [settings.kafka_order_topic, settings.kafka_status_topic, settings.dlq_topic]


async def describe(settings: Settings, topics: Sequence[str], timeout_s: float) -> ClusterState:
    client = AIOKafkaClient(**client_options(settings), request_timeout_ms=int(timeout_s * 1000))
    try:
        async with asyncio.timeout(timeout_s * 3):
            await client.bootstrap()
            node = client.get_random_node()
            request = MetadataRequest(list(topics), allow_auto_topic_creation=False)
            metadata = (await client.send(node, request)).to_object()
            min_isr = await _min_insync_replicas(client, node, topics)
            quorum = await _quorum(client, node)
    finally:
        await client.close()
    brokers = tuple(sorted(Broker(b["node_id"], b["host"], b["port"]) for b in metadata["brokers"]))
    partitions: list[Partition] = []
    missing: list[str] = []
    for topic in metadata["topics"]:
        if topic["error_code"]:
            missing.append(topic["topic"])
            continue
        for p in topic["partitions"]:
            partitions.append(
                Partition(
                    topic["topic"],
                    p["partition"],
                    p["leader"],
                    tuple(p["replicas"]),
                    tuple(p["isr"]),
                    min_isr.get(topic["topic"]),
                )
            )
    partitions.sort(key=lambda p: (p.topic, p.partition))
    return ClusterState(brokers, quorum, tuple(partitions), tuple(sorted(missing)))


async def _min_insync_replicas(
    client: AIOKafkaClient, node: int, topics: Sequence[str]
) -> dict[str, int]:
    request = DescribeConfigsRequest(
        [(TOPIC_RESOURCE, topic, ["min.insync.replicas"]) for topic in topics], False
    )
    try:
        response = (await client.send(node, request)).to_object()
    except Exception:  # a Kafka-protocol broker without configs (Tansu in `make dev`)
        return {}
    found: dict[str, int] = {}
    for resource in response["resources"]:
        for entry in resource["config_entries"]:
            if entry["config_names"] == "min.insync.replicas" and entry["config_value"]:
                found[resource["resource_name"]] = int(entry["config_value"])
    return found


async def _quorum(client: AIOKafkaClient, node: int) -> Quorum | None:
    try:
        return parse_quorum(await client.send(node, DescribeQuorumRequest()))
    except Exception:  # a ZooKeeper-era cluster, or a Kafka-protocol broker without KRaft
        return None
