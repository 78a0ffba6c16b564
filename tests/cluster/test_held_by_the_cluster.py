"""Operators see which broker error holds the relay or the worker: /readyz says it (503 with a
reason), `kafka_client_errors_total{error}` counts it, `doctor` shows the cluster behind it.

Also aiokafka #1018 on Apache Kafka: with idempotence on, a batch the broker refuses with a
retriable error (here NOT_ENOUGH_REPLICAS) is retried until the cluster heals, and
`producer.stop()` waits for it while the sender goes on retrying — past the stop. The relay
abandons its producer instead (the sender is cancelled first), so it stops in time and
leaves no retry behind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
import pytest
from aiokafka.client import AIOKafkaClient, CoordinationType

from order_service.config import Settings
from order_service.devstack.ports import free_port
from order_service.doctor import kafka_cluster
from order_service.domain.order import Order
from order_service.messaging.relay import run_relay
from order_service.messaging.worker import run_worker
from order_service.persistence.outbox_message import OutboxMessage
from tests.cluster.probes import ReadinessWatch, metric, unpublished, until
from tests.cluster.trio import Trio, partition_state, wait_for_state
from tests.conftest import Infra, make_settings
from tests.factories import Background, Raw, insert_order, insert_orders, produce
from tests.kafka_reader import read_all

# A cluster test may start the package's three JVMs first, then restart one of them.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


class _Retries(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.at: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "retrying" in str(record.msg):
            self.at.append(time.monotonic())


@contextmanager
def produce_retries() -> Iterator[_Retries]:
    """When aiokafka's sender logs a produce retry ("Got error produce response ... retrying")."""
    handler = _Retries()
    logger = logging.getLogger("aiokafka.producer.sender")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


async def test_a_relay_held_by_not_enough_replicas_says_so_and_stops_leaving_no_retry_behind(
    infra: Infra, database: str, db: asyncpg.Connection, cluster: Trio
) -> None:
    """min.insync.replicas 3 and one replica SIGKILLed: every acks=all produce is refused
    NOT_ENOUGH_REPLICAS, which aiokafka retries without end. The relay marks nothing, its
    /readyz is 503 `not_enough_replicas`, the counter moves, doctor names the absent node and
    the partitions below min.insync.replicas. Stopped while held (its batch cancelled at the
    drain deadline, the producer still retrying it), it returns within SHUTDOWN_TIMEOUT_S and
    no produce retry is logged after; once healed, a new relay publishes every row.

    Break caught: the relay's producer closed with `producer.stop()` at shutdown (as before):
    stop() waited on the refused batch until its time ran out, and aiokafka's sender kept
    retrying after run_relay had returned (retries logged in the 3 s after: 14 in the run
    that showed it)."""
    settings = make_settings(
        infra,
        database,
        kafka_bootstrap_servers=cluster.bootstrap_servers,
        kafka_topic_partitions=1,
        kafka_topic_replication_factor=3,
        kafka_topic_min_insync_replicas=3,
        startup_timeout_s=60,
    )
    topic, port = settings.kafka_order_topic, free_port()
    refused = metric("kafka_client_errors_total", error="not_enough_replicas")
    relay = Background(run_relay, settings, http_host="127.0.0.1", http_port=port)
    with produce_retries() as retries:
        async with ReadinessWatch(f"http://127.0.0.1:{port}") as readiness:
            first = await insert_orders(db, settings, 3)
            await until(lambda: _none_left(db), 60, "the first rows published")
            state = await partition_state(cluster.bootstrap_servers, topic)
            follower = next(n for n in state.replicas if n != state.leader)
            cluster.node(follower).kill()
            survivors = cluster.bootstrap_of_running()
            await wait_for_state(survivors, topic, lambda s: len(s.isr) == 2)
            stranded = await insert_orders(db, settings, 5)
            await until(
                lambda: _seen(readiness, "not_enough_replicas"), 30, "/readyz not_enough_replicas"
            )
            assert readiness.last_status() == 503
            assert metric("kafka_client_errors_total", error="not_enough_replicas") > refused
            assert await unpublished(db) == 5

            doctor = {
                r.check.name: r
                for r in await kafka_cluster(
                    settings.model_copy(update={"kafka_bootstrap_servers": survivors}), 5.0
                )
            }
            assert doctor[f"kafka node {follower}"].detail == "not live"
            assert (
                "below min.insync.replicas 3, writes refused"
                in doctor[f"kafka topic {topic}"].detail
            )

            took = await relay.stop()
        stopped_at = time.monotonic()
        await asyncio.sleep(3.0)
        after_stop = [t for t in retries.at if t > stopped_at]
    assert took < settings.shutdown_timeout_s, took
    assert after_stop == [], f"{len(after_stop)} produce retries after the relay returned"
    assert await unpublished(db) == 5  # rolled back: nothing marked without an ack

    cluster.restart(follower)
    async with Background(run_relay, settings):
        await until(lambda: _none_left(db), 60, "every row published once healed")
    records = await asyncio.to_thread(read_all, cluster.bootstrap_servers, topic)
    assert {m.event_id for _, m in [*first, *stranded]} <= {r.headers["ce_id"] for r in records}
    print(
        f"\nheld relay: reasons {readiness.reasons()}, stopped in {took:.2f} s,"
        f" retries logged while held {len(retries.at)}, after the stop {len(after_stop)}"
    )


async def test_the_worker_says_coordinator_moving_while_its_group_coordinator_is_away(
    infra: Infra, database: str, db: asyncpg.Connection, cluster: Trio
) -> None:
    """The node coordinating the worker's group is SIGKILLed: the worker's /readyz turns 503
    `coordinator_moving` (and the counter moves) until the group has a coordinator again, then
    200; events placed meanwhile are all applied.

    Break caught: aiokafka's coordinator messages not classified (the `_COORDINATOR_MESSAGES`
    of messaging.broker_errors emptied): /readyz stayed 200 through the move and the reason
    was never given."""
    settings = make_settings(
        infra, database, kafka_bootstrap_servers=cluster.bootstrap_servers, startup_timeout_s=60
    )
    port = free_port()
    moving = metric("kafka_client_errors_total", error="coordinator_moving")
    first = await insert_order(db, settings)
    later = [await insert_order(db, settings) for _ in range(5)]
    async with (
        Background(run_worker, settings, http_host="127.0.0.1", http_port=port),
        ReadinessWatch(f"http://127.0.0.1:{port}") as readiness,
    ):
        await produce(settings, [Raw.of(first[1])])
        await until(lambda: _confirmed(db, [first]), 60, "the worker consuming")
        coordinator = await _group_coordinator(settings)
        cluster.node(coordinator).kill()
        await produce(
            settings.model_copy(update={"kafka_bootstrap_servers": cluster.bootstrap_of_running()}),
            [Raw.of(m) for _, m in later],
        )
        took = await until(lambda: _confirmed(db, later), 90, "the later events applied")
        await until(lambda: _seen(readiness, "coordinator_moving"), 5, "coordinator_moving")
        await until(lambda: _ready(readiness), 30, "/readyz 200 again")
    assert metric("kafka_client_errors_total", error="coordinator_moving") > moving
    print(
        f"\nworker: coordinator {coordinator} killed, later events applied in {took:.1f} s,"
        f" reasons {readiness.reasons()}"
    )


async def _group_coordinator(settings: Settings) -> int:
    client = AIOKafkaClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await client.bootstrap()
    try:
        return int(
            await client.coordinator_lookup(CoordinationType.GROUP, settings.kafka_consumer_group)
        )
    finally:
        await client.close()


async def _none_left(db: asyncpg.Connection) -> bool:
    return await unpublished(db) == 0


async def _confirmed(db: asyncpg.Connection, placed: list[tuple[Order, OutboxMessage]]) -> bool:
    ids = [order.id for order, _ in placed]
    done = await db.fetchval(
        "SELECT count(*) FROM orders WHERE id = ANY($1) AND status = 'CONFIRMED'", ids
    )
    return bool(done == len(ids))


async def _seen(readiness: ReadinessWatch, reason: str) -> bool:
    return any(r.startswith(reason) for r in readiness.reasons())


async def _ready(readiness: ReadinessWatch) -> bool:
    return readiness.last_status() == 200
