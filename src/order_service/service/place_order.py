"""Placing an order: domain object, its event, its idempotency record — one transaction."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from uuid import UUID

from opentelemetry import propagate, trace

from order_service.domain.events import OrderCreated
from order_service.domain.order import Order
from order_service.messaging.envelope import order_created_message
from order_service.observability.tracing import tracer
from order_service.persistence.order_writer import IdempotencyClaim, OrderWriter, WriteRequest
from order_service.service.idempotency import InFlightKeys, check_replay, request_fingerprint

# Renders the response for an order: (status code, JSON body). Stored for idempotent replays.
Renderer = Callable[[Order], tuple[int, bytes]]


@dataclass(frozen=True, slots=True)
class PlacementResult:
    order_id: UUID
    status_code: int
    body: bytes
    replayed: bool


@dataclass(frozen=True, slots=True)
class IdempotencyContext:
    principal: str
    key: str
    method: str
    path: str


class OrderPlacement:
    def __init__(self, writer: OrderWriter, *, topic: str, source: str) -> None:
        self._writer = writer
        self._topic = topic
        self._source = source
        self._in_flight = InFlightKeys()

    async def place(
        self,
        item: str,
        quantity: int,
        render: Renderer,
        idempotency: IdempotencyContext | None = None,
    ) -> PlacementResult:
        order = Order.place(item, quantity)
        event = OrderCreated.of(order)
        carrier: dict[str, str] = {}
        with tracer().start_as_current_span(
            "INSERT orders outbox", kind=trace.SpanKind.CLIENT
        ) as span:
            span.set_attribute("db.system.name", "postgresql")
            span.set_attribute("db.operation.name", "INSERT")
            span.set_attribute("order.id", str(order.id))
            # G7: the trace context at write time travels with the event through the outbox.
            propagate.inject(carrier)
            message = order_created_message(
                event, topic=self._topic, source=self._source, trace_headers=carrier
            )
            status_code, body = render(order)
            claim = None
            fingerprint = ""
            if idempotency is not None:
                fingerprint = request_fingerprint(
                    idempotency.method,
                    idempotency.path,
                    {"item": item, "quantity": quantity},
                )
                claim = IdempotencyClaim(
                    idempotency.principal, idempotency.key, fingerprint, status_code, body
                )
            guard = (
                self._in_flight.hold(idempotency.principal, idempotency.key)
                if idempotency
                else nullcontext()
            )
            with guard:
                outcome = await self._writer.write(WriteRequest(order, message, claim))
        if outcome.created:
            return PlacementResult(order.id, status_code, body, replayed=False)
        assert outcome.earlier is not None
        stored = check_replay(outcome.earlier, fingerprint)
        return PlacementResult(stored.order_id, stored.status_code, stored.body, replayed=True)
