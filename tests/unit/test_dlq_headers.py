"""What a dead letter carries, and what a replay strips."""

from __future__ import annotations

from datetime import datetime

from aiokafka import ConsumerRecord

from order_service.messaging.dlq import MAX_ERROR_MESSAGE, dlq_headers, header, original_headers
from tests.factories import consumer_record


def record() -> ConsumerRecord:
    return consumer_record(
        [("ce_id", b"abc"), ("traceparent", b"00-x")], partition=2, offset=41, value=b"v"
    )


def test_dead_letter_headers_keep_the_original_ones_and_say_where_and_why() -> None:
    headers = dlq_headers(record(), error_type="not_json", error_message="bad", attempts=1)
    named = dict(headers)
    assert headers[:2] == [("ce_id", b"abc"), ("traceparent", b"00-x")]
    assert named["dlq.error.type"] == b"not_json"
    assert named["dlq.error.message"] == b"bad"
    assert named["dlq.attempts"] == b"1"
    assert named["dlq.original.topic"] == b"orders.created"
    assert named["dlq.original.partition"] == b"2"
    assert named["dlq.original.offset"] == b"41"
    assert datetime.fromisoformat(named["dlq.failed_at"].decode()).tzinfo is not None


def test_a_long_error_message_is_truncated() -> None:
    headers = dict(dlq_headers(record(), error_type="x", error_message="e" * 5000, attempts=3))
    assert len(headers["dlq.error.message"]) == MAX_ERROR_MESSAGE


def test_replay_strips_only_the_dlq_headers() -> None:
    headers = dlq_headers(record(), error_type="x", error_message="y", attempts=1)
    assert original_headers(headers) == [("ce_id", b"abc"), ("traceparent", b"00-x")]
    assert header(headers, "dlq.original.topic") == "orders.created"
    assert header(headers, "missing") is None
