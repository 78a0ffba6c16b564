"""The order lifecycle's decisions, as pure functions over orders and stock.

`settle` is what the worker does with the orders of one batch: each still-PENDING order of a
stock-managed item is confirmed if its quantity is available (the units are reserved), else
rejected `out_of_stock`; an order of an item without stock is confirmed. Orders are taken in the
order given — the worker gives them in placement order (persistence.order_settlement) — so
several orders of one hot item share its stock first come, first served, in one transaction,
not one transaction per order.
`cancel` is what the api does on POST /orders/{id}/cancel.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from order_service.domain.order import Order, OrderStatus, RejectionReason
from order_service.domain.stock import Stock


@dataclass(frozen=True, slots=True)
class Settlement:
    """What a batch changes: the orders that moved, and the stock rows after the batch."""

    changed: list[Order] = field(default_factory=list)
    stock: dict[str, Stock] = field(default_factory=dict)


def settle(orders: Iterable[Order], stock: Mapping[str, Stock], *, now: datetime) -> Settlement:
    current = dict(stock)
    changed: list[Order] = []
    touched: set[str] = set()
    for order in orders:
        if order.status is not OrderStatus.PENDING:
            continue  # cancelled before the worker saw it: nothing to reserve
        item_stock = current.get(order.item)
        if item_stock is None:
            changed.append(order.confirm(reserved=False, now=now))
        elif item_stock.can_reserve(order.quantity):
            current[order.item] = item_stock.reserve(order.quantity)
            touched.add(order.item)
            changed.append(order.confirm(reserved=True, now=now))
        else:
            changed.append(order.reject(RejectionReason.OUT_OF_STOCK, now=now))
    return Settlement(changed, {item: current[item] for item in touched})


@dataclass(frozen=True, slots=True)
class Cancellation:
    order: Order
    stock: Stock | None  # the item's stock after the units went back, when they did
    changed: bool  # False: it was already cancelled (the answer is the same, nothing moves)


def cancel(order: Order, stock: Stock | None, *, now: datetime) -> Cancellation:
    """Raises InvalidTransition for a REJECTED order (409 at the edge)."""
    if order.status is OrderStatus.CANCELLED:
        return Cancellation(order, None, changed=False)
    was_reserved = order.status is OrderStatus.CONFIRMED and order.reserved
    cancelled = order.cancel(now=now)
    if was_reserved and stock is not None:
        return Cancellation(cancelled, stock.release(order.quantity), changed=True)
    return Cancellation(cancelled, None, changed=True)
