"""A publish that times out gets the relay a new producer (issue: the idempotent producer in
production) — against a real broker that stops answering (SIGSTOP: a hang, like a blackhole).

Runs with the production settings: KAFKA_ENABLE_IDEMPOTENCE=true and acks=all, on Apache Kafka.
"""

from __future__ import annotations

import asyncio
import signal

import asyncpg
import pytest
from prometheus_client import REGISTRY

from order_service.devstack.kafka import KafkaBroker
from order_service.messaging.relay import run_relay
from tests.conftest import Infra, make_settings
from tests.factories import Background, insert_orders
from tests.kafka_reader import read_all

pytestmark = pytest.mark.integration


def replaced() -> float:
    return REGISTRY.get_sample_value("relay_producer_recreated_total", {"reason": "timeout"}) or 0


async def unpublished(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"))


async def test_a_publish_that_times_out_replaces_the_producer_and_loses_nothing(
    infra: Infra, database: str, db: asyncpg.Connection, own_broker: KafkaBroker
) -> None:
    """Breaks caught: a publish wait without a bound (the relay would sit on its claim until
    the broker came back, and `replaced` would not move), and a replacement that leaves the
    relay without a working producer (the rows would stay unpublished after the broker's
    return)."""
    settings = make_settings(
        infra,
        database,
        kafka_bootstrap_servers=own_broker.bootstrap_servers,
        relay_publish_timeout_s=1.5,
    )
    before = replaced()
    async with Background(run_relay, settings):
        await insert_orders(db, settings, 5)
        async with asyncio.timeout(15):
            while await unpublished(db):
                await asyncio.sleep(0.05)

        own_broker.signal(signal.SIGSTOP)
        try:
            committed = await insert_orders(db, settings, 20)
            async with asyncio.timeout(15):
                while replaced() == before:
                    await asyncio.sleep(0.1)
            assert await unpublished(db) == 20  # rolled back: nothing marked without an ack
        finally:
            own_broker.signal(signal.SIGCONT)
        async with asyncio.timeout(30):
            while await unpublished(db):
                await asyncio.sleep(0.1)
    records = await asyncio.to_thread(
        read_all, own_broker.bootstrap_servers, settings.kafka_order_topic
    )
    assert {m.event_id for _, m in committed} <= {r.headers["ce_id"] for r in records}
