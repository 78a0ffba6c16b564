"""Cancelling an order: POST /orders/{id}/cancel (DESIGN.md §3).

PENDING or CONFIRMED → CANCELLED (a confirmed order's units go back to stock), cancelled again
→ the same answer, REJECTED → InvalidTransition (409), unknown or not the caller's →
OrderNotFound (404). The status event `order.cancelled` is written to the outbox in the same
transaction. The whole operation is bounded by the request's deadline; a 503 says whether the
cancellation was written (`not_written`) or its COMMIT's answer was lost (`unknown`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID

import asyncpg

from order_service.domain.errors import NotWritten, OrderNotFound, OutcomeUnknown
from order_service.domain.events import OrderStatusChanged
from order_service.domain.order import Order, utcnow
from order_service.messaging.envelope import event_message
from order_service.observability.metrics import CANCELLATIONS, DB_UNAVAILABLE
from order_service.observability.propagation import outgoing_trace_headers
from order_service.persistence.database import discard_connection, is_unavailable
from order_service.persistence.order_batch import IdempotencyClaim
from order_service.persistence.order_cancel import (
    CancelRequest,
    KeyTakenConcurrently,
    cancel_order,
    stored_response,
)
from order_service.persistence.outbox_message import OutboxMessage
from order_service.service.idempotency import InFlightKeys, check_replay, request_fingerprint
from order_service.service.place_order import IdempotencyContext, PlacementResult

# Renders the reply for the order after the cancellation: (status code, JSON body).
Renderer = Callable[[Order], tuple[int, bytes]]


class OrderCancellation:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        status_topic: str,
        source: str,
        acquire_timeout_s: float,
        in_flight: InFlightKeys,
    ) -> None:
        self._pool = pool
        self._topic = status_topic
        self._source = source
        self._acquire_timeout_s = acquire_timeout_s
        self._in_flight = in_flight

    async def cancel(
        self,
        order_id: UUID,
        *,
        owner: str | None,
        render: Renderer,
        idempotency: IdempotencyContext | None,
        trace_headers: Mapping[str, str] | None,
        deadline: float,
    ) -> PlacementResult:
        """`trace_headers`: the request's; the event gets the trace context as placing an
        order gives it (G7) — the api span's with an exporter, never the headers as sent."""
        carrier = outgoing_trace_headers(trace_headers)
        fingerprint = ""
        if idempotency is not None:
            fingerprint = request_fingerprint(idempotency.method, idempotency.path, {})
            with self._in_flight.hold(idempotency.principal, idempotency.key):
                return await self._bounded(
                    order_id, owner, render, idempotency, fingerprint, carrier, deadline
                )
        return await self._bounded(order_id, owner, render, None, "", carrier, deadline)

    async def _bounded(
        self,
        order_id: UUID,
        owner: str | None,
        render: Renderer,
        idempotency: IdempotencyContext | None,
        fingerprint: str,
        trace_headers: dict[str, str],
        deadline: float,
    ) -> PlacementResult:
        loop = asyncio.get_running_loop()
        committing = False

        def commit_sent() -> None:
            nonlocal committing
            committing = True

        def status_message(order: Order) -> OutboxMessage:
            return event_message(
                OrderStatusChanged.of(order),
                topic=self._topic,
                source=self._source,
                trace_headers=trace_headers,
            )

        def claim(order: Order, body: bytes) -> IdempotencyClaim:
            assert idempotency is not None
            status, _ = render(order)
            return IdempotencyClaim(
                idempotency.principal, idempotency.key, fingerprint, status, body
            )

        key = (idempotency.principal, idempotency.key) if idempotency else None
        try:
            conn = await self._pool.acquire(
                timeout=max(0.01, min(self._acquire_timeout_s, deadline - loop.time()))
            )
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            DB_UNAVAILABLE.labels(op="cancel").inc()
            raise NotWritten("the database is unavailable") from exc
        work = asyncio.ensure_future(
            cancel_order(
                conn,
                CancelRequest(
                    order_id,
                    owner,
                    render=lambda order: render(order)[1],
                    status_message=status_message,
                    clock=utcnow,
                    idempotency=key,
                    claim=claim if idempotency else None,
                ),
                on_commit=commit_sent,
            )
        )
        try:
            try:
                # shield + terminate: a hung database must not hold the answer past the
                # deadline, and closing the connection aborts whatever was not committed.
                outcome = await asyncio.wait_for(asyncio.shield(work), deadline - loop.time())
            except KeyTakenConcurrently:
                assert idempotency is not None
                stored = await stored_response(conn, idempotency.principal, idempotency.key)
                if stored is None:
                    raise NotWritten("idempotency record changed concurrently; retry") from None
                replayed = check_replay(stored, fingerprint)
                return PlacementResult(
                    replayed.order_id, replayed.status_code, replayed.body, replayed=True
                )
        except Exception as exc:
            if not (is_unavailable(exc) or isinstance(exc, TimeoutError)):
                raise
            discard_connection(conn)
            work.add_done_callback(_consume)
            DB_UNAVAILABLE.labels(op="cancel").inc()
            if committing:
                raise OutcomeUnknown(
                    "the database did not answer the cancellation's commit", order_id
                ) from exc
            raise NotWritten("the database did not take the cancellation in time") from exc
        finally:
            await self._pool.release(conn)
        if outcome.earlier is not None:
            stored = check_replay(outcome.earlier, fingerprint)
            return PlacementResult(stored.order_id, stored.status_code, stored.body, replayed=True)
        if outcome.order is None:
            raise OrderNotFound(order_id)
        if outcome.changed:
            CANCELLATIONS.inc()
        status, body = render(outcome.order)
        return PlacementResult(outcome.order.id, status, body, replayed=False)


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: the connection was closed under it on purpose
