"""What a Kafka cluster says about itself, asked by an independent client (confluent-kafka's
AdminClient, i.e. librdkafka): partition leaders and ISRs, topic configs, a group's
coordinator, end offsets — and the active controller, from the nodes' own quorum state.

No client API tells the active controller in KRaft: a metadata or DescribeCluster answer names
a random live broker as "controller" (KIP-590), and librdkafka has no DescribeQuorum. Every
node writes the quorum's leader and epoch to `__cluster_metadata-0/quorum-state` when it
learns of a new one; the highest epoch among the live nodes is the current leader.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.client import AIOKafkaClient, CoordinationType
from confluent_kafka import KafkaException, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, OffsetSpec

TIMEOUT_S = 5.0
_quiet = logging.getLogger("tests.librdkafka")  # a down broker is expected: not to stderr


def admin(bootstrap: str) -> AdminClient:
    """A client per question. Its futures are awaited without a Python timeout: librdkafka
    resolves each by `request_timeout` itself. Giving up first (as `result(TIMEOUT_S)` did, with
    the same 5 s) dropped the client while its request could still be out. A full run aborted
    once in fault d, a broker down ("Fatal Python error: Aborted" from a thread that was not
    Python's, so librdkafka's); that drop is the likely cause, not a proven one."""
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
    description = found[topic].result()
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
    return {name: str(entry.value) for name, entry in entries.result().items()}


def group_coordinator(bootstrap: str, group: str) -> int:
    """Asked with aiokafka, not librdkafka: fault d asks this (and the committed offsets) every
    0.2 s while a broker is dead, and a full run's process aborted in librdkafka there twice
    (a handle per question, created and destroyed with a broker down); aiokafka has no such
    threads. Call it from a thread without an event loop (ClusterRun.until does)."""

    async def ask() -> int:
        client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        try:
            await client.bootstrap()
            return int(await client.coordinator_lookup(CoordinationType.GROUP, group))
        finally:
            await client.close()

    return asyncio.run(asyncio.wait_for(ask(), TIMEOUT_S))


def committed_offsets(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    """With aiokafka, as `group_coordinator` (and for the same reason)."""

    async def ask() -> dict[tuple[str, int], int]:
        admin_client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        await admin_client.start()
        try:
            found = await admin_client.list_consumer_group_offsets(group)
            return {(tp.topic, tp.partition): meta.offset for tp, meta in found.items()}
        finally:
            await admin_client.close()

    return asyncio.run(asyncio.wait_for(ask(), TIMEOUT_S))


def end_offsets(bootstrap: str, topic: str, attempts: int = 10) -> dict[int, int]:
    """Each partition's high watermark (the offset after its last record acks=all kept).
    A broker's error (e.g. FENCED_LEADER_EPOCH from a leader whose epoch just moved, seen right
    after a restarted node took its leaderships back) is asked again 0.5 s later; one that
    persists through every attempt is raised."""
    for _ in range(attempts - 1):
        try:
            return _end_offsets(bootstrap, topic)
        except KafkaException:
            time.sleep(0.5)
    return _end_offsets(bootstrap, topic)


def _end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    partitions = describe_partitions(bootstrap, topic)
    client = admin(bootstrap)
    request = {TopicPartition(topic, p.partition): OffsetSpec.latest() for p in partitions}
    found = client.list_offsets(request, request_timeout=TIMEOUT_S)
    return {tp.partition: future.result().offset for tp, future in found.items()}


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
