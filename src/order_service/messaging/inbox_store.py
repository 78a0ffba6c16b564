"""The worker's SQL: record event ids in the inbox and apply their effect, in one round-trip.

The inbox insert and the status change are one statement in one transaction (G5): an event id
already in the inbox is a redelivery and changes nothing; an order id unknown to `orders` is
reported back so the worker can dead-letter it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

import asyncpg

_APPLY = """
WITH ev AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[]) AS t(event_id, order_id)
), known AS (
    SELECT ev.event_id, ev.order_id FROM ev JOIN orders o ON o.id = ev.order_id
), fresh AS (
    INSERT INTO inbox (event_id, order_id)
    SELECT event_id, order_id FROM known
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id, order_id
), confirmed AS (
    UPDATE orders SET status = 'CONFIRMED', updated_at = now()
    WHERE id IN (SELECT order_id FROM fresh) AND status = 'PENDING'
    RETURNING id, created_at
)
SELECT ev.event_id,
       k.event_id IS NOT NULL AS known,
       f.event_id IS NOT NULL AS fresh,
       c.created_at AS confirmed_created_at
FROM ev
LEFT JOIN known k ON k.event_id = ev.event_id
LEFT JOIN fresh f ON f.event_id = ev.event_id
LEFT JOIN confirmed c ON c.id = f.order_id
"""


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    UNKNOWN_ORDER = "unknown_order"


@dataclass(frozen=True, slots=True)
class Applied:
    outcome: Outcome
    # Set when this event moved the order PENDING → CONFIRMED (for end-to-end latency).
    confirmed_created_at: datetime | None


async def apply_order_created(
    conn: asyncpg.Connection, events: list[tuple[UUID, UUID]]
) -> dict[UUID, Applied]:
    """(event_id, order_id) pairs with distinct event ids → what happened to each, committed."""
    if not events:
        return {}
    async with conn.transaction():
        rows = await conn.fetch(_APPLY, [e for e, _ in events], [o for _, o in events])
    results: dict[UUID, Applied] = {}
    for row in rows:
        if not row["known"]:
            outcome = Outcome.UNKNOWN_ORDER
        elif row["fresh"]:
            outcome = Outcome.APPLIED
        else:
            outcome = Outcome.DUPLICATE
        results[row["event_id"]] = Applied(outcome, row["confirmed_created_at"])
    return results
