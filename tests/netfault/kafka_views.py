"""What a Kafka cluster says about itself, asked by an independent client (confluent-kafka's
AdminClient, i.e. librdkafka): partition leaders and ISRs, topic configs, a group's
coordinator, end offsets — and the active controller, from the nodes' own quorum state.

No client API tells the active controller in KRaft: a metadata or DescribeCluster answer names
a random live broker as "controller" (KIP-590), and librdkafka has no DescribeQuorum. Every
node writes the quorum's leader and epoch to `__cluster_metadata-0/quorum-state` when it
learns of a new one; the highest epoch among the live nodes is the current leader.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import ConsumerGroupTopicPartitions, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, OffsetSpec

TIMEOUT_S = 5.0
_quiet = logging.getLogger("tests.librdkafka")  # a down broker is expected: not to stderr


def admin(bootstrap: str) -> AdminClient:
    return AdminClient(
        {"bootstrap.servers": bootstrap, "socket.timeout.ms": 3000, "log.connection.close": False},
        logger=_quiet,
    )


@dataclass(frozen=True)
class PartitionView:
    topic: str
    partition: int
    leader: int  # -1: none
    replicas: tuple[int, ...]
    isr: tuple[int, ...]

    @property
    def fully_replicated(self) -> bool:
        return self.leader >= 0 and set(self.isr) == set(self.replicas)


def describe_partitions(bootstrap: str, topic: str) -> list[PartitionView]:
    client = admin(bootstrap)
    found = client.describe_topics(TopicCollection([topic]), request_timeout=TIMEOUT_S)
    description = found[topic].result(TIMEOUT_S)
    return [
        PartitionView(
            topic,
            p.id,
            p.leader.id if p.leader is not None else -1,
            tuple(r.id for r in p.replicas),
            tuple(r.id for r in p.isr),
        )
        for p in sorted(description.partitions, key=lambda p: p.id)
    ]


def topic_configs(bootstrap: str, topic: str) -> dict[str, str]:
    client = admin(bootstrap)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = client.describe_configs([resource], request_timeout=TIMEOUT_S)[resource]
    return {name: str(entry.value) for name, entry in entries.result(TIMEOUT_S).items()}


def group_coordinator(bootstrap: str, group: str) -> int:
    client = admin(bootstrap)
    found = client.describe_consumer_groups([group], request_timeout=TIMEOUT_S)[group]
    return int(found.result(TIMEOUT_S).coordinator.id)


def committed_offsets(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    client = admin(bootstrap)
    request = [ConsumerGroupTopicPartitions(group)]
    found = client.list_consumer_group_offsets(request, request_timeout=TIMEOUT_S)[group]
    return {
        (tp.topic, tp.partition): tp.offset for tp in found.result(TIMEOUT_S).topic_partitions or []
    }


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Each partition's high watermark (the offset after its last record acks=all kept)."""
    partitions = describe_partitions(bootstrap, topic)
    client = admin(bootstrap)
    request = {TopicPartition(topic, p.partition): OffsetSpec.latest() for p in partitions}
    found = client.list_offsets(request, request_timeout=TIMEOUT_S)
    return {tp.partition: future.result(TIMEOUT_S).offset for tp, future in found.items()}


def quorum_leader(log_dirs: Iterable[Path]) -> int | None:
    """The controller quorum's leader with the highest epoch any of these log dirs records."""
    best: tuple[int, int] | None = None
    for log_dir in log_dirs:
        path = log_dir / "__cluster_metadata-0" / "quorum-state"
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        leader, epoch = int(state.get("leaderId", -1)), int(state.get("leaderEpoch", -1))
        if leader >= 0 and (best is None or epoch > best[1]):
            best = (leader, epoch)
    return best[0] if best else None
