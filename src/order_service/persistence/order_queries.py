"""Reads of orders: by id, and keyset pages newest-first (ids are UUIDv7, so id order is time)."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from order_service.domain.order import Order, OrderStatus

_COLUMNS = "id, item, quantity, status, created_at, updated_at"


def _to_order(row: asyncpg.Record) -> Order:
    return Order(
        id=row["id"],
        item=row["item"],
        quantity=row["quantity"],
        status=OrderStatus(row["status"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def get_order(pool: asyncpg.Pool, order_id: UUID, *, timeout_s: float) -> Order | None:
    async with pool.acquire(timeout=timeout_s) as conn:
        row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM orders WHERE id = $1", order_id)
    return _to_order(row) if row else None


async def list_orders(
    pool: asyncpg.Pool,
    *,
    status: OrderStatus | None,
    after: UUID | None,
    limit: int,
    timeout_s: float,
) -> tuple[list[Order], UUID | None]:
    """One page, newest first, and the cursor of the next page (None on the last)."""
    async with pool.acquire(timeout=timeout_s) as conn:
        rows = await conn.fetch(
            f"""SELECT {_COLUMNS} FROM orders
                WHERE ($1::text IS NULL OR status = $1) AND ($2::uuid IS NULL OR id < $2)
                ORDER BY id DESC LIMIT $3""",
            status.value if status else None,
            after,
            limit + 1,
        )
    orders = [_to_order(row) for row in rows[:limit]]
    next_after = orders[-1].id if len(rows) > limit else None
    return orders, next_after
