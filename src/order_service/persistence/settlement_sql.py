"""The statements of the worker's settlement (persistence/order_settlement.py) and the columns
its one write takes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from uuid import UUID

import orjson

from order_service.domain.order import Order
from order_service.domain.stock import Stock
from order_service.persistence.order_rows import ORDER_COLUMNS, STOCK_COLUMNS
from order_service.persistence.outbox_message import OutboxMessage

_O_COLUMNS = ", ".join(f"o.{c.strip()}" for c in ORDER_COLUMNS.split(","))

# $1 event ids, $2 their order ids (offset order), $3 earlier orders per item at most.
# `batch`: each event's order, read once (its item's stock row too); `due`: each managed item
# with a PENDING order in the batch, and the batch's latest place for it; `earlier`: that
# item's other PENDING orders up to there, earliest first (the partial index
# ix_orders_pending_item_placed). Items without stock have no
# `due` row: for them this is the plain batch lock, with as many index probes as before.
# `crowded`: the item's earlier orders may go on past the limit. Rows: one per (event,
# order), and one per earlier order not in the batch (event_id NULL); all locked in id order.
BATCH_AND_EARLIER = f"""
WITH ev AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY AS t(event_id, order_id, n)
), batch AS (
    SELECT ev.event_id, ev.order_id, ev.n, o.item, o.status, o.placed_seq,
           s.item IS NOT NULL AS managed
    FROM ev JOIN orders o ON o.id = ev.order_id LEFT JOIN stock s ON s.item = o.item
), fresh AS (
    INSERT INTO inbox (event_id, order_id)
    SELECT event_id, order_id FROM batch
    ORDER BY event_id
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
), due AS (
    SELECT item, max(placed_seq) AS upto FROM batch
    WHERE managed AND status = 'PENDING'
    GROUP BY item
), earlier AS (
    SELECT due.item, e.id FROM due CROSS JOIN LATERAL (
        SELECT p.id FROM orders p
        WHERE p.item = due.item AND p.status = 'PENDING' AND p.placed_seq <= due.upto
          AND p.id NOT IN (SELECT order_id FROM batch)
        ORDER BY p.placed_seq
        LIMIT $3
    ) e
)
SELECT b.event_id, b.n, b.event_id IN (SELECT event_id FROM fresh) AS fresh,
       coalesce(b.managed, true) AS managed, o.placed_seq,
       o.item IN (SELECT item FROM earlier GROUP BY item HAVING count(*) >= $3) AS crowded,
       {_O_COLUMNS}
FROM orders o
LEFT JOIN batch b ON b.order_id = o.id
WHERE o.id IN (SELECT order_id FROM batch UNION SELECT id FROM earlier)
ORDER BY o.id
FOR UPDATE OF o
"""

# $1 item, $2 place: its earliest $3 PENDING orders placed before, locked in id order.
EARLIEST_PENDING = f"""
SELECT o.placed_seq, {_O_COLUMNS}
FROM orders o
WHERE o.id IN (
    SELECT p.id FROM orders p
    WHERE p.item = $1 AND p.status = 'PENDING' AND p.placed_seq < $2
    ORDER BY p.placed_seq
    LIMIT $3
)
ORDER BY o.id
FOR UPDATE OF o
"""

LOCK_STOCK = f"""
SELECT {STOCK_COLUMNS} FROM stock WHERE item = ANY($1::text[]) ORDER BY item FOR UPDATE
"""

# Values computed from the rows locked above: absolute, so the statement order inside does not
# matter. The CHECK (available >= 0) would refuse an oversell even if the arithmetic were wrong.
# The outbox rows go in the order given: decisions in placement order, ids in that order.
APPLY = """
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
                $15::smallint[]) WITH ORDINALITY
        AS e(event_id, aggregate_id, topic, message_key, payload, headers, lane, n)
    ORDER BY e.n
    RETURNING 1
)
SELECT (SELECT count(*) FROM moved) AS moved, (SELECT count(*) FROM stocked) AS stocked,
       (SELECT count(*) FROM published) AS published
"""


def apply_columns(
    changed: Sequence[Order], stock: Iterable[Stock], messages: Sequence[OutboxMessage]
) -> list[list[object]]:
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
