"""The worker's effects for a batch: reservation, transition and status event, once per event.

The transaction itself is `persistence.order_settlement`; here it is given the status events
to write (CloudEvents, keyed by order id, carrying the trace on) and its outcome is counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from uuid import UUID

import asyncpg

from order_service.domain.events import OrderStatusChanged
from order_service.domain.order import Order, OrderStatus, utcnow
from order_service.messaging.envelope import event_message
from order_service.observability.metrics import (
    END_TO_END_LATENCY,
    ORDERS_CONFIRMED,
    ORDERS_REJECTED,
    STOCK_RESERVED_UNITS,
)
from order_service.persistence.order_settlement import Applied, Outcome, settle_created
from order_service.persistence.outbox_message import OutboxMessage


class OrderEffects:
    def __init__(
        self, pool: asyncpg.Pool, *, status_topic: str, source: str, acquire_timeout_s: float
    ) -> None:
        self._pool = pool
        # Bounds the wait for a connection and its release: a hung database costs a timeout.
        self._acquire_timeout_s = acquire_timeout_s
        self._topic = status_topic
        self._source = source

    async def apply(
        self,
        events: Sequence[tuple[UUID, UUID]],
        trace_headers: Mapping[UUID, dict[str, str]],
    ) -> dict[UUID, Applied]:
        """(event_id, order_id) in offset order; `trace_headers` by order id."""

        def status_message(order: Order, cause: UUID) -> OutboxMessage:
            # An order decided ahead of its own event carries the trace of the batch's order
            # that had it decided first: the processing that did it.
            return event_message(
                OrderStatusChanged.of(order),
                topic=self._topic,
                source=self._source,
                trace_headers=trace_headers.get(cause, {}),
            )

        async with self._pool.acquire(timeout=self._acquire_timeout_s) as conn:
            settled = await settle_created(conn, events, status_message, now=utcnow())
        now = datetime.now(UTC)
        for order in settled.ahead:
            count_decision(order, now)
        return settled.results


def count_decision(order: Order, now: datetime) -> None:
    if order.status is OrderStatus.CONFIRMED:
        ORDERS_CONFIRMED.labels(stock="reserved" if order.reserved else "unmanaged").inc()
        if order.reserved:
            STOCK_RESERVED_UNITS.inc(order.quantity)
    elif order.status is OrderStatus.REJECTED and order.rejection_reason is not None:
        ORDERS_REJECTED.labels(reason=order.rejection_reason.value).inc()
    END_TO_END_LATENCY.observe(max(0.0, (now - order.created_at).total_seconds()))


def account(results: Mapping[UUID, Applied]) -> tuple[int, int]:
    """Count what the batch did; returns (applied, duplicates). Orders decided ahead of their
    own event were counted when decided (OrderEffects.apply): their event counts as applied."""
    now = datetime.now(UTC)
    applied = duplicates = 0
    for result in results.values():
        if result.outcome is Outcome.DUPLICATE:
            duplicates += 1
            continue
        if result.outcome is not Outcome.APPLIED:
            continue
        applied += 1
        if result.order is not None:  # None: cancelled or decided before: nothing to count
            count_decision(result.order, now)
    return applied, duplicates
