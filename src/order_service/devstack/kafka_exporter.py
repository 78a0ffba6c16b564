"""`order-service kafka-exporter`: kafka_exporter's series, read from the broker at each scrape.

The seed's kafka-exporter (github.com/danielqsj/kafka_exporter) is what compose and the Helm
values run. Its module is not served by the Go module proxy these machines reach (the proxy
answers 403 for every version), so `make observe` and the tests run this one instead: the same
metric names, labels and rules, taken from kafka_exporter v1.9.0's collector with its defaults
(`--offset.show-all`, every topic, every group):

- per topic: `kafka_topic_partitions`; per partition: `kafka_topic_partition_current_offset`
  (the high watermark), `_oldest_offset`, `_leader`, `_replicas`, `_in_sync_replica`,
  `_leader_is_preferred`, `_under_replicated_partition`;
- per group (those the broker lists, members or not) and each topic it has committed on:
  `kafka_consumergroup_current_offset` and `kafka_consumergroup_lag` per partition (both -1
  for a partition without a commit), `_current_offset_sum`, `_lag_sum`, and
  `kafka_consumergroup_members` per group;
- `kafka_brokers`, `kafka_broker_info`.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from order_service.config import Settings
from order_service.messaging.kafka_client import client_options
from order_service.observability.logging import get_logger

log = get_logger(__name__)

_PARTITION = ["topic", "partition"]
_GROUP_PARTITION = ["consumergroup", "topic", "partition"]
_GROUP_TOPIC = ["consumergroup", "topic"]


class Families(Collector):
    """The gauges of one scrape, by name, in kafka_exporter's order."""

    def __init__(self) -> None:
        self.by_name: dict[str, GaugeMetricFamily] = {}

    def add(
        self, name: str, help_: str, labels: list[str], values: list[str], value: float
    ) -> None:
        family = self.by_name.get(name)
        if family is None:
            family = self.by_name[name] = GaugeMetricFamily(name, help_, labels=labels)
        family.add_metric(values, value)

    def collect(self) -> Iterator[Metric]:
        yield from self.by_name.values()


@dataclass(frozen=True)
class PartitionState:
    topic: str
    partition: int
    leader: int
    replicas: list[int]
    isr: list[int]


class KafkaExporter:
    def __init__(self, settings: Settings) -> None:
        options = client_options(settings)
        options["client_id"] = "kafka_exporter"
        self._admin = AIOKafkaAdminClient(**options, request_timeout_ms=10_000)
        self._consumer = AIOKafkaConsumer(**options, enable_auto_commit=False)
        self._lock = asyncio.Lock()  # concurrent scrapes share the broker round-trips in turn

    async def start(self) -> None:
        await self._admin.start()
        await self._consumer.start()

    async def close(self) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def scrape(self) -> bytes:
        async with self._lock:
            families = await self.collect()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(families)
        return generate_latest(registry)

    async def collect(self) -> Families:
        families = Families()
        cluster = await self._admin.describe_cluster()
        brokers = cluster.get("brokers", [])
        families.add(
            "kafka_brokers", "Number of Brokers in the Kafka Cluster.", [], [], len(brokers)
        )
        for broker in brokers:
            address = f"{broker['host']}:{broker['port']}"
            families.add(
                "kafka_broker_info",
                "Information about the Kafka Broker.",
                ["id", "address"],
                [str(broker["node_id"]), address],
                1,
            )
        partitions = _partitions(await self._admin.describe_topics())
        newest = await self._consumer.end_offsets([_tp(p) for p in partitions])
        oldest = await self._consumer.beginning_offsets([_tp(p) for p in partitions])
        _topic_series(families, partitions, newest, oldest)
        await self._group_series(families, partitions, newest)
        return families

    async def _group_series(
        self,
        families: Families,
        partitions: list[PartitionState],
        newest: dict[TopicPartition, int],
    ) -> None:
        groups = sorted({g[0] for g in await self._admin.list_consumer_groups()})
        if not groups:
            return
        # One group at a time: a group aiokafka cannot describe (another client's protocol)
        # costs its own series only, never the whole scrape.
        members: dict[str, int] = {}
        described: list[str] = []
        for group in groups:
            try:
                members.update(_members(await self._admin.describe_consumer_groups([group])))
            except KafkaError as exc:
                log.warning("kafka_exporter_group_skipped", group=group, error=repr(exc))
                continue
            described.append(group)
        groups = described
        by_topic: dict[str, list[int]] = defaultdict(list)
        for p in partitions:
            by_topic[p.topic].append(p.partition)
        for group in groups:
            families.add(
                "kafka_consumergroup_members",
                "Amount of members in a consumer group",
                ["consumergroup"],
                [group],
                members.get(group, 0),
            )
            # Every partition of every topic, as kafka_exporter's --offset.show-all asks.
            committed = await self._admin.list_consumer_group_offsets(
                group, partitions=[_tp(p) for p in partitions]
            )
            consumed = sorted({tp.topic for tp, meta in committed.items() if meta.offset != -1})
            for topic in consumed:
                offset_sum = lag_sum = 0
                for partition in sorted(by_topic.get(topic, [])):
                    tp = TopicPartition(topic, partition)
                    meta = committed.get(tp)
                    offset = meta.offset if meta is not None else -1
                    offset_sum += offset
                    labels = [group, topic, str(partition)]
                    families.add(
                        "kafka_consumergroup_current_offset",
                        "Current Offset of a ConsumerGroup at Topic/Partition",
                        _GROUP_PARTITION,
                        labels,
                        offset,
                    )
                    if tp not in newest:
                        continue
                    # -1 without a commit, as kafka_exporter does, so it can be alerted on.
                    lag = -1 if offset == -1 else newest[tp] - offset
                    lag_sum += 0 if offset == -1 else lag
                    families.add(
                        "kafka_consumergroup_lag",
                        "Current Approximate Lag of a ConsumerGroup at Topic/Partition",
                        _GROUP_PARTITION,
                        labels,
                        lag,
                    )
                families.add(
                    "kafka_consumergroup_current_offset_sum",
                    "Current Offset of a ConsumerGroup at Topic for all partitions",
                    _GROUP_TOPIC,
                    [group, topic],
                    offset_sum,
                )
                families.add(
                    "kafka_consumergroup_lag_sum",
                    "Current Approximate Lag of a ConsumerGroup at Topic for all partitions",
                    _GROUP_TOPIC,
                    [group, topic],
                    lag_sum,
                )


def _tp(p: PartitionState) -> TopicPartition:
    return TopicPartition(p.topic, p.partition)


def _partitions(topics: Iterable[dict[str, Any]]) -> list[PartitionState]:
    found = []
    for topic in topics:
        if topic.get("error_code", 0) != 0:
            continue
        for p in topic["partitions"]:
            found.append(
                PartitionState(
                    topic["topic"], p["partition"], p["leader"], list(p["replicas"]), list(p["isr"])
                )
            )
    return sorted(found, key=lambda p: (p.topic, p.partition))


def _topic_series(
    families: Families,
    partitions: list[PartitionState],
    newest: dict[TopicPartition, int],
    oldest: dict[TopicPartition, int],
) -> None:
    counts: dict[str, int] = defaultdict(int)
    for p in partitions:
        counts[p.topic] += 1
    for topic, count in sorted(counts.items()):
        families.add(
            "kafka_topic_partitions",
            "Number of partitions for this Topic",
            ["topic"],
            [topic],
            count,
        )
    for p in partitions:
        labels = [p.topic, str(p.partition)]
        tp = _tp(p)
        gauges: list[tuple[str, str, float | None]] = [
            ("current_offset", "Current Offset of a Broker at Topic/Partition", newest.get(tp)),
            ("oldest_offset", "Oldest Offset of a Broker at Topic/Partition", oldest.get(tp)),
            ("leader", "Leader Broker ID of this Topic/Partition", p.leader),
            ("replicas", "Number of Replicas for this Topic/Partition", len(p.replicas)),
            ("in_sync_replica", "Number of In-Sync Replicas for this Topic/Partition", len(p.isr)),
            (
                "leader_is_preferred",
                "1 if Topic/Partition is using the Preferred Broker",
                float(bool(p.replicas) and p.leader == p.replicas[0]),
            ),
            (
                "under_replicated_partition",
                "1 if Topic/Partition is under Replicated",
                float(len(p.isr) < len(p.replicas)),
            ),
        ]
        for suffix, help_, value in gauges:
            if value is not None:
                families.add(f"kafka_topic_partition_{suffix}", help_, _PARTITION, labels, value)


def _members(responses: Iterable[Any]) -> dict[str, int]:
    """Members per group, from DescribeGroups responses of any version."""
    found: dict[str, int] = {}
    for response in responses:
        for group in response.to_object()["groups"]:
            found[group["group"]] = len(group.get("members", []))
    return found


async def serve(settings: Settings, host: str, port: int, stop: asyncio.Event) -> None:
    exporter = KafkaExporter(settings)
    await exporter.start()

    async def metrics(_: web.Request) -> web.Response:
        body = await exporter.scrape()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        await stop.wait()
    finally:
        await runner.cleanup()
        await exporter.close()
