"""Three Apache Kafka KRaft nodes, each in a namespace of its own: the broker faults' cluster.

Every node is a combined broker + controller at `<its address>:9092` (clients, replication)
and `:9093` (the controller quorum); the three are the static voters of one cluster id. The
settings below make a fault show quickly: a follower that stops fetching leaves the ISR after
`replica.lag.time.max.ms`, a broker that stops heartbeating is fenced (its leaderships and ISR
places taken away) after `broker.session.timeout.ms`. Each node keeps its log directory across
`kill()` / `start()`, so a restart is a real log recovery.
"""

from __future__ import annotations

import concurrent.futures
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from order_service.devstack.kafka import KafkaBroker, Voter, new_cluster_id
from order_service.devstack.kafka_runtime import installed
from tests.netfault.kafka_views import PartitionView, describe_partitions, quorum_leader
from tests.netfault.namespaces import Namespace, NetLab
from tests.netfault.tools import RigError

KAFKA_PORT = 9092
CONTROLLER_PORT = 9093
HEAP_MB = 320
# C1 only: a node's start costs ~3 CPU-seconds instead of ~5 (measured here), and a test
# cluster never needs C2's peak throughput. Eight restarts per module make that count.
JVM_OPTIONS = ("-XX:TieredStopAtLevel=1",)
TEST_PROPERTIES = {
    # A follower that has not caught up for 2 s leaves the ISR (default 30 s).
    "replica.lag.time.max.ms": "2000",
    # A broker silent for 3 s is fenced by the controller (default 9 s): its leaderships move.
    "broker.session.timeout.ms": "3000",
    "broker.heartbeat.interval.ms": "500",
    # Leaders move back to their preferred replica soon after a restart (default 300 s), so
    # one restarted node does not leave every leadership on the other two for the rest.
    "leader.imbalance.check.interval.seconds": "5",
    # Consumer groups: a member's session ends 6 s after its last heartbeat at the most.
    "group.min.session.timeout.ms": "2000",
    # Each node is a rack of its own and serves reads from its replica to a client of that
    # rack (KIP-392): the checker reads the same offsets from different replicas.
    "replica.selector.class": "org.apache.kafka.common.replica.RackAwareReplicaSelector",
    # Two cores shared with the whole suite: few threads per JVM.
    "num.network.threads": "2",
    "num.io.threads": "2",
    "num.replica.fetchers": "1",
    "background.threads": "2",
    "log.flush.offset.checkpoint.interval.ms": "5000",
}


def rack_of(node_id: int) -> str:
    return f"rack-{node_id}"


@dataclass
class ClusterNode:
    namespace: Namespace
    server: KafkaBroker

    @property
    def node_id(self) -> int:
        return self.server.node_id

    @property
    def address(self) -> str:
        return self.namespace.address

    @property
    def running(self) -> bool:
        return self.server.running


class KafkaCluster:
    """Guarantees once started: three live brokers, one quorum; `bootstrap_servers` names all
    three. `kill`/`start`/`pause`/`resume`/`isolate`/`heal` hurt one node; `stop()` kills
    every JVM (the lab removes the namespaces and data directories)."""

    def __init__(self, lab: NetLab, log_dir: Path, size: int = 3) -> None:
        namespaces = [lab.namespace() for _ in range(size)]
        voters = [Voter(i + 1, ns.address, CONTROLLER_PORT) for i, ns in enumerate(namespaces)]
        cluster_id = new_cluster_id()
        self.nodes = [
            ClusterNode(
                ns,
                KafkaBroker(
                    lab.scratch_dir(f"kafka{i + 1}"),
                    port=KAFKA_PORT,
                    host=ns.address,
                    node_id=i + 1,
                    controller_port=CONTROLLER_PORT,
                    voters=voters,
                    cluster_id=cluster_id,
                    log_path=log_dir / f"kafka-{i + 1}.log",
                    netns=ns.name,
                    properties={**TEST_PROPERTIES, "broker.rack": rack_of(i + 1)},
                    heap_mb=HEAP_MB,
                    jvm_options=JVM_OPTIONS,
                ),
            )
            for i, ns in enumerate(namespaces)
        ]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.server.bootstrap_servers for node in self.nodes)

    def node(self, node_id: int) -> ClusterNode:
        return self.nodes[node_id - 1]

    def start_all(self, timeout_s: float = 120.0) -> float:
        """Format the nodes' storage (in parallel: a JVM each), start them, and wait until
        each lists all of them as live brokers. Returns the seconds taken."""
        started = time.monotonic()
        runtime = installed()
        with concurrent.futures.ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(lambda n: n.server.format_storage(runtime), self.nodes))
        for node in self.nodes:
            if not node.running:
                self.launch(node.node_id)
        self.wait_up(self.live_ids(), timeout_s)
        return time.monotonic() - started

    def launch(self, node_id: int) -> None:
        """Start a stopped node again from its disk, not waiting for it (`wait_up`). Call it
        from the main thread: the JVM dies with the thread that started it (pdeathsig)."""
        self.node(node_id).server.start(wait=False)

    def wait_up(self, node_ids: Iterable[int], timeout_s: float = 90.0) -> float:
        """Until each of `node_ids` serves metadata listing every node; the seconds taken.
        Blocking: run it in a thread when a stream must go on meanwhile."""
        started = time.monotonic()
        for node_id in node_ids:
            remaining = max(1.0, timeout_s - (time.monotonic() - started))
            self.node(node_id).server.wait_ready(remaining, brokers=len(self.nodes))
        return time.monotonic() - started

    def kill(self, node_id: int) -> None:
        """SIGKILL: no controlled shutdown; the next start recovers the log."""
        self.node(node_id).server.kill()

    def pause(self, node_id: int) -> None:
        self.node(node_id).server.signal(signal.SIGSTOP)

    def resume(self, node_id: int) -> None:
        self.node(node_id).server.signal(signal.SIGCONT)

    def isolate(self, node_id: int) -> None:
        self.node(node_id).namespace.isolate()

    def heal(self) -> None:
        """Every node resumed and reachable again (killed ones stay down: `start` them)."""
        for node in self.nodes:
            node.server.signal(signal.SIGCONT)
            node.namespace.heal()

    def live_ids(self) -> list[int]:
        return [node.node_id for node in self.nodes if node.running]

    def active_controller(self) -> int:
        """The quorum's leader, as the live nodes' own quorum state says (highest epoch)."""
        leader = quorum_leader([n.server.data_dir / "log" for n in self.nodes if n.running])
        if leader is None:
            raise RigError("no node knows an active controller")
        return leader

    def partitions(self, topic: str) -> list[PartitionView]:
        return describe_partitions(self.bootstrap_servers, topic)

    def wait_fully_replicated(self, topics: Iterable[str], timeout_s: float = 60.0) -> float:
        """Until every node runs and each partition of `topics` has a leader and all its
        replicas in sync. Returns the seconds it took."""
        started = time.monotonic()
        names = list(topics)
        last: object = None
        while time.monotonic() - started < timeout_s:
            if len(self.live_ids()) == len(self.nodes):
                try:
                    views = [v for name in names for v in self.partitions(name)]
                except Exception as exc:  # a node still starting: ask again
                    last = exc
                else:
                    last = [v for v in views if not v.fully_replicated]
                    if not last:
                        return time.monotonic() - started
            time.sleep(0.25)
        raise RigError(f"not fully replicated within {timeout_s:.0f}s: {last}")

    def stop(self) -> None:
        """SIGKILL every JVM (nothing to flush for a cluster about to be deleted)."""
        for node in self.nodes:
            node.server.signal(signal.SIGCONT)
            node.server.kill()
