"""What the database says after our stack ran: drained yet? and accepted -> confirmed latency."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True)
class Drain:
    rows: int
    confirmed: int
    drained: bool
    waited_s: float


async def db_now(dsn: str) -> datetime:
    conn = await asyncpg.connect(dsn)
    try:
        value: datetime = await conn.fetchval("SELECT clock_timestamp()")
        return value
    finally:
        await conn.close()


async def wait_drained(
    dsn: str, *, since_monotonic: float, timeout_s: float, poll_s: float = 0.05
) -> Drain:
    """Poll until every order row is CONFIRMED; `waited_s` counts from `since_monotonic`."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            row = await conn.fetchrow(
                "SELECT count(*) AS rows, count(*) FILTER (WHERE status = 'CONFIRMED') AS ok "
                "FROM orders"
            )
            assert row is not None
            rows, confirmed = int(row["rows"]), int(row["ok"])
            waited = time.monotonic() - since_monotonic
            if rows == confirmed:
                return Drain(rows, confirmed, True, waited)
            if time.monotonic() >= deadline:
                return Drain(rows, confirmed, False, waited)
            await asyncio.sleep(poll_s)
    finally:
        await conn.close()


@dataclass(frozen=True)
class EndToEnd:
    count: int
    p50_s: float | None
    p99_s: float | None


async def end_to_end(dsn: str, since: datetime, until: datetime) -> EndToEnd:
    """Accepted -> confirmed for orders created in the measured window (updated_at is set
    when the worker confirms the order)."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            """
            SELECT count(*) AS n,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY lag) AS p50,
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY lag) AS p99
            FROM (SELECT extract(epoch FROM updated_at - created_at) AS lag
                  FROM orders
                  WHERE status = 'CONFIRMED' AND created_at >= $1 AND created_at < $2) AS w
            """,
            since,
            until,
        )
    finally:
        await conn.close()
    assert row is not None
    p50, p99 = row["p50"], row["p99"]
    return EndToEnd(
        int(row["n"]),
        float(p50) if p50 is not None else None,
        float(p99) if p99 is not None else None,
    )
