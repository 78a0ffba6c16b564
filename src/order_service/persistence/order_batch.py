"""The group commit's SQL: one statement writes many orders, their outbox rows and their
idempotency records; a second reads the stored responses of keys that were already taken.

The INSERT is a single-statement transaction: it is its own COMMIT. Until it is sent nothing
of its requests exists; once it is sent and its answer is lost, the outcome is unknown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg
import orjson

from order_service.domain.order import Order
from order_service.persistence.outbox_message import OutboxMessage

_INSERT_BATCH = """
WITH req AS (
  SELECT * FROM unnest(
    $1::uuid[], $2::text[], $3::int[], $4::timestamptz[],
    $5::text[], $6::text[], $7::text[], $8::smallint[], $9::bytea[],
    $10::uuid[], $11::text[], $12::bytea[], $13::text[], $14::smallint[], $15::text[]
  ) AS r(id, item, quantity, created_at,
         principal, idem_key, request_hash, status_code, response_body,
         event_id, topic, payload, headers, lane, owner)
),
claimed AS (
  INSERT INTO idempotency_keys
    (principal, idem_key, request_hash, order_id, status_code, response_body, created_at)
  SELECT principal, idem_key, request_hash, id, status_code, response_body, created_at
  FROM req WHERE idem_key IS NOT NULL
  ON CONFLICT (principal, idem_key) DO NOTHING
  RETURNING order_id
),
accepted AS (
  SELECT * FROM req WHERE idem_key IS NULL OR id IN (SELECT order_id FROM claimed)
),
new_orders AS (
  INSERT INTO orders (id, item, quantity, status, owner, created_at, updated_at)
  SELECT id, item, quantity, 'PENDING', owner, created_at, created_at FROM accepted
  RETURNING id
),
new_events AS (
  INSERT INTO outbox
    (event_id, aggregate_id, topic, message_key, payload, headers, lane, created_at)
  SELECT event_id, id, topic, id::text, payload, headers::jsonb, lane, created_at FROM accepted
  RETURNING 1
)
SELECT id FROM new_orders
"""

_EXISTING_KEYS = """
SELECT k.principal, k.idem_key, k.request_hash, k.order_id, k.status_code, k.response_body
FROM idempotency_keys k
JOIN unnest($1::text[], $2::text[]) AS w(principal, idem_key) USING (principal, idem_key)
"""


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    """What a request with an Idempotency-Key stores, to be replayed to its duplicates."""

    principal: str
    key: str
    request_hash: str
    status_code: int
    response_body: bytes


@dataclass(frozen=True, slots=True)
class StoredResponse:
    request_hash: str
    order_id: UUID
    status_code: int
    body: bytes


@dataclass(frozen=True, slots=True)
class WriteRequest:
    order: Order
    message: OutboxMessage
    claim: IdempotencyClaim | None = None


async def insert_batch(
    conn: asyncpg.Connection, requests: Sequence[WriteRequest], *, timeout_s: float
) -> set[UUID]:
    """Commit every request whose key is free; returns the ids of the orders created."""
    rows = await conn.fetch(_INSERT_BATCH, *_columns(requests), timeout=timeout_s)
    return {row["id"] for row in rows}


async def stored_responses(
    conn: asyncpg.Connection, claims: Sequence[IdempotencyClaim], *, timeout_s: float
) -> dict[tuple[str, str], StoredResponse]:
    rows = await conn.fetch(
        _EXISTING_KEYS,
        [c.principal for c in claims],
        [c.key for c in claims],
        timeout=timeout_s,
    )
    return {
        (row["principal"], row["idem_key"]): StoredResponse(
            row["request_hash"], row["order_id"], row["status_code"], bytes(row["response_body"])
        )
        for row in rows
    }


def _columns(requests: Sequence[WriteRequest]) -> list[list[object]]:
    cols: list[list[object]] = [[] for _ in range(15)]
    for r in requests:
        o, m, c = r.order, r.message, r.claim
        values: tuple[object, ...] = (
            o.id,
            o.item,
            o.quantity,
            o.created_at,
            c.principal if c else None,
            c.key if c else None,
            c.request_hash if c else None,
            c.status_code if c else None,
            c.response_body if c else None,
            UUID(m.event_id),
            m.topic,
            m.payload,
            orjson.dumps(m.headers).decode(),
            m.lane,
            o.owner,
        )
        for col, value in zip(cols, values, strict=True):
            col.append(value)
    return cols
