"""Apache Kafka KRaft nodes (combined broker + controller), started from the cached runtime.

One `KafkaBroker` is one node: its storage is formatted once (a restart keeps its log, as a
real broker's does) and it is ready when a metadata request to it lists it among the live
brokers — never after a sleep. Several nodes sharing `voters` and `cluster_id` form a cluster
(see `KafkaCluster`); each may live in a network namespace of its own.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka.client import AIOKafkaClient

from order_service.devstack import netns
from order_service.devstack.broker import BrokerStartError, ListeningProcess, stop_process
from order_service.devstack.kafka_runtime import KafkaRuntime, installed
from order_service.devstack.pdeathsig import die_with_parent
from order_service.devstack.ports import ensure_free, free_port


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (Kafka's Uuid)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):  # a leading dash reads as an option on the command line
            return text


@dataclass(frozen=True)
class Voter:
    node_id: int
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.node_id}@{self.host}:{self.port}"


@dataclass(frozen=True)
class Listener:
    """An extra client listener, e.g. `Listener("SECURE", 9096, "SASL_SSL")`."""

    name: str
    port: int
    protocol: str


@dataclass
class KafkaBroker(ListeningProcess):
    data_dir: Path
    port: int = 9092
    host: str = "127.0.0.1"
    node_id: int = 1
    controller_port: int = 0  # 0: a free port on `host`
    voters: Sequence[Voter] = ()  # empty: this node alone
    cluster_id: str = field(default_factory=new_cluster_id)
    log_path: Path | None = None
    netns: str | None = None  # start inside this network namespace (`ip netns add`)
    listeners: Sequence[Listener] = ()
    properties: Mapping[str, str] = field(default_factory=dict)
    # SCRAM-SHA-512 users (name -> password) written into the metadata when storage is formatted
    # (KIP-900), so a SASL listener has its users before the node first starts.
    scram_users: Mapping[str, str] = field(default_factory=dict)
    heap_mb: int = 512
    jvm_options: Sequence[str] = ()  # e.g. -XX:TieredStopAtLevel=1 (less JIT work at start)
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.controller_port:
            self.controller_port = free_port(self.host) if self.netns is None else 9093
        if not self.voters:
            self.voters = (Voter(self.node_id, self.host, self.controller_port),)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def server_properties(self) -> dict[str, str]:
        size = len(self.voters)
        replicas = str(min(3, size))
        extra = {f"{lst.name}://{self.host}:{lst.port}": lst for lst in self.listeners}
        protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
        protocols += [f"{lst.name}:{lst.protocol}" for lst in self.listeners]
        values = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": ",".join(str(v) for v in self.voters),
            "listeners": ",".join(
                [
                    f"PLAINTEXT://{self.host}:{self.port}",
                    f"CONTROLLER://{self.host}:{self.controller_port}",
                    *extra,
                ]
            ),
            "advertised.listeners": ",".join([f"PLAINTEXT://{self.host}:{self.port}", *extra]),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": ",".join(protocols),
            "log.dirs": str(self.data_dir / "log"),
            "num.partitions": "1",
            "default.replication.factor": replicas,
            "offsets.topic.replication.factor": replicas,
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": str(min(2, size)),
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": str(min(2, size)),
            "group.initial.rebalance.delay.ms": "0",
            # What MSK does by default: the service creates its own topics, with their settings.
            "auto.create.topics.enable": "false",
        }
        values.update(self.properties)
        return values

    def _write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "server.properties"
        lines = [f"{key}={value}" for key, value in self.server_properties().items()]
        config.write_text("\n".join(lines) + "\n")
        return config

    def format_storage(self, runtime: KafkaRuntime) -> Path:
        """Format the node's log directory once; a formatted one is kept (a restart)."""
        config = self._write_config()
        if (self.data_dir / "log" / "meta.properties").exists():
            return config
        result = subprocess.run(
            runtime.command(
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                self.cluster_id,
                "--config",
                str(config),
                "--ignore-formatted",
                *(
                    arg
                    for name, password in self.scram_users.items()
                    for arg in ("--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]")
                ),
                heap_mb=128,
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BrokerStartError(
                f"formatting Kafka node {self.node_id} failed: {result.stdout}{result.stderr}"
            )
        return config

    def start(self, timeout_s: float = 60.0, wait: bool = True) -> None:
        runtime = installed()
        config = self.format_storage(runtime)
        with netns.inside(self.netns):
            if self.netns is None:
                ensure_free(self.host, self.port, "the Kafka broker")
            out = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
            self._process = subprocess.Popen(
                runtime.command(
                    "kafka.Kafka", str(config), heap_mb=self.heap_mb, jvm_options=self.jvm_options
                ),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGTERM),
            )
            if not isinstance(out, int):
                out.close()
        if wait:
            self.wait_ready(timeout_s)

    def wait_ready(self, timeout_s: float = 60.0, brokers: int = 1) -> None:
        """Until a metadata request to this node lists it and at least `brokers` live nodes."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.running:
                raise BrokerStartError(
                    f"Kafka node {self.node_id} exited while starting{self._log_tail()}"
                )
            # A plain connect first: aiokafka logs an ERROR for every refused bootstrap, which
            # flooded the captured logs of every test that starts or restarts a node.
            if _accepts(self.host, self.port):
                live = live_brokers(self.bootstrap_servers)
                if self.node_id in live and len(live) >= brokers:
                    return
            time.sleep(0.1)
        raise BrokerStartError(
            f"Kafka node {self.node_id} was not ready on {self.bootstrap_servers} within"
            f" {timeout_s:.0f}s{self._log_tail()}"
        )

    def _log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        tail = self.log_path.read_text(errors="replace").splitlines()[-15:]
        return "; its log ends:\n" + "\n".join(tail)

    def signal(self, signum: int) -> None:
        if self.running:
            assert self._process is not None
            os.kill(self._process.pid, signum)

    def kill(self) -> None:
        """SIGKILL: no controlled shutdown, no flush; the next start recovers from the log."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def stop(self, timeout_s: float = 15.0) -> None:
        process, self._process = self._process, None
        stop_process(process, timeout_s)

    def destroy(self) -> None:
        self.stop(timeout_s=5.0)
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _accepts(host: str, port: int, timeout_s: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout_s):
            return True
    except OSError:
        return False


def live_brokers(bootstrap_servers: str, timeout_s: float = 2.0) -> set[int]:
    """The node ids a metadata request to `bootstrap_servers` lists (empty when unanswered)."""

    async def ask() -> set[int]:
        client = AIOKafkaClient(
            bootstrap_servers=bootstrap_servers,
            request_timeout_ms=int(timeout_s * 1000),
            metadata_max_age_ms=60_000,
        )
        try:
            await asyncio.wait_for(client.bootstrap(), timeout_s)
            return {broker.nodeId for broker in client.cluster.brokers()}
        except Exception:  # not answering yet is the expected case
            return set()
        finally:
            await client.close()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(ask())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # called from inside a loop
        return pool.submit(asyncio.run, ask()).result()
