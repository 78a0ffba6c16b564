"""Reads of orders: by id, and keyset pages newest-first (ids are UUIDv7, so id order is time).

`owner` scopes every read to the caller's own orders (DESIGN.md §3); None reads every order
(scope `orders:admin`). An order that is not the caller's is indistinguishable from none.
Each combination of filters gets its own statement text, so every prepared statement keeps a
plan that uses its index (`ix_orders_owner_id`, `ix_orders_status_id`, the primary key).
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from order_service.domain.order import Order, OrderStatus
from order_service.persistence.order_rows import ORDER_COLUMNS, order_of


async def get_order(
    pool: asyncpg.Pool, order_id: UUID, *, owner: str | None, timeout_s: float
) -> Order | None:
    sql = f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"
    args: list[object] = [order_id]
    if owner is not None:
        sql += " AND owner = $2"
        args.append(owner)
    async with pool.acquire(timeout=timeout_s) as conn:
        row = await conn.fetchrow(sql, *args)
    return order_of(row) if row else None


async def list_orders(
    pool: asyncpg.Pool,
    *,
    owner: str | None,
    status: OrderStatus | None,
    after: UUID | None,
    limit: int,
    timeout_s: float,
) -> tuple[list[Order], UUID | None]:
    """One page, newest first, and the cursor of the next page (None on the last)."""
    filters: list[str] = []
    args: list[object] = []
    for column, value in (
        ("owner = ", owner),
        ("status = ", status.value if status else None),
        ("id < ", after),
    ):
        if value is not None:
            args.append(value)
            filters.append(f"{column}${len(args)}")
    where = f"WHERE {' AND '.join(filters)}" if filters else ""
    args.append(limit + 1)
    sql = f"SELECT {ORDER_COLUMNS} FROM orders {where} ORDER BY id DESC LIMIT ${len(args)}"
    async with pool.acquire(timeout=timeout_s) as conn:
        rows = await conn.fetch(sql, *args)
    orders = [order_of(row) for row in rows[:limit]]
    next_after = orders[-1].id if len(rows) > limit else None
    return orders, next_after
