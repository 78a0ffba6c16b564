"""The cancellation's transaction: the order locked, its units back to stock, the status event
in the outbox and the idempotency record — committed together, or none of them (G1, G9).

The order row is locked first, then its item's stock, as the worker does: a cancel racing the
worker's reservation waits for it (or the worker waits for the cancel), so a cancelled order
never keeps a reservation and no unit is lost, whichever commits first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg
import orjson

from order_service.domain.lifecycle import cancel
from order_service.domain.order import Order, OrderStatus
from order_service.persistence.order_batch import IdempotencyClaim, StoredResponse
from order_service.persistence.order_rows import ORDER_COLUMNS, STOCK_COLUMNS, order_of, stock_of
from order_service.persistence.outbox_message import OutboxMessage

_STORED = """
SELECT request_hash, order_id, status_code, response_body FROM idempotency_keys
WHERE principal = $1 AND idem_key = $2
"""
_APPLY = """
WITH moved AS (
    UPDATE orders SET status = $2, updated_at = $3 WHERE id = $1 RETURNING 1
), stocked AS (
    UPDATE stock SET available = $5, reserved = $6, updated_at = now()
    WHERE item = $4 AND $5::int IS NOT NULL
    RETURNING 1
)
INSERT INTO outbox (event_id, aggregate_id, topic, message_key, payload, headers, lane)
VALUES ($7, $1, $8, $9, $10, $11::jsonb, $12)
"""
_CLAIM = """
INSERT INTO idempotency_keys
    (principal, idem_key, request_hash, order_id, status_code, response_body)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (principal, idem_key) DO NOTHING
RETURNING 1
"""


class KeyTakenConcurrently(Exception):
    """Another request with the same key committed first: replay its response instead."""


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    order: Order | None  # None: no such order (or not the caller's)
    changed: bool = False  # it moved to CANCELLED now (False: already cancelled, or replayed)
    earlier: StoredResponse | None = None  # the key's first response, to replay


Render = Callable[[Order], bytes]
StatusMessage = Callable[[Order], OutboxMessage]


@dataclass(frozen=True, slots=True)
class CancelRequest:
    order_id: UUID
    owner: str | None  # None: any order (orders:admin)
    render: Render  # the reply body for the order after the change
    status_message: StatusMessage  # the `order.cancelled` outbox message for it
    # Read once the order is locked: a cancel that waited for the worker's transaction is
    # stamped after the confirmation it follows, not when it began waiting.
    clock: Callable[[], datetime]
    # (principal, key) and how to make its idempotency record, when a key came with it.
    idempotency: tuple[str, str] | None = None
    claim: Callable[[Order, bytes], IdempotencyClaim] | None = None


async def cancel_order(
    conn: asyncpg.Connection, request: CancelRequest, *, on_commit: Callable[[], None]
) -> CancelOutcome:
    """Call outside a transaction; raises InvalidTransition for a REJECTED order.

    `on_commit` is called right before the COMMIT is sent: from then on an error means the
    outcome is unknown (the caller answers 503 "unknown"), before it nothing was written.
    """
    try:
        async with conn.transaction():
            outcome = await _cancel_in_transaction(conn, request)
            on_commit()  # the COMMIT is sent when this block ends
    except _NothingToCommit as early:
        return early.outcome
    return outcome


class _NothingToCommit(Exception):
    """Leave the transaction (rolled back) with this outcome: nothing was to be written."""

    def __init__(self, outcome: CancelOutcome) -> None:
        self.outcome = outcome


async def _cancel_in_transaction(conn: asyncpg.Connection, request: CancelRequest) -> CancelOutcome:
    order_id, owner = request.order_id, request.owner
    if request.idempotency is not None:
        stored = await conn.fetchrow(_STORED, *request.idempotency)
        if stored is not None:
            raise _NothingToCommit(CancelOutcome(None, earlier=_stored_response(stored)))
    sql = f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"
    row = await (
        conn.fetchrow(sql + " FOR UPDATE", order_id)
        if owner is None
        else conn.fetchrow(sql + " AND owner = $2 FOR UPDATE", order_id, owner)
    )
    if row is None:
        raise _NothingToCommit(CancelOutcome(None))
    order = order_of(row)
    stock = None
    if order.status is OrderStatus.CONFIRMED and order.reserved:
        stock_row = await conn.fetchrow(
            f"SELECT {STOCK_COLUMNS} FROM stock WHERE item = $1 FOR UPDATE", order.item
        )
        stock = stock_of(stock_row) if stock_row else None
    result = cancel(order, stock, now=request.clock())  # InvalidTransition for REJECTED
    if result.changed:
        message = request.status_message(result.order)
        await conn.execute(
            _APPLY,
            order.id,
            result.order.status.value,
            result.order.updated_at,
            order.item,
            result.stock.available if result.stock else None,
            result.stock.reserved if result.stock else None,
            UUID(message.event_id),
            message.topic,
            message.key,
            message.payload,
            orjson.dumps(message.headers).decode(),
            message.lane,
        )
    if request.claim is not None:
        record = request.claim(result.order, request.render(result.order))
        claimed = await conn.fetchval(
            _CLAIM,
            record.principal,
            record.key,
            record.request_hash,
            result.order.id,
            record.status_code,
            record.response_body,
        )
        if claimed is None:
            raise KeyTakenConcurrently
    return CancelOutcome(result.order, changed=result.changed)


def _stored_response(row: asyncpg.Record) -> StoredResponse:
    return StoredResponse(
        row["request_hash"], row["order_id"], row["status_code"], bytes(row["response_body"])
    )


async def stored_response(
    conn: asyncpg.Connection, principal: str, key: str
) -> StoredResponse | None:
    row = await conn.fetchrow(_STORED, principal, key)
    return _stored_response(row) if row else None
