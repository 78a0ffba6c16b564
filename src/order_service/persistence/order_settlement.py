"""The worker's unit of work: one transaction per batch of `order.created` events (G5, G9).

In one transaction: the events' inbox rows (an event id already there is a redelivery and
changes nothing), the orders locked, the stock of their items locked, the decisions of
`domain.lifecycle.settle`, and the status changes, stock moves and status-event outbox rows
written by one statement. Either all of it commits or none of it; offsets are committed after.

Locks are taken in one global order — inbox keys by event id, orders by id, stock by item —
and before anything is written, so two workers (during a rebalance) or a worker and a
cancellation wait for each other instead of deadlocking, and a concurrent cancel is seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

import asyncpg
import orjson

from order_service.domain.lifecycle import settle
from order_service.domain.order import Order, OrderStatus
from order_service.domain.stock import Stock
from order_service.persistence.order_rows import ORDER_COLUMNS, STOCK_COLUMNS, order_of, stock_of
from order_service.persistence.outbox_message import OutboxMessage

_INBOX_AND_LOCK = f"""
WITH ev AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY AS t(event_id, order_id, n)
), fresh AS (
    INSERT INTO inbox (event_id, order_id)
    SELECT ev.event_id, ev.order_id FROM ev
    WHERE EXISTS (SELECT 1 FROM orders o WHERE o.id = ev.order_id)
    ORDER BY ev.event_id
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
)
SELECT ev.event_id, ev.n, ev.event_id IN (SELECT event_id FROM fresh) AS fresh,
       s.item IS NOT NULL AS managed,
       {", ".join(f"o.{c.strip()}" for c in ORDER_COLUMNS.split(","))}
FROM ev JOIN orders o ON o.id = ev.order_id LEFT JOIN stock s ON s.item = o.item
ORDER BY o.id
FOR UPDATE OF o
"""

_LOCK_STOCK = f"""
SELECT {STOCK_COLUMNS} FROM stock WHERE item = ANY($1::text[]) ORDER BY item FOR UPDATE
"""

# Values computed from the rows locked above: absolute, so the statement order inside does not
# matter. The CHECK (available >= 0) would refuse an oversell even if the arithmetic were wrong.
_APPLY = """
WITH moved AS (
    UPDATE orders o
    SET status = c.status, rejection_reason = c.rejection_reason, reserved = c.reserved,
        updated_at = c.updated_at
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bool[], $5::timestamptz[])
        AS c(id, status, rejection_reason, reserved, updated_at)
    WHERE o.id = c.id
    RETURNING 1
), stocked AS (
    UPDATE stock s SET available = n.available, reserved = n.reserved, updated_at = now()
    FROM unnest($6::text[], $7::int[], $8::int[]) AS n(item, available, reserved)
    WHERE s.item = n.item
    RETURNING 1
), published AS (
    INSERT INTO outbox (event_id, aggregate_id, topic, message_key, payload, headers, lane)
    SELECT e.event_id, e.aggregate_id, e.topic, e.message_key, e.payload, e.headers::jsonb,
           e.lane
    FROM unnest($9::uuid[], $10::uuid[], $11::text[], $12::text[], $13::bytea[], $14::text[],
                $15::smallint[])
        AS e(event_id, aggregate_id, topic, message_key, payload, headers, lane)
    RETURNING 1
)
SELECT (SELECT count(*) FROM moved) AS moved, (SELECT count(*) FROM stocked) AS stocked,
       (SELECT count(*) FROM published) AS published
"""


class Outcome(StrEnum):
    APPLIED = "applied"  # its order moved (or was already cancelled): the effect happened
    DUPLICATE = "duplicate"  # the inbox had it: a redelivery, nothing changed
    UNKNOWN_ORDER = "unknown_order"  # no such order: dead-lettered by the worker


@dataclass(frozen=True, slots=True)
class Applied:
    outcome: Outcome
    # The order after this event, when the event moved it (status events, e2e latency).
    order: Order | None = None


StatusMessage = Callable[[Order], OutboxMessage]


async def settle_created(
    conn: asyncpg.Connection,
    events: Sequence[tuple[UUID, UUID]],
    status_message: StatusMessage,
    *,
    now: datetime,
) -> dict[UUID, Applied]:
    """(event_id, order_id) pairs, distinct event ids, in offset order → what each did."""
    if not events:
        return {}
    async with conn.transaction():
        rows = await conn.fetch(_INBOX_AND_LOCK, [e for e, _ in events], [o for _, o in events])
        rows = sorted(rows, key=lambda r: r["n"])  # decisions in offset order
        fresh = [(r["event_id"], order_of(r)) for r in rows if r["fresh"]]
        pending = _pending_once(order for _, order in fresh)
        # The stock rows of managed items, locked (and read again under the lock); none to
        # lock — no round-trip — when no pending order is for a managed item.
        managed = sorted({r["item"] for r in rows if r["fresh"] and r["managed"]})
        stock: dict[str, Stock] = {}
        if managed and pending:
            stock = {r["item"]: stock_of(r) for r in await conn.fetch(_LOCK_STOCK, managed)}
        settlement = settle(pending, stock, now=now)
        if settlement.changed:
            await conn.fetchrow(
                _APPLY,
                *_apply_columns(settlement.changed, settlement.stock.values(), status_message),
            )
    moved = {order.id: order for order in settlement.changed}
    results = {event_id: Applied(Outcome.UNKNOWN_ORDER) for event_id, _ in events}
    for row in rows:
        results[row["event_id"]] = Applied(Outcome.DUPLICATE)
    for event_id, order in fresh:
        results[event_id] = Applied(Outcome.APPLIED, moved.get(order.id))
    return results


def _pending_once(orders: Iterable[Order]) -> list[Order]:
    """One decision per order, even if two fresh events name it: the first one decides."""
    seen: set[UUID] = set()
    pending = []
    for order in orders:
        if order.status is OrderStatus.PENDING and order.id not in seen:
            seen.add(order.id)
            pending.append(order)
    return pending


def _apply_columns(
    changed: Sequence[Order], stock: Iterable[Stock], status_message: StatusMessage
) -> list[list[object]]:
    messages = [status_message(order) for order in changed]
    stock_rows = list(stock)
    return [
        [o.id for o in changed],
        [o.status.value for o in changed],
        [o.rejection_reason.value if o.rejection_reason else None for o in changed],
        [o.reserved for o in changed],
        [o.updated_at for o in changed],
        [s.item for s in stock_rows],
        [s.available for s in stock_rows],
        [s.reserved for s in stock_rows],
        [UUID(m.event_id) for m in messages],
        [UUID(m.aggregate_id) for m in messages],
        [m.topic for m in messages],
        [m.key for m in messages],
        [m.payload for m in messages],
        [orjson.dumps(m.headers).decode() for m in messages],
        [m.lane for m in messages],
    ]
