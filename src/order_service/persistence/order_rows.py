"""Rows of `orders` and `stock` as domain objects, and the column lists that read them."""

from __future__ import annotations

import asyncpg

from order_service.domain.order import ANONYMOUS_OWNER, Order, OrderStatus, RejectionReason
from order_service.domain.stock import Stock

ORDER_COLUMNS = (
    "id, item, quantity, status, rejection_reason, reserved, owner, created_at, updated_at"
)
STOCK_COLUMNS = "item, available, reserved"


def order_of(row: asyncpg.Record) -> Order:
    reason = row["rejection_reason"]
    return Order(
        id=row["id"],
        item=row["item"],
        quantity=row["quantity"],
        status=OrderStatus(row["status"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        rejection_reason=RejectionReason(reason) if reason else None,
        owner=row["owner"] or ANONYMOUS_OWNER,
        reserved=bool(row["reserved"]),
    )


def stock_of(row: asyncpg.Record) -> Stock:
    return Stock(item=row["item"], available=row["available"], reserved=row["reserved"])
