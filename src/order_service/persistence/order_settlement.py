"""The worker's unit of work: one transaction per batch of `order.created` events (G5, G9),
deciding a stock-managed item's orders first come, first served.

In one transaction: the events' inbox rows (an event id already there is a redelivery and
changes nothing), the orders locked, the stock of their items locked, the decisions of
`domain.lifecycle.settle`, and the status changes, stock moves and status-event outbox rows
written by one statement. Either all of it commits or none of it; offsets are committed after.

First come, first served. One item's orders reach the worker in no useful order (keyed by
order id, they spread over every partition; a partition may lag, a batch may be redelivered).
Their order is `orders.placed_seq`, numbered by the database at insert: an order committed
before another was sent has the smaller number. So for each managed item with a pending order
in the batch, the transaction also takes every still-PENDING order of that item placed before
the batch's latest one, and decides them all in placement order. An order committed before a
later one was sent is visible to whichever transaction decides the later one, so it is decided
first, in that transaction or an earlier one. Its own event, when it comes, finds it settled
and only leaves its inbox row. Items without stock look for no earlier orders.

A batch takes at most `EARLIER_PER_ITEM` earlier orders of an item (a worker far behind on one
partition could otherwise sweep thousands in one statement, past its timeout). Beyond that the
earliest orders are settled first, each bounded slice in a transaction of its own — deciding
the earliest pending orders alone is always in order — and then the batch.

Locks are taken in one global order — inbox keys by event id, orders by id (the batch's and
the earlier ones in one statement), stock by item — and before anything is written, so workers
(several on one hot item, or two during a rebalance) and cancellations (an order, then its
stock) wait for each other instead of deadlocking, and a concurrent cancel is seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from uuid import UUID

import asyncpg

from order_service.domain.lifecycle import Settlement, settle
from order_service.domain.order import Order, OrderStatus
from order_service.domain.stock import Stock
from order_service.persistence.order_rows import order_of, stock_of
from order_service.persistence.outbox_message import OutboxMessage
from order_service.persistence.settlement_sql import (
    APPLY,
    BATCH_AND_EARLIER,
    EARLIEST_PENDING,
    LOCK_STOCK,
    apply_columns,
)

# Earlier orders of one item one statement takes; past it they are settled in slices first.
EARLIER_PER_ITEM = 1000


class Outcome(StrEnum):
    APPLIED = "applied"  # its order moved (or was already settled or cancelled): effect done
    DUPLICATE = "duplicate"  # the inbox had it: a redelivery, nothing changed
    UNKNOWN_ORDER = "unknown_order"  # no such order: dead-lettered by the worker


@dataclass(frozen=True, slots=True)
class Applied:
    outcome: Outcome
    # The order after this event, when the event moved it (status events, e2e latency).
    order: Order | None = None


@dataclass(frozen=True, slots=True)
class Settled:
    """What each event did, and the orders decided ahead of their own event (placed earlier
    than an order of the batch): their events, when they come, change nothing."""

    results: dict[UUID, Applied]
    ahead: list[Order] = field(default_factory=list)


# The status event for an order, given the order whose event the worker is processing: the
# order itself, or the batch's order that had an earlier one decided first (its trace).
StatusMessage = Callable[[Order, UUID], OutboxMessage]


async def settle_created(
    conn: asyncpg.Connection,
    events: Sequence[tuple[UUID, UUID]],
    status_message: StatusMessage,
    *,
    now: datetime,
    earlier_per_item: int = EARLIER_PER_ITEM,
) -> Settled:
    """(event_id, order_id) pairs, distinct event ids, in offset order → what each did."""
    if not events:
        return Settled({})
    ahead: list[Order] = []
    while True:
        try:
            async with conn.transaction():
                settled = await _settle_batch(conn, events, status_message, now, earlier_per_item)
            return Settled(settled.results, ahead + settled.ahead)
        except _TooManyEarlier as crowded:  # rolled back: the earliest first, then again
            for item, (upto, cause) in crowded.bounds.items():
                ahead += await _settle_earliest(
                    conn, item, upto, cause, status_message, now, earlier_per_item
                )


class _TooManyEarlier(Exception):
    def __init__(self, bounds: dict[str, tuple[int, UUID]]) -> None:
        self.bounds = bounds  # item → (the batch's latest place, that order's id)


async def _settle_batch(
    conn: asyncpg.Connection,
    events: Sequence[tuple[UUID, UUID]],
    status_message: StatusMessage,
    now: datetime,
    limit: int,
) -> Settled:
    rows = await conn.fetch(
        BATCH_AND_EARLIER, [e for e, _ in events], [o for _, o in events], limit
    )
    in_batch = sorted((r for r in rows if r["event_id"] is not None), key=lambda r: r["n"])
    latest = _latest_per_item(in_batch)
    crowded = {r["item"]: latest[r["item"]] for r in rows if r["crowded"] and r["item"] in latest}
    if crowded:
        raise _TooManyEarlier(crowded)
    fresh = [(r["event_id"], order_of(r)) for r in in_batch if r["fresh"]]
    batch_ids = {order.id for _, order in fresh}
    earlier = [order_of(r) for r in rows if r["event_id"] is None]
    places = {r["id"]: r["placed_seq"] for r in rows}
    pending = _pending_once(_in_placement_order([o for _, o in fresh] + earlier, places))
    managed = {r["item"] for r in rows if r["managed"]}
    settlement = await _decide(conn, pending, managed, now)

    def cause(order: Order) -> UUID:
        if order.id in batch_ids:
            return order.id
        return latest[order.item][1] if order.item in latest else order.id

    await _apply(conn, settlement, status_message, cause)
    moved = {order.id: order for order in settlement.changed}
    results = {event_id: Applied(Outcome.UNKNOWN_ORDER) for event_id, _ in events}
    for row in in_batch:
        results[row["event_id"]] = Applied(Outcome.DUPLICATE)
    for event_id, order in fresh:
        results[event_id] = Applied(Outcome.APPLIED, moved.get(order.id))
    return Settled(results, [o for o in settlement.changed if o.id not in batch_ids])


async def _settle_earliest(
    conn: asyncpg.Connection,
    item: str,
    upto: int,
    cause: UUID,
    status_message: StatusMessage,
    now: datetime,
    limit: int,
) -> list[Order]:
    """Settle `item`'s PENDING orders placed before `upto`, earliest first, `limit` at a time
    (the order at `upto` is the batch's: it is decided with its own event)."""
    decided: list[Order] = []
    while True:
        async with conn.transaction():
            rows = await conn.fetch(EARLIEST_PENDING, item, upto, limit)
            places = {r["id"]: r["placed_seq"] for r in rows}
            pending = _pending_once(_in_placement_order(map(order_of, rows), places))
            settlement = await _decide(conn, pending, {item}, now)
            await _apply(conn, settlement, status_message, lambda _: cause)
        decided += settlement.changed
        if len(rows) < limit:
            return decided


def _latest_per_item(rows: Iterable[asyncpg.Record]) -> dict[str, tuple[int, UUID]]:
    """Per managed item: the place and id of the batch's latest order."""
    latest: dict[str, tuple[int, UUID]] = {}
    for r in rows:
        if r["managed"] and r["placed_seq"] is not None:
            place = (r["placed_seq"], r["id"])
            latest[r["item"]] = max(latest.get(r["item"], place), place)
    return latest


def _in_placement_order(orders: Iterable[Order], places: dict[UUID, int | None]) -> list[Order]:
    # Orders that have no place (settled before 0005 numbered them) sort first: placed first.
    def place(order: Order) -> tuple[int, UUID]:
        seq = places.get(order.id)
        return (seq if seq is not None else -(2**63), order.id)

    return sorted(orders, key=place)


def _pending_once(orders: Iterable[Order]) -> list[Order]:
    """One decision per order, even if two fresh events name it: the first one decides."""
    seen: set[UUID] = set()
    pending = []
    for order in orders:
        if order.status is OrderStatus.PENDING and order.id not in seen:
            seen.add(order.id)
            pending.append(order)
    return pending


async def _decide(
    conn: asyncpg.Connection, pending: list[Order], managed: set[str], now: datetime
) -> Settlement:
    # The stock rows of managed items, locked (and read again under the lock); none to lock —
    # no round-trip — when no pending order is for a managed item.
    items = sorted({o.item for o in pending} & managed)
    stock: dict[str, Stock] = {}
    if items:
        stock = {r["item"]: stock_of(r) for r in await conn.fetch(LOCK_STOCK, items)}
    return settle(pending, stock, now=now)


async def _apply(
    conn: asyncpg.Connection,
    settlement: Settlement,
    status_message: StatusMessage,
    cause: Callable[[Order], UUID],
) -> None:
    if settlement.changed:
        messages = [status_message(order, cause(order)) for order in settlement.changed]
        await conn.fetchrow(
            APPLY, *apply_columns(settlement.changed, settlement.stock.values(), messages)
        )
