"""When the relay or the worker replaces its producer: the decision alone, on aiokafka's own
error classes. What they do with it is tested on Apache Kafka: a "timeout" against a frozen
broker (tests/integration/test_relay_producer.py), a real OUT_OF_ORDER_SEQUENCE_NUMBER after a
partition had no leader (tests/cluster/test_aiokafka_sequence_gap.py).
"""

from __future__ import annotations

import pytest
from aiokafka.errors import (
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    RequestTimedOutError,
    UnknownProducerId,
)

from order_service.messaging.producer_health import replacement_reason


@pytest.mark.parametrize(
    "error",
    [TimeoutError(), KafkaTimeoutError(), RequestTimedOutError()],
    ids=lambda e: type(e).__name__,
)
def test_a_publish_that_timed_out_gets_a_new_producer(error: BaseException) -> None:
    assert replacement_reason(error) == "timeout"


@pytest.mark.parametrize(
    "error",
    [
        OutOfOrderSequenceNumber(),
        UnknownProducerId(),
        InvalidProducerEpoch(),
        InvalidProducerIdMapping(),
        ProducerFenced(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_sequence_or_producer_id_error_gets_a_new_producer(error: BaseException) -> None:
    assert replacement_reason(error) == "producer_id"


@pytest.mark.parametrize(
    "error",
    [
        KafkaConnectionError(),
        NotLeaderForPartitionError(),
        MessageSizeTooLargeError(),
        ValueError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_other_errors_retry_with_the_same_producer(error: BaseException) -> None:
    assert replacement_reason(error) is None


def test_the_cause_of_a_wrapped_error_decides() -> None:
    outer = RuntimeError("sending 3 events failed")
    outer.__cause__ = OutOfOrderSequenceNumber()

    assert replacement_reason(outer) == "producer_id"
