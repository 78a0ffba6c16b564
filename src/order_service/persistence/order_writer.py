"""Group commit: concurrent order writes share one statement and one transaction.

Each request's order row, outbox row and idempotency record go into the same single-statement
transaction (G1): a 2xx is sent only after that commit. Under load, requests that arrive while
a flush is running are written together by the next flush — one round-trip and one WAL flush
for many orders — while a lone request is flushed at once, so low load adds no latency.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg
import orjson
from opentelemetry import trace

from order_service.domain.errors import ServiceUnavailable
from order_service.domain.order import Order
from order_service.messaging.envelope import OutboxMessage
from order_service.observability.metrics import WRITE_BATCH_SIZE
from order_service.observability.tracing import tracer
from order_service.persistence.database import database_errors_as_unavailable

_INSERT_BATCH = """
WITH req AS (
  SELECT * FROM unnest(
    $1::uuid[], $2::text[], $3::int[], $4::timestamptz[],
    $5::text[], $6::text[], $7::text[], $8::smallint[], $9::bytea[],
    $10::uuid[], $11::text[], $12::bytea[], $13::text[], $14::smallint[]
  ) AS r(id, item, quantity, created_at,
         principal, idem_key, request_hash, status_code, response_body,
         event_id, topic, payload, headers, lane)
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
  INSERT INTO orders (id, item, quantity, status, created_at, updated_at)
  SELECT id, item, quantity, 'PENDING', created_at, created_at FROM accepted
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


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """Either this request's order was committed, or an earlier one owns its key."""

    created: bool
    earlier: StoredResponse | None = None


_Pending = tuple[WriteRequest, "asyncio.Future[WriteOutcome]", trace.SpanContext]


class OrderWriter:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        max_batch: int,
        max_concurrent_flushes: int,
        acquire_timeout_s: float,
    ) -> None:
        self._pool = pool
        # Waiting for a connection is bounded too: a frozen database must give 503, not a hang.
        self._acquire_timeout_s = acquire_timeout_s
        self._max_batch = max_batch
        self._slots = max(1, max_concurrent_flushes)
        self._active = 0
        self._pending: list[_Pending] = []
        self._flushers: set[asyncio.Task[None]] = set()  # strong refs: tasks are weakly held

    async def write(self, request: WriteRequest) -> WriteOutcome:
        future: asyncio.Future[WriteOutcome] = asyncio.get_running_loop().create_future()
        self._pending.append((request, future, trace.get_current_span().get_span_context()))
        if self._active < self._slots:
            self._active += 1
            # A fresh context: the shared flush belongs to no single request's trace.
            task = asyncio.create_task(self._flush_while_pending(), context=contextvars.Context())
            self._flushers.add(task)
            task.add_done_callback(self._flushers.discard)
        # shield: a cancelled caller must not cancel a commit that other requests share.
        return await asyncio.shield(future)

    async def _flush_while_pending(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                await self._flush(batch)
        finally:
            self._active -= 1

    async def _flush(self, batch: list[_Pending]) -> None:
        links = [trace.Link(ctx) for _, _, ctx in batch if ctx.is_valid]
        with tracer().start_as_current_span("orders group commit", links=links) as span:
            span.set_attribute("db.system.name", "postgresql")
            span.set_attribute("orders.batch_size", len(batch))
            await self._flush_in_span(batch)

    async def _flush_in_span(self, batch: list[_Pending]) -> None:
        try:
            with database_errors_as_unavailable("write"):
                outcomes = await self._write_batch([request for request, _, _ in batch])
        except Exception as error:
            if len(batch) > 1 and not isinstance(error, ServiceUnavailable):
                # One bad row must not fail its neighbours: retry each on its own.
                for item in batch:
                    await self._flush_in_span([item])
                return
            for _, future, _ in batch:
                if not future.done():
                    future.set_exception(error)
            return
        WRITE_BATCH_SIZE.observe(len(batch))
        for (_, future, _), outcome in zip(batch, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)

    async def _write_batch(self, requests: Sequence[WriteRequest]) -> list[WriteOutcome]:
        columns = _columns(requests)
        async with self._pool.acquire(timeout=self._acquire_timeout_s) as conn:
            created = {row["id"] for row in await conn.fetch(_INSERT_BATCH, *columns)}
            refused = [r.claim for r in requests if r.order.id not in created and r.claim]
            earlier: dict[tuple[str, str], StoredResponse] = {}
            if refused:
                rows = await conn.fetch(
                    _EXISTING_KEYS, [c.principal for c in refused], [c.key for c in refused]
                )
                earlier = {
                    (row["principal"], row["idem_key"]): StoredResponse(
                        row["request_hash"],
                        row["order_id"],
                        row["status_code"],
                        bytes(row["response_body"]),
                    )
                    for row in rows
                }
        outcomes: list[WriteOutcome] = []
        for request in requests:
            if request.order.id in created:
                outcomes.append(WriteOutcome(created=True))
                continue
            claim = request.claim
            stored = earlier.get((claim.principal, claim.key)) if claim else None
            if stored is None:
                # The key's row vanished between the conflict and the read (TTL purge): the
                # caller may simply retry; nothing of this request was written.
                raise ServiceUnavailable("idempotency record changed concurrently; retry")
            outcomes.append(WriteOutcome(created=False, earlier=stored))
        return outcomes


def _columns(requests: Sequence[WriteRequest]) -> list[list[object]]:
    cols: list[list[object]] = [[] for _ in range(14)]
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
        )
        for col, value in zip(cols, values, strict=True):
            col.append(value)
    return cols
