"""Consumer lag, in messages and in seconds, from what the worker just processed."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from order_service.observability.metrics import CONSUMER_LAG_MESSAGES, CONSUMER_LAG_SECONDS


def record_lag(
    consumer: AIOKafkaConsumer,
    next_offsets: dict[TopicPartition, int],
    event_times: dict[TopicPartition, datetime],
) -> None:
    """`next_offsets`: the offset after the last one processed, per partition of the batch.

    Only for the partitions still assigned: a batch that outlived its revocation commits
    without those that moved (their lag is their new owner's to report, and aiokafka asserts
    on asking for it), and nothing after its commit may fail it."""
    now = datetime.now(UTC)
    held = consumer.assignment()
    for tp, position in next_offsets.items():
        if tp not in held:
            continue
        labels = {"topic": tp.topic, "partition": str(tp.partition)}
        highwater = consumer.highwater(tp)
        if highwater is not None:
            CONSUMER_LAG_MESSAGES.labels(**labels).set(max(0, highwater - position))
        occurred = event_times.get(tp)
        if occurred is not None:
            CONSUMER_LAG_SECONDS.labels(**labels).set(max(0.0, (now - occurred).total_seconds()))


def forget_partitions(partitions: set[TopicPartition]) -> None:
    """A revoked partition is someone else's now: stop reporting a stale lag for it."""
    for tp in partitions:
        labels = (tp.topic, str(tp.partition))
        for gauge in (CONSUMER_LAG_MESSAGES, CONSUMER_LAG_SECONDS):
            with contextlib.suppress(KeyError):
                gauge.remove(*labels)
