"""Fixtures for the fault suite.

Tests that stop or freeze PostgreSQL or the broker get their own instances (`own_infra`): the
session-wide ones are shared by every other test. Tests that only hurt our own processes use the
session infra with a per-test database and topic (`stack`, as in tests/e2e).
"""

from __future__ import annotations

import signal
import tempfile
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
from tests.conftest import Infra, make_settings
from tests.e2e.processes import Stack, running_stack

# Bounds that make a dead dependency a fast answer; the processes read them from the env.
FAST_FAILURE_ENV = {
    "REQUEST_TIMEOUT_S": "3",
    "DB_STATEMENT_TIMEOUT_MS": "2000",
    "DB_CONNECT_TIMEOUT_S": "1",
    "RETRY_INITIAL_BACKOFF_S": "0.05",
    "RETRY_MAX_BACKOFF_S": "0.5",
}


@dataclass(frozen=True)
class OwnInfra:
    postgres: EmbeddedPostgres
    broker: KafkaBroker
    settings: Settings


@pytest.fixture
def own_infra(tmp_path: Path) -> Iterator[OwnInfra]:
    """A PostgreSQL and an Apache Kafka node this test alone may stop, freeze and resume."""
    base = Path(tempfile.mkdtemp(prefix="order-service-faults-"))
    pg = EmbeddedPostgres(base / "pg", port=free_port(), fast_unsafe=True)
    broker = KafkaBroker(base / "kafka", port=free_port(), log_path=tmp_path / "kafka.log")
    pg.start()
    try:
        broker.start()
        upgrade_to_head(pg.dsn())
        dsn_base = pg.dsn().rsplit("/", 1)[0]
        infra = Infra("", dsn_base, broker.bootstrap_servers, pg, broker)
        yield OwnInfra(pg, broker, make_settings(infra, pg.database))
    finally:
        broker.signal(signal.SIGCONT)
        pg.signal(signal.SIGCONT)
        broker.destroy()
        pg.destroy()


@pytest.fixture
def own_stack(own_infra: OwnInfra, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(own_infra.settings, tmp_path) as running:
        yield running


@pytest.fixture
async def own_db(own_infra: OwnInfra) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(own_infra.settings.asyncpg_dsn)
    yield conn
    await conn.close()


@pytest.fixture
def stack(settings: Settings, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(settings, tmp_path) as running:
        yield running
