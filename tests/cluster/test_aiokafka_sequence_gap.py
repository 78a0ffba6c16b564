"""aiokafka #1017 on Apache Kafka: after a partition had no leader for a while, the idempotent
producer gets OUT_OF_ORDER_SEQUENCE_NUMBER on it for good — the relay and the worker replace
their producer and go on by themselves.

How aiokafka 0.14 gets there (seen here, and read in its sender): a batch for a partition whose
leader is -1 (its only in-sync replica is down) fails with LeaderNotAvailableError once it is
older than `request_timeout_ms` — with idempotence on too — after its sequence numbers were
taken. When the leader is back, the broker expects the sequence after the last batch it wrote
and the producer sends one further on: OUT_OF_ORDER_SEQUENCE_NUMBER, on every later batch of
that partition, until a new producer gets a new producer id. Topics of replication factor 1
make "no leader" cheap to cause here; with RF 3 it takes every in-sync replica down (a whole
cluster restarting).
"""

from __future__ import annotations

import asyncio
from collections import Counter

import asyncpg
import pytest

from order_service.config import Settings
from order_service.devstack.ports import free_port
from order_service.doctor import kafka_cluster
from order_service.domain.order import Order
from order_service.messaging.relay import run_relay
from order_service.messaging.worker import run_worker
from tests.cluster.probes import ReadinessWatch, metric, unpublished, until
from tests.cluster.trio import Trio, create_topic_on, partition_state, wait_for_state
from tests.conftest import Infra, make_settings
from tests.factories import Background, Raw, insert_order, insert_orders, order_created, produce
from tests.kafka_reader import read_all, wait_for_records

# A cluster test may start the package's three JVMs first, then restart one of them.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def settings_on(infra: Infra, database: str, cluster: Trio, **overrides: object) -> Settings:
    return make_settings(
        infra,
        database,
        kafka_bootstrap_servers=cluster.bootstrap_servers,
        kafka_topic_replication_factor=1,
        kafka_topic_partitions=1,
        startup_timeout_s=60,
        **overrides,
    )


async def test_the_relay_replaces_its_producer_on_a_real_out_of_order_sequence_and_loses_nothing(
    infra: Infra, database: str, db: asyncpg.Connection, cluster: Trio
) -> None:
    """The relay publishes to a partition whose only replica is then SIGKILLed; its batch
    expires (LeaderNotAvailable, a sequence gap), the node comes back, and the next publish gets
    a real OUT_OF_ORDER_SEQUENCE_NUMBER: the relay replaces its producer (reason producer_id)
    and every row reaches the topic. On the way, /readyz says `no_leader` and doctor shows the
    offline partition and the absent node. RELAY_PUBLISH_TIMEOUT_S is 20 s here, longer than
    the producer's request timeout (10 s): with both at 10 s (the defaults) the relay's own
    timeout usually comes first and its producer is replaced before any batch expires.

    Break caught: OutOfOrderSequenceNumber not fatal for the producer id (taken out of
    `producer_health._FATAL_FOR_THE_PRODUCER_ID`): every later publish failed with it, and the
    5 rows stayed unpublished (the wait for them timed out after 120 s)."""
    settings = settings_on(
        infra, database, cluster, relay_publish_timeout_s=20.0, db_statement_timeout_ms=5000
    )
    topic = settings.kafka_order_topic
    port = free_port()
    replaced = metric("relay_producer_recreated_total", reason="producer_id")
    failures = metric("outbox_publish_failures_total")
    async with (
        Background(run_relay, settings, http_host="127.0.0.1", http_port=port),
        ReadinessWatch(f"http://127.0.0.1:{port}") as readiness,
    ):
        first = await insert_orders(db, settings, 3)
        await until(lambda: _none_left(db), 60, "the first rows published")
        leader = (await partition_state(cluster.bootstrap_servers, topic)).leader
        cluster.node(leader).kill()
        survivors = cluster.bootstrap_of_running()
        await wait_for_state(survivors, topic, lambda s: s.leader == -1)
        stranded = await insert_orders(db, settings, 5)

        await until(lambda: _any(readiness.reasons(), "no_leader"), 30, "/readyz no_leader")
        rows = await kafka_cluster(
            settings.model_copy(update={"kafka_bootstrap_servers": survivors}), 5.0
        )
        doctor = {r.check.name: r for r in rows}
        assert not doctor[f"kafka node {leader}"].ok
        assert f"offline (no leader): {topic}-0" in doctor[f"kafka topic {topic}"].detail

        # The first expiry: LeaderNotAvailable after ~10 s, its sequence numbers gone.
        await until(
            lambda: _above(metric("outbox_publish_failures_total"), failures), 60, "a failure"
        )
        assert await unpublished(db) == 5  # nothing marked that the broker does not hold
        cluster.restart(leader)
        took = await until(lambda: _none_left(db), 120, "every row published after the return")
        await until(lambda: _ready(readiness), 30, "/readyz 200 again")

    assert metric("relay_producer_recreated_total", reason="producer_id") > replaced
    records = await asyncio.to_thread(read_all, cluster.bootstrap_servers, topic)
    copies = Counter(r.headers["ce_id"] for r in records)
    expected = {m.event_id for _, m in [*first, *stranded]}
    assert expected <= set(copies), expected - set(copies)
    print(
        f"\nrelay after the return: published in {took:.1f} s, producers replaced"
        f" {metric('relay_producer_recreated_total', reason='producer_id') - replaced:g},"
        f" publish failures {metric('outbox_publish_failures_total') - failures:g},"
        f" duplicates {sum(copies.values()) - len(copies)}, readiness reasons"
        f" {readiness.reasons()}"
    )


async def test_the_worker_dead_letters_a_poison_event_after_a_sequence_gap_instead_of_dropping_it(
    infra: Infra, database: str, db: asyncpg.Connection, cluster: Trio
) -> None:
    """The worker dead-letters a first poison event; the DLQ's only replica is SIGKILLed
    while it dead-letters a second one, whose batch expires (LeaderNotAvailable: a sequence
    gap); the node comes back and the retry gets a real OUT_OF_ORDER_SEQUENCE_NUMBER (the
    broker remembers the first dead letter's sequence): the worker replaces its producer and
    the second dead letter reaches the DLQ whole. (Without the first one the broker would have
    no state for the producer on that partition and accept any sequence.)

    Break caught: `dlq.send_dead_letters` treating a producer-id error like a bad record (as it
    did before): the dead letter was sent trimmed, got the same error, and was dropped
    (worker_dead_letters_dropped_total +1, one record in the DLQ) — and so would every later
    one until the worker restarted."""
    settings = settings_on(infra, database, cluster)
    orders_node, dlq_node = 1, 2
    for name in (settings.kafka_order_topic, settings.kafka_status_topic):
        await create_topic_on(cluster.bootstrap_servers, name, orders_node)
    await create_topic_on(cluster.bootstrap_servers, settings.dlq_topic, dlq_node)
    before, after = await insert_order(db, settings), await insert_order(db, settings)
    headers = order_created(settings, Order.place("x", 1)).headers
    first, second = Raw("poison-1", b"{not json", headers), Raw("poison-2", b"[1,", headers)
    dropped = metric("worker_dead_letters_dropped_total")
    replaced = metric("worker_producer_recreated_total", reason="producer_id")
    no_leader = metric("kafka_client_errors_total", error="no_leader")

    async with Background(run_worker, settings):
        await produce(settings, [first, Raw.of(before[1])])
        await until(lambda: _status(db, before[0], "CONFIRMED"), 60, "the worker consuming")
        await wait_for_records(cluster.bootstrap_servers, settings.dlq_topic, 1, timeout_s=60)
        cluster.node(dlq_node).kill()
        await wait_for_state(
            cluster.bootstrap_of_running(), settings.dlq_topic, lambda s: s.leader == -1
        )
        await produce(settings, [second, Raw.of(after[1])])
        # The dead letter's batch expired after the producer's 10 s request timeout.
        await until(
            lambda: _above(metric("kafka_client_errors_total", error="no_leader"), no_leader),
            60,
            "the dead letter's batch failing LeaderNotAvailable",
        )
        cluster.restart(dlq_node)
        dead = await wait_for_records(
            cluster.bootstrap_servers, settings.dlq_topic, 2, timeout_s=120
        )

    assert metric("worker_dead_letters_dropped_total") == dropped
    assert metric("worker_producer_recreated_total", reason="producer_id") > replaced
    assert [(r.key, r.value, r.headers["dlq.error.type"]) for r in dead] == [
        ("poison-1", b"{not json", "not_json"),
        ("poison-2", b"[1,", "not_json"),
    ]
    assert await _status(db, after[0], "CONFIRMED")


async def _none_left(db: asyncpg.Connection) -> bool:
    return await unpublished(db) == 0


async def _status(db: asyncpg.Connection, order: Order, status: str) -> bool:
    return bool(await db.fetchval("SELECT status FROM orders WHERE id = $1", order.id) == status)


async def _any(reasons: list[str], prefix: str) -> bool:
    return any(r.startswith(prefix) for r in reasons)


async def _above(value: float, baseline: float) -> bool:
    return value > baseline


async def _ready(readiness: ReadinessWatch) -> bool:
    return readiness.last_status() == 200
