"""The outbox message: CloudEvents binary-mode headers and lanes (schemas: test_event_schemas)."""

from __future__ import annotations

import orjson

from order_service.domain.events import OrderCreated
from order_service.domain.order import Order
from order_service.messaging.envelope import (
    cloud_event_headers,
    kafka_headers,
    order_created_message,
    wire_headers,
)
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


def test_the_message_is_sent_with_the_cloudevents_binary_mode_headers_in_order() -> None:
    event, message = _message()

    assert list(wire_headers(message, "order-service").items()) == [
        ("ce_specversion", "1.0"),
        ("ce_id", str(event.event_id)),
        ("ce_type", "order.created"),
        ("ce_source", "/order-service"),
        ("ce_subject", str(event.order.id)),
        ("ce_time", event.order.created_at.isoformat()),
        ("ce_dataschema", "https://github.com/order-service/schemas/order.created.v1.json"),
        ("content-type", "application/json"),
        ("traceparent", TRACEPARENT),
    ]


def test_the_row_stores_only_the_attributes_that_vary_by_event() -> None:
    event, message = _message()

    assert message.headers == {
        "ce_id": str(event.event_id),
        "ce_type": "order.created",
        "ce_time": event.order.created_at.isoformat(),
        "ce_dataschema": event.schema.uri,
        "traceparent": TRACEPARENT,
    }


def test_a_row_stored_with_every_header_is_sent_as_it_was_stored() -> None:
    """Rows written before the compact form (or by another source) keep their own values."""
    _, message = _message()
    stored = wire_headers(message, "old-name")

    assert cloud_event_headers(stored, key=message.key, source="order-service") == stored


def test_only_trace_context_headers_are_carried_over() -> None:
    _, message = _message()

    assert "baggage" not in wire_headers(message, "order-service")


def test_the_key_is_the_order_id_and_the_value_is_the_order() -> None:
    event, message = _message()

    assert message.key == str(event.order.id)
    assert orjson.loads(message.payload)["id"] == str(event.order.id)
    assert ("ce_type", b"order.created") in kafka_headers(message.headers)


def test_an_orders_lane_is_stable_and_in_range() -> None:
    key = "0190a5b2-0000-7000-8000-000000000000"

    assert lane_of(key) == lane_of(key)
    assert all(0 <= lane_of(str(Order.place("x", 1).id)) < OUTBOX_LANES for _ in range(100))
