"""PostgreSQL (normal durability: fsync on) for the whole run, and one broker at a time on free
ports: Apache Kafka (a single KRaft node from `make kafka`, what production runs) or the
embedded Tansu broker (memory storage, what `make dev` runs with only Python)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from order_service.devstack.broker import TansuBroker
from order_service.devstack.kafka import KafkaBroker
from order_service.devstack.ports import free_port
from order_service.devstack.postgres import EmbeddedPostgres

BrokerKind = Literal["kafka", "tansu"]
BROKERS: tuple[BrokerKind, ...] = ("kafka", "tansu")
BROKER_LABELS: dict[BrokerKind, str] = {
    "kafka": "Apache Kafka 4.1.1",
    "tansu": "Tansu (embedded)",
}


@dataclass(frozen=True)
class Infra:
    postgres: EmbeddedPostgres
    broker: KafkaBroker | TansuBroker
    kind: BrokerKind
    work_dir: Path

    @property
    def bootstrap_servers(self) -> str:
        return self.broker.bootstrap_servers

    @property
    def idempotence(self) -> bool:
        """Production producer settings on Kafka (idempotence on, acks=all); Tansu refuses
        InitProducerId, so the stack runs there without idempotence (still acks=all)."""
        return self.kind == "kafka"

    def create_database(self, name: str) -> str:
        """A new database; returns its SQLAlchemy (asyncpg) DSN."""
        return self.postgres.create_database(name)

    def create_topic(self, name: str, partitions: int) -> None:
        """Apache Kafka here does not create topics on first use (as MSK by default): a topic
        the service does not create itself (the seed's) is made before its phase."""
        if self.kind == "kafka":
            asyncio.run(_create_topic(self.bootstrap_servers, name, partitions))

    def pids(self) -> dict[str, int]:
        assert self.postgres.pid is not None
        assert self.broker.pid is not None
        return {"postgres": self.postgres.pid, self.kind: self.broker.pid}


async def _create_topic(bootstrap_servers: str, name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


def plain_dsn(dsn: str) -> str:
    """asyncpg wants `postgresql://`; SQLAlchemy's DSN carries `+asyncpg`."""
    return dsn.replace("postgresql+asyncpg://", "postgresql://", 1)


@contextmanager
def postgres(work_dir: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(work_dir / "pg", port=free_port(), fast_unsafe=False)
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@contextmanager
def broker(kind: BrokerKind, work_dir: Path) -> Iterator[KafkaBroker | TansuBroker]:
    log_path = work_dir / f"{kind}.log"
    server: KafkaBroker | TansuBroker
    if kind == "kafka":
        server = KafkaBroker(work_dir / "kafka", port=free_port(), log_path=log_path)
    else:
        server = TansuBroker(port=free_port(), log_path=log_path)
    try:
        server.start()
        yield server
    finally:
        if isinstance(server, KafkaBroker):
            server.destroy()
        else:
            server.stop()


@contextmanager
def infrastructure(work_dir: Path, kind: BrokerKind = "kafka") -> Iterator[Infra]:
    """PostgreSQL and one broker, for a tool that needs both for its whole run (bench.cpu)."""
    with postgres(work_dir) as pg, broker(kind, work_dir) as server:
        yield Infra(pg, server, kind, work_dir)
