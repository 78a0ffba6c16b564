"""Kafka clients from Settings: producers, consumers, topics (TLS and SASL: kafka_security)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    InvalidReplicationFactorError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    TopicAlreadyExistsError,
    for_code,
)

from order_service.config import Settings
from order_service.messaging.kafka_security import security_options


def is_retriable(exc: BaseException) -> bool:
    """A broker error that may clear by itself (the broker is away, a leader moves): retry.
    Anything else (a record too large, a missing permission) will fail the same way again."""
    if isinstance(exc, KafkaTimeoutError | KafkaConnectionError):
        return True
    return isinstance(exc, KafkaError) and bool(getattr(exc, "retriable", False))


def client_options(settings: Settings) -> dict[str, Any]:
    return {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "client_id": settings.service_name,
        **security_options(settings),
    }


def create_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    """acks=all always: a row is marked published only after every in-sync replica has it."""
    options: dict[str, Any] = {
        **client_options(settings),
        "acks": "all",
        "enable_idempotence": settings.kafka_enable_idempotence,
        "linger_ms": settings.kafka_linger_ms,
        "max_batch_size": settings.kafka_batch_max_bytes,
        "compression_type": (
            None if settings.kafka_compression_type == "none" else settings.kafka_compression_type
        ),
        "request_timeout_ms": 10_000,
        "retry_backoff_ms": 200,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def create_consumer(settings: Settings, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    options: dict[str, Any] = {
        **client_options(settings),
        "group_id": settings.kafka_consumer_group,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        # The broker answers a fetch as soon as one byte is there, or after this long: keep it
        # short so a quiet partition's next event is not held back (end-to-end latency).
        "fetch_max_wait_ms": 100,
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    min_insync_replicas: int


def topic_plan(settings: Settings, brokers: int) -> list[TopicSpec]:
    """The topics the service creates when missing: replicated, so that acks=all means
    `replication_factor` disks (default min(3, brokers)), with min.insync.replicas defaulting
    to one less (at least 1, at most 2): one broker may be down and writes still go on."""
    rf = settings.kafka_topic_replication_factor or max(1, min(3, brokers))
    min_isr = settings.kafka_topic_min_insync_replicas or max(1, min(2, rf - 1))
    partitions = settings.kafka_topic_partitions
    return [
        TopicSpec(settings.kafka_order_topic, partitions, rf, min_isr),
        TopicSpec(settings.kafka_status_topic, partitions, rf, min_isr),
        TopicSpec(settings.dlq_topic, 1, rf, min_isr),
    ]


async def ensure_topics(settings: Settings) -> list[TopicSpec]:
    """Create the order, status and DLQ topics if missing (no-op where they exist).

    Existing topics are left as they are; one with fewer replicas than planned is logged, since
    acks=all then holds fewer copies than the operator asked for."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        plan = topic_plan(settings, len(cluster.get("brokers", [])))
        existing = set(await admin.list_topics())
        missing = [spec for spec in plan if spec.name not in existing]
        if missing:
            response = await admin.create_topics([_new_topic(spec) for spec in missing])
            check_created(response.topic_errors, plan, len(cluster.get("brokers", [])))
        return plan
    finally:
        await admin.close()


def check_created(
    topic_errors: Sequence[Sequence[Any]], plan: Sequence[TopicSpec], brokers: int
) -> None:
    """Per-topic results of CreateTopics (aiokafka returns them, it does not raise)."""
    for topic, code, *_ in topic_errors:
        if code == 0:
            continue
        error = for_code(code)
        if error is TopicAlreadyExistsError:
            continue  # another process created it meanwhile
        if error is InvalidReplicationFactorError:
            rf = next((s.replication_factor for s in plan if s.name == topic), None)
            # A setting that cannot work: a ValueError, so start-up stops at once, clearly.
            raise ValueError(
                f"cannot create topic {topic} with replication factor {rf}: the cluster has "
                f"{brokers} broker(s); set KAFKA_TOPIC_REPLICATION_FACTOR"
            )
        raise error(f"creating topic {topic} failed")


def _new_topic(spec: TopicSpec) -> NewTopic:
    return NewTopic(
        spec.name,
        spec.partitions,
        spec.replication_factor,
        topic_configs={"min.insync.replicas": str(spec.min_insync_replicas)},
    )
