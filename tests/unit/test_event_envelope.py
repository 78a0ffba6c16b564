"""The outbox message: CloudEvents binary-mode headers and lanes (schemas: test_event_schemas)."""

from __future__ import annotations

import orjson

from order_service.domain.events import OrderCreated
from order_service.domain.order import Order
from order_service.messaging.envelope import kafka_headers, order_created_message
from order_service.persistence.outbox_message import OUTBOX_LANES, lane_of

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _message():
    event = OrderCreated.of(Order.place("book", 2))
    return event, order_created_message(
        event,
        topic="orders.created",
        source="order-service",
        trace_headers={"traceparent": TRACEPARENT, "baggage": "secret=1"},
    )


def test_the_message_carries_the_cloudevents_binary_mode_headers() -> None:
    event, message = _message()

    assert message.headers["ce_specversion"] == "1.0"
    assert message.headers["ce_id"] == str(event.event_id)
    assert message.headers["ce_type"] == "order.created"
    assert message.headers["ce_source"] == "/order-service"
    assert message.headers["ce_time"] == event.order.created_at.isoformat()
    assert message.headers["content-type"] == "application/json"
    assert message.headers["traceparent"] == TRACEPARENT


def test_only_trace_context_headers_are_carried_over() -> None:
    _, message = _message()

    assert "baggage" not in message.headers


def test_the_key_is_the_order_id_and_the_value_is_the_order() -> None:
    event, message = _message()

    assert message.key == str(event.order.id)
    assert orjson.loads(message.payload)["id"] == str(event.order.id)
    assert ("ce_type", b"order.created") in kafka_headers(message.headers)


def test_an_orders_lane_is_stable_and_in_range() -> None:
    key = "0190a5b2-0000-7000-8000-000000000000"

    assert lane_of(key) == lane_of(key)
    assert all(0 <= lane_of(str(Order.place("x", 1).id)) < OUTBOX_LANES for _ in range(100))
