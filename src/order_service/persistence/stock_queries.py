"""Stock levels: set by PUT /stock/{item} (an upsert), read by GET /stock/{item}.

Setting a level replaces `available` and keeps `reserved` (units held by confirmed orders):
with G9 that is the only change to `available + reserved`. The row lock of the upsert
serialises it with the worker's reservations and with cancellations.
"""

from __future__ import annotations

import asyncpg

from order_service.domain.stock import Stock
from order_service.persistence.order_rows import STOCK_COLUMNS, stock_of

_SET = f"""
INSERT INTO stock (item, available) VALUES ($1, $2)
ON CONFLICT (item) DO UPDATE SET available = EXCLUDED.available, updated_at = now()
RETURNING {STOCK_COLUMNS}
"""


async def set_stock(pool: asyncpg.Pool, item: str, available: int, *, timeout_s: float) -> Stock:
    async with pool.acquire(timeout=timeout_s) as conn:
        row = await conn.fetchrow(_SET, item, available)
    assert row is not None
    return stock_of(row)


async def get_stock(pool: asyncpg.Pool, item: str, *, timeout_s: float) -> Stock | None:
    async with pool.acquire(timeout=timeout_s) as conn:
        row = await conn.fetchrow(f"SELECT {STOCK_COLUMNS} FROM stock WHERE item = $1", item)
    return stock_of(row) if row else None
