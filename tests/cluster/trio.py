"""Three Apache Kafka KRaft nodes on 127.0.0.1 (ports of their own, shared voters): a cluster
for the aiokafka and operator tests that need a partition leader to move or vanish.

Each node is a combined broker + controller, so two nodes down is also a lost controller
quorum: nothing changes in the metadata any more (the ISR of a partition stays as it was).
To see NOT_ENOUGH_REPLICAS here, a test gives its topic min.insync.replicas 3 and stops one.

Not the network-fault rig's cluster (tests/netfault/, each broker in a namespace): here a fault
is a signal to one JVM (SIGKILL, SIGTERM, SIGSTOP) or its restart from the same storage.
Brokers are fenced 6 s after their last heartbeat (the default is 9 s), so a killed leader's
partitions move, or go offline, within seconds — yet not before an idle consumer's next
heartbeat (every 3 s, aiokafka's default) has found its coordinator gone: fenced at 3 s, the
group's coordinator often moved before the worker noticed, and its test raced the move.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from order_service.devstack.kafka import KafkaBroker, Voter, new_cluster_id
from order_service.devstack.ports import free_port
from tests.kafka_admin import create_topic

FAST_FENCING = {
    "broker.session.timeout.ms": "6000",
    "broker.heartbeat.interval.ms": "500",
    "replica.lag.time.max.ms": "4000",
    "leader.imbalance.check.interval.seconds": "5",
}


@dataclass
class Trio:
    nodes: list[KafkaBroker]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.bootstrap_servers for node in self.nodes)

    def node(self, node_id: int) -> KafkaBroker:
        return next(n for n in self.nodes if n.node_id == node_id)

    def running(self) -> list[KafkaBroker]:
        return [n for n in self.nodes if n.running]

    def bootstrap_of_running(self) -> str:
        return ",".join(n.bootstrap_servers for n in self.running())

    def start_all(self, timeout_s: float = 180.0) -> None:
        for node in self.nodes:
            if not node.running:
                node.start(wait=False)
        for node in self.nodes:
            node.wait_ready(timeout_s, brokers=len(self.nodes))

    def restart(self, node_id: int, timeout_s: float = 120.0) -> None:
        node = self.node(node_id)
        node.start(wait=False)
        node.wait_ready(timeout_s, brokers=len(self.running()))

    def heal(self) -> None:
        for node in self.nodes:
            node.signal(signal.SIGCONT)
        self.start_all()

    def destroy(self) -> None:
        for node in self.nodes:
            node.signal(signal.SIGCONT)
            node.destroy()


def make_trio(base: Path, properties: Mapping[str, str] | None = None) -> Trio:
    cluster_id = new_cluster_id()
    ports = [(free_port(), free_port()) for _ in range(3)]
    voters = tuple(Voter(i + 1, "127.0.0.1", c) for i, (_, c) in enumerate(ports))
    nodes = [
        KafkaBroker(
            base / f"kafka-{i + 1}",
            port=port,
            node_id=i + 1,
            controller_port=controller,
            voters=voters,
            cluster_id=cluster_id,
            log_path=base / f"kafka-{i + 1}.log",
            properties={**FAST_FENCING, **(properties or {})},
            heap_mb=384,
        )
        for i, (port, controller) in enumerate(ports)
    ]
    return Trio(nodes)


@dataclass(frozen=True)
class PartitionState:
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


async def partition_state(bootstrap: str, topic: str, partition: int = 0) -> PartitionState:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    for entry in described["partitions"]:
        if entry["partition"] == partition:
            return PartitionState(entry["leader"], tuple(entry["replicas"]), tuple(entry["isr"]))
    raise AssertionError(f"{topic}-{partition} not described: {described}")


async def wait_for_state(
    bootstrap: str,
    topic: str,
    predicate: Callable[[PartitionState], bool],
    timeout_s: float = 60.0,
    partition: int = 0,
) -> PartitionState:
    """Until the partition's metadata (as the running brokers answer it) satisfies `predicate`."""
    deadline = time.monotonic() + timeout_s
    state: PartitionState | None = None
    while time.monotonic() < deadline:
        try:
            state = await partition_state(bootstrap, topic, partition)
            if predicate(state):
                return state
        except Exception:  # a broker between lives answers nothing for a moment
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"{topic}-{partition} never reached the state; last seen {state}")


async def create_topic_on(bootstrap: str, name: str, node_id: int) -> None:
    """One partition whose only replica is on `node_id`: offline whenever that node is down."""
    await create_topic(
        bootstrap, name, replica_assignments={0: [node_id]}, configs={"min.insync.replicas": "1"}
    )
