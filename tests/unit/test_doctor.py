"""Which endpoints `order-service doctor` checks, and how it shows the Kafka cluster."""

from __future__ import annotations

from order_service.doctor import Targets, checks_for, cluster_results
from order_service.messaging.cluster_state import Broker, ClusterState, Partition
from order_service.messaging.kafka_quorum import Quorum

CORE = Targets("http://a", "http://r", "http://w")


def test_the_core_processes_are_always_checked() -> None:
    urls = {c.url for c in checks_for(CORE)}

    assert {"http://a/readyz", "http://r/readyz", "http://w/readyz", "http://a/metrics"} <= urls
    assert not any("9090" in u or "grafana" in u for u in urls)


def test_observability_endpoints_are_checked_when_given() -> None:
    targets = Targets(
        "http://a",
        "http://r",
        "http://w",
        prometheus="http://p:9090",
        grafana="http://g:3000",
        jaeger="http://j:16686",
        alertmanager="http://am:9093",
    )

    names = {c.name for c in checks_for(targets)}

    assert {
        "prometheus: every target up",
        "grafana healthy",
        "jaeger reachable",
        "jaeger: order-service traces arrive",
        "alertmanager ready",
    } <= names


def cluster(*partitions: Partition, live: tuple[int, ...] = (1, 2, 3)) -> ClusterState:
    brokers = tuple(Broker(n, f"10.0.0.{n}", 9092) for n in live)
    return ClusterState(brokers, Quorum(2, (1, 2, 3), ()), partitions, ())


def part(p: int, leader: int, isr: tuple[int, ...], topic: str = "orders.created") -> Partition:
    return Partition(topic, p, leader, (1, 2, 3), isr, min_isr=2)


def test_the_cluster_rows_name_each_broker_and_the_active_controller() -> None:
    rows = cluster_results(cluster(part(0, 1, (1, 2, 3)), part(1, 2, (2, 3, 1))), "b:9092")

    by_name = {r.check.name: r for r in rows}
    assert by_name["kafka broker 2"].detail == "active controller"
    assert by_name["kafka broker 1"].check.url == "10.0.0.1:9092"
    assert by_name["kafka topic orders.created"].ok
    assert (
        "2 partition(s), 3 replicas each, all in sync"
        in by_name["kafka topic orders.created"].detail
    )
    assert all(r.ok for r in rows)


def test_a_dead_broker_and_the_partitions_it_leaves_behind_fail() -> None:
    state = cluster(
        part(0, 2, (2, 3)),
        part(1, 2, (2,)),
        part(2, -1, ()),
        part(0, 2, (2, 3, 1), topic="orders.status"),
        live=(2, 3),
    )

    rows = {r.check.name: r for r in cluster_results(state, "b:9092")}

    assert not rows["kafka node 1"].ok and rows["kafka node 1"].detail == "not live"
    created = rows["kafka topic orders.created"]
    assert not created.ok
    assert "offline (no leader): orders.created-2" in created.detail
    assert "below min.insync.replicas 2, writes refused: orders.created-1 isr [2]" in created.detail
    assert "under-replicated: orders.created-0 isr [2, 3] of [1, 2, 3]" in created.detail
    assert rows["kafka topic orders.status"].ok
