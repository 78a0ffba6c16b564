"""Placing an order: domain object, its event, its idempotency record — one transaction."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from uuid import UUID

from opentelemetry import trace

from order_service.domain.events import OrderCreated
from order_service.domain.order import Order
from order_service.messaging.envelope import order_created_message
from order_service.observability.propagation import outgoing_trace_headers
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
    def __init__(
        self,
        writer: OrderWriter,
        *,
        topic: str,
        source: str,
        in_flight: InFlightKeys | None = None,
    ) -> None:
        self._writer = writer
        self._topic = topic
        self._source = source
        self._in_flight = in_flight or InFlightKeys()
        self._tracer = tracer()

    def _write_span(self, order: Order) -> AbstractContextManager[object]:
        """A CLIENT span for the write, when the request is traced at all (else no cost)."""
        if not trace.get_current_span().is_recording():
            return nullcontext()
        return self._tracer.start_as_current_span(
            "INSERT orders outbox",
            kind=trace.SpanKind.CLIENT,
            attributes={
                "db.system.name": "postgresql",
                "db.operation.name": "INSERT",
                "order.id": str(order.id),
            },
        )

    async def place(
        self,
        item: str,
        quantity: int,
        render: Renderer,
        idempotency: IdempotencyContext | None = None,
        *,
        owner: str,
        deadline: float,
        trace_headers: Mapping[str, str] | None = None,
    ) -> PlacementResult:
        """`deadline` (event-loop time) bounds the whole write, queueing included (G1)."""
        order = Order.place(item, quantity, owner=owner)
        fingerprint = ""
        if idempotency is not None:
            fingerprint = request_fingerprint(
                idempotency.method, idempotency.path, {"item": item, "quantity": quantity}
            )
        with self._write_span(order):
            # G7: the trace context at write time travels with the event through the outbox —
            # the request's own when no SDK is installed (a traced gateway's trace goes on).
            carrier = outgoing_trace_headers(trace_headers)
            message = order_created_message(
                OrderCreated.of(order),
                topic=self._topic,
                source=self._source,
                trace_headers=carrier,
            )
            status_code, body = render(order)
            claim = None
            if idempotency is not None:
                claim = IdempotencyClaim(
                    idempotency.principal, idempotency.key, fingerprint, status_code, body
                )
            guard = (
                self._in_flight.hold(idempotency.principal, idempotency.key)
                if idempotency
                else nullcontext()
            )
            with guard:
                outcome = await self._writer.write(
                    WriteRequest(order, message, claim), deadline=deadline
                )
        if outcome.created:
            return PlacementResult(order.id, status_code, body, replayed=False)
        assert outcome.earlier is not None
        stored = check_replay(outcome.earlier, fingerprint)
        return PlacementResult(stored.order_id, stored.status_code, stored.body, replayed=True)
