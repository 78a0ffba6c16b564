"""Which broker error an aiokafka error or log record is, and when one holds the process."""

from __future__ import annotations

import logging

import pytest
from aiokafka.errors import (
    CoordinatorNotAvailableError,
    KafkaConnectionError,
    KafkaError,
    LeaderNotAvailableError,
    NotCoordinatorError,
    NotEnoughReplicasError,
    NotLeaderForPartitionError,
    OutOfOrderSequenceNumber,
    RebalanceInProgressError,
    RequestTimedOutError,
    UnknownTopicOrPartitionError,
)
from aiokafka.structs import TopicPartition

from order_service.messaging.broker_errors import (
    _KIND_OF,
    BrokerErrors,
    kind_of,
    kind_of_record,
)
from order_service.observability.metrics import KAFKA_ERROR_KINDS


def record(msg: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc is not None else None
    return logging.LogRecord("aiokafka.x", logging.WARNING, __file__, 1, msg, args, exc_info)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (NotEnoughReplicasError(), "not_enough_replicas"),
        (NotLeaderForPartitionError, "no_leader"),
        (LeaderNotAvailableError(), "no_leader"),
        (NotCoordinatorError(), "coordinator_moving"),
        (CoordinatorNotAvailableError, "coordinator_moving"),
        (KafkaConnectionError(), "broker_unreachable"),
        (RequestTimedOutError(), "request_timeout"),
        (OutOfOrderSequenceNumber(), "producer_id"),
        (RebalanceInProgressError(), "rebalance"),
        (UnknownTopicOrPartitionError(), "other"),
        (ValueError(), None),
    ],
    ids=lambda v: getattr(v, "__name__", type(v).__name__) if not isinstance(v, str) else v,
)
def test_each_error_class_has_its_kind(error: object, kind: str | None) -> None:
    assert kind_of(error) == kind  # type: ignore[arg-type]


def test_every_kind_is_a_label_value_exposed_from_the_start() -> None:
    assert {kind for _, kind in _KIND_OF} | {"other"} == set(KAFKA_ERROR_KINDS)


def test_a_produce_retry_is_read_from_the_error_class_aiokafka_logs() -> None:
    retry = record(
        "Got error produce response on topic-partition %s, retrying. Error: %s",
        TopicPartition("t", 0),
        NotEnoughReplicasError,
    )

    assert kind_of_record(retry) == "not_enough_replicas"


def test_the_coordinator_going_away_is_read_from_the_message() -> None:
    dead = record("Marking the coordinator dead (node %s)for group %s.", 2, "g")
    sending = record(
        "Error sending %s to node %s [%s] -- marking coordinator dead",
        "HeartbeatRequest",
        2,
        KafkaConnectionError(),
    )

    assert kind_of_record(dead) == kind_of_record(sending) == "coordinator_moving"


def test_a_record_without_an_error_is_not_counted() -> None:
    assert kind_of_record(record("Discovered coordinator %s for group %s", 1, "g")) is None
    assert kind_of_record(record("boom", exc=KafkaError())) == "other"


def test_a_holding_error_holds_once_it_persists_until_progress_or_the_hold_time_passes() -> None:
    now = [100.0]
    errors = BrokerErrors(hold_s=5.0, persist_s=1.0, clock=lambda: now[0])

    def after(seconds: float, *kinds: str) -> None:
        now[0] += seconds
        for kind in kinds:
            errors.seen(kind)

    after(0, "request_timeout", "request_timeout")
    assert errors.holding() is None  # counted, never a reason to hold
    after(0, "coordinator_moving")
    after(0.5, "coordinator_moving")
    assert errors.holding() is None  # half a second of it: a lookup at start-up, not a move
    after(0.6, "coordinator_moving")
    assert errors.holding() == "coordinator_moving"
    after(0.1, "not_enough_replicas")
    after(1.0, "not_enough_replicas")
    assert errors.holding() == "not_enough_replicas"  # the latest
    errors.progress()
    assert errors.holding() is None
    after(0, "no_leader")
    after(1.5, "no_leader")
    after(5.1)
    assert errors.holding() is None  # not seen for longer than hold_s
    after(0, "no_leader")
    after(2.5, "no_leader")
    assert errors.holding() is None  # two errors 2.5 s apart (> GAP_S): two runs of none
