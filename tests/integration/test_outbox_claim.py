"""The relay's claim costs about what it returns, however many published rows the table keeps
and however stale the planner's statistics are (a backlog being drained)."""

from __future__ import annotations

import asyncpg
import orjson
import pytest

from order_service.messaging.outbox_store import _CLAIM_ROWS, claim_batch
from order_service.persistence.outbox_message import OUTBOX_LANES

pytestmark = pytest.mark.integration

PUBLISHED = 20_000
WAITING = 100

_ROWS = """
INSERT INTO outbox (event_id, aggregate_id, topic, message_key, payload, headers, lane)
SELECT gen_random_uuid(), a, 'orders.created', a::text, convert_to(repeat('x', 200), 'UTF8'),
       '{"ce_type": "order.created"}'::jsonb, n % 64
FROM (SELECT n, gen_random_uuid() AS a FROM generate_series(1, $1) AS n) AS s
"""


async def _buffers_of_claim(db: asyncpg.Connection, batch: int) -> tuple[int, int]:
    """(rows returned, shared buffers touched) of one claim of every lane's rows."""
    lanes = list(range(OUTBOX_LANES))
    share = -(-batch // len(lanes))
    async with db.transaction():
        raw = await db.fetchval(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + _CLAIM_ROWS, lanes, share, batch
        )
    plan = orjson.loads(raw)[0]["Plan"]
    return int(plan["Actual Rows"]), int(plan["Shared Hit Blocks"] + plan["Shared Read Blocks"])


async def test_a_claim_reads_about_what_it_returns_past_many_published_rows(
    db: asyncpg.Connection,
) -> None:
    """Catches a claim that reads the waiting rows of all lanes in id order through the primary
    key (the query before this test): it read past every published row still kept — 28,117
    buffers for these 100 rows (this claim: 415), 0.36 s per claim half-way through a
    100,000-row backlog."""
    await db.execute(_ROWS, PUBLISHED + WAITING)
    # The statistics say everything waits (a backlog); then the relay publishes most of it.
    await db.execute("ANALYZE outbox")
    await db.execute(
        "UPDATE outbox SET published_at = now() WHERE id <= (SELECT max(id) FROM outbox) - $1",
        WAITING,
    )
    # A running relay's claim meets the index entries of its previous batch once, and marks
    # them dead for every later claim; this first claim does it for all of them.
    async with db.transaction():
        first = await claim_batch(db, max_lanes=OUTBOX_LANES, batch_size=500)
    assert len(first) == WAITING

    rows, buffers = await _buffers_of_claim(db, 500)

    assert rows == WAITING
    assert buffers < 10 * WAITING, f"{buffers} buffers read to claim {rows} rows"
