"""The Kafka message for an event: CloudEvents Kafka binding, binary mode, plus W3C trace context.

Built once, at write time, and stored in the outbox row, so the relay sends bytes verbatim.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import orjson

from order_service.domain.events import EVENT_SPEC_VERSION, ORDER_CREATED_TYPE, OrderCreated

# Fixed forever: an order's lane must not move, or two relays could reorder its events (G4).
OUTBOX_LANES = 64
CONTENT_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    event_id: str
    aggregate_id: str
    topic: str
    key: str
    payload: bytes
    headers: dict[str, str]
    lane: int


def lane_of(key: str) -> int:
    return zlib.crc32(key.encode()) % OUTBOX_LANES


def order_created_message(
    event: OrderCreated, *, topic: str, source: str, trace_headers: dict[str, str]
) -> OutboxMessage:
    key = str(event.order.id)
    headers = {
        "ce_specversion": EVENT_SPEC_VERSION,
        "ce_id": str(event.event_id),
        "ce_type": ORDER_CREATED_TYPE,
        "ce_source": f"/{source}",
        "ce_subject": key,
        "ce_time": event.occurred_at.isoformat(),
        "content-type": CONTENT_TYPE,
        **{k: v for k, v in trace_headers.items() if k in ("traceparent", "tracestate")},
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


def kafka_headers(headers: dict[str, str]) -> list[tuple[str, bytes]]:
    return [(name, value.encode()) for name, value in headers.items()]
