"""Session-wide real infrastructure: one PostgreSQL and one Apache Kafka node for the whole run.

Set TEST_POSTGRES_DSN / TEST_KAFKA_BOOTSTRAP_SERVERS to use running ones instead. Each test
gets its own database (cloned from a migrated template) and its own topics and consumer group,
so tests never see each other's rows or messages.
"""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from order_service.config import Settings
from order_service.devstack.kafka import KafkaBroker
from order_service.devstack.ports import free_port
from order_service.devstack.postgres import EmbeddedPostgres
from order_service.persistence.migrate import upgrade_to_head

# The network-fault rig's fixtures (netlab, netns_postgres, netns_broker, pg_failover,
# net_infra, delay_proxy) and the SASL_SSL node (secure_kafka), usable from every directory.
pytest_plugins = ["tests.netfault.fixtures", "tests.secure_kafka"]

TEMPLATE_DB = "orderdb_template"


@dataclass(frozen=True)
class Infra:
    admin_dsn: str  # plain postgresql:// to the maintenance database
    dsn_base: str  # postgresql+asyncpg://user:pw@host:port
    bootstrap_servers: str
    postgres: EmbeddedPostgres | None
    broker: KafkaBroker | None

    def dsn(self, database: str) -> str:
        return f"{self.dsn_base}/{database}"


def _split_dsn(dsn: str) -> str:
    return dsn.rsplit("/", 1)[0]


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    pg: EmbeddedPostgres | None = None
    broker: KafkaBroker | None = None
    dsn = os.environ.get("TEST_POSTGRES_DSN")
    bootstrap = os.environ.get("TEST_KAFKA_BOOTSTRAP_SERVERS")
    base = Path(tempfile.mkdtemp(prefix="order-service-test-"))
    try:
        if not dsn:
            pg = EmbeddedPostgres(base / "pg", port=free_port(), fast_unsafe=True)
            pg.start()
            dsn = pg.dsn()
        if not bootstrap:
            broker = KafkaBroker(base / "kafka", port=free_port(), log_path=base / "kafka.log")
            broker.start()
            bootstrap = broker.bootstrap_servers
        dsn_base = _split_dsn(dsn)
        admin_dsn = dsn_base.replace("postgresql+asyncpg://", "postgresql://") + "/postgres"
        asyncio.run(_create_template(admin_dsn, dsn_base))
        yield Infra(admin_dsn, dsn_base, bootstrap, pg, broker)
    finally:
        if broker:
            broker.destroy()
        if pg:
            pg.destroy()


async def _create_template(admin_dsn: str, dsn_base: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    finally:
        await conn.close()
    await asyncio.to_thread(upgrade_to_head, f"{dsn_base}/{TEMPLATE_DB}")


def make_settings(infra: Infra, database: str, **overrides: object) -> Settings:
    suffix = uuid.uuid4().hex[:10]
    values: dict[str, object] = {
        "environment": "test",
        "postgres_dsn": infra.dsn(database),
        "kafka_bootstrap_servers": infra.bootstrap_servers,
        "kafka_order_topic": f"orders.created.{suffix}",
        "kafka_status_topic": f"orders.status.{suffix}",
        "kafka_consumer_group": f"order-processor-{suffix}",
        "kafka_enable_idempotence": True,
        "relay_poll_interval_s": 0.2,
        "retry_initial_backoff_s": 0.05,
        "retry_max_backoff_s": 0.5,
        "shutdown_timeout_s": 5.0,
        "db_connect_timeout_s": 2.0,
        "db_statement_timeout_ms": 3000,
        "request_timeout_s": 3.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def create_database(infra: Infra, prefix: str = "t") -> str:
    """A fresh database cloned from the migrated template (fast: a file copy)."""
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(infra.admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
    finally:
        await conn.close()
    return name


async def drop_database(infra: Infra, name: str) -> None:
    conn = await asyncpg.connect(infra.admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def database(infra: Infra) -> AsyncIterator[str]:
    """A fresh, migrated database for one test; dropped afterwards."""
    name = await create_database(infra)
    yield name
    await drop_database(infra, name)


@pytest.fixture
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A migrated PostgreSQL of this test's own, to stop and freeze without disturbing others."""
    pg = EmbeddedPostgres(Path(tempfile.mkdtemp()) / "pg", port=free_port(), fast_unsafe=True)
    pg.start()
    upgrade_to_head(pg.dsn())
    yield pg
    pg.signal(signal.SIGCONT)
    pg.destroy()


@pytest.fixture
def settings(infra: Infra, database: str) -> Settings:
    return make_settings(infra, database)


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the test's database, for arranging and asserting."""
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    yield conn
    await conn.close()
