"""The Kafka message for an event: CloudEvents Kafka binding, binary mode, plus W3C trace context.

Built once, at write time, and stored in the outbox row, so the relay sends bytes verbatim.
"""

from __future__ import annotations

from typing import Protocol
from uuid import UUID

import orjson

from order_service.domain.events import EVENT_SPEC_VERSION, OrderCreated, SchemaVersion
from order_service.domain.order import Order
from order_service.persistence.outbox_message import OutboxMessage, lane_of

CONTENT_TYPE = "application/json"
TRACE_HEADERS = ("traceparent", "tracestate")


class Event(Protocol):
    """What every domain event offers (OrderCreated, OrderStatusChanged)."""

    @property
    def event_id(self) -> UUID: ...
    @property
    def order(self) -> Order: ...
    @property
    def type(self) -> str: ...
    @property
    def schema(self) -> SchemaVersion: ...

    def payload(self) -> dict[str, object]: ...


def event_message(
    event: Event, *, topic: str, source: str, trace_headers: dict[str, str]
) -> OutboxMessage:
    """Key = order id: every event of an order goes to one partition, in commit order (G4)."""
    key = str(event.order.id)
    headers = {
        "ce_specversion": EVENT_SPEC_VERSION,
        "ce_id": str(event.event_id),
        "ce_type": event.type,
        "ce_source": f"/{source}",
        "ce_subject": key,
        "ce_time": event.order.updated_at.isoformat(),
        "ce_dataschema": event.schema.uri,
        "content-type": CONTENT_TYPE,
        **{k: v for k, v in trace_headers.items() if k in TRACE_HEADERS},
    }
    return OutboxMessage(
        event_id=str(event.event_id),
        aggregate_id=key,
        topic=topic,
        key=key,
        payload=orjson.dumps(event.payload()),
        headers=headers,
        lane=lane_of(key),
    )


def order_created_message(
    event: OrderCreated, *, topic: str, source: str, trace_headers: dict[str, str]
) -> OutboxMessage:
    return event_message(event, topic=topic, source=source, trace_headers=trace_headers)


def kafka_headers(headers: dict[str, str]) -> list[tuple[str, bytes]]:
    return [(name, value.encode()) for name, value in headers.items()]
