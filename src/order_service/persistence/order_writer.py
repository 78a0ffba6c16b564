"""Group commit with deadlines: concurrent order writes share one statement and one transaction.

Each request's order row, outbox row and idempotency record go into the same single-statement
transaction (G1, see order_batch): a 2xx is sent only after that commit. Under load, requests
that arrive while a flush is running are written together by the next flush — one round-trip
and one WAL flush for many orders — while a lone request is flushed at once.

Every request carries its deadline (the whole request is bounded by REQUEST_TIMEOUT_S,
queueing included) and the queue is bounded, so a slow or unreachable database gives fast,
truthful 503s instead of a growing queue (DESIGN.md §3, G1, G10):
- a request still queued at its deadline, or refused by a full queue, is `NotWritten`, and is
  never sent afterwards: its entry is marked abandoned and the flusher drops it;
- once its batch's statement is sent, the outcome is only known from the answer: a server
  error means nothing committed (`NotWritten`), a lost answer means `OutcomeUnknown`;
- orders that did commit get their 2xx even when the follow-up read of the batch fails.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Sequence

import asyncpg
from opentelemetry import trace

from order_service.domain.errors import NotWritten, OutcomeUnknown
from order_service.observability.logging import get_logger
from order_service.observability.metrics import (
    DB_UNAVAILABLE,
    WRITE_BATCH_SIZE,
    WRITE_QUEUE_DEPTH,
    WRITES_REFUSED,
)
from order_service.observability.tracing import tracer
from order_service.persistence.database import (
    connection_lost,
    discard_connection,
    forget_connections_after,
    is_unavailable,
)
from order_service.persistence.order_batch import (
    IdempotencyClaim,
    StoredResponse,
    WriteRequest,
    insert_batch,
    stored_responses,
)
from order_service.persistence.write_queue import (
    Pending,
    State,
    WriteOutcome,
    WriteQueue,
    unclaimed,
)

__all__ = ["IdempotencyClaim", "OrderWriter", "StoredResponse", "WriteOutcome", "WriteRequest"]

log = get_logger(__name__)

# A request whose deadline is this close is not sent: its answer could not arrive in time.
SEND_MARGIN_S = 0.05


class OrderWriter:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        max_batch: int,
        max_concurrent_flushes: int,
        acquire_timeout_s: float,
        statement_timeout_s: float,
        max_queue: int,
    ) -> None:
        self._pool = pool
        self._acquire_timeout_s = acquire_timeout_s
        self._statement_timeout_s = statement_timeout_s
        self._max_batch = max_batch
        self._slots = max(1, max_concurrent_flushes)
        self._active = 0
        self._queue = WriteQueue(max_queue)
        self._flushers: set[asyncio.Task[None]] = set()  # strong refs: tasks are weakly held
        WRITE_QUEUE_DEPTH.set_function(lambda: self._queue.queued)

    async def write(self, request: WriteRequest, *, deadline: float) -> WriteOutcome:
        """Commit `request` before `deadline` (event-loop time), or say truthfully it did not."""
        if self._queue.full:
            WRITES_REFUSED.labels(reason="queue_full").inc()
            raise NotWritten("too many writes are waiting for the database; retry shortly")
        entry = Pending(request, deadline, trace.get_current_span().get_span_context())
        self._enqueue(entry)
        try:
            # shield: a caller that times out must not cancel a commit that others share.
            async with asyncio.timeout_at(deadline):
                return await asyncio.shield(entry.future)
        except asyncio.CancelledError:
            entry.future.add_done_callback(unclaimed)  # the client left; it may settle later
            raise
        except TimeoutError:
            entry.future.add_done_callback(unclaimed)
            if entry.future.done():
                return entry.future.result()
            if entry.state is State.SENT:
                raise OutcomeUnknown(
                    "the database did not answer the commit in time", request.order.id
                ) from None
            self._queue.abandon(entry)
            WRITES_REFUSED.labels(reason="deadline").inc()
            raise NotWritten("the database did not take the write in time") from None

    def _enqueue(self, entry: Pending) -> None:
        self._queue.append(entry)
        if self._active < self._slots:
            self._active += 1
            # A fresh context: the shared flush belongs to no single request's trace.
            task = asyncio.create_task(self._flush_while_pending(), context=contextvars.Context())
            self._flushers.add(task)
            task.add_done_callback(self._flushers.discard)

    async def _flush_while_pending(self) -> None:
        try:
            while batch := self._queue.take(self._max_batch):
                await self._flush(batch)
        finally:
            self._active -= 1

    async def _flush(self, batch: list[Pending]) -> None:
        links = [trace.Link(e.span) for e in batch if e.span.is_valid]
        with tracer().start_as_current_span("orders group commit", links=links) as span:
            span.set_attribute("db.system.name", "postgresql")
            span.set_attribute("orders.batch_size", len(batch))
            try:
                await self._write(batch)
            except Exception as exc:  # a bug: answer every caller rather than leave them hanging
                for entry in batch:
                    entry.settle(exc)
                raise

    async def _write(self, batch: list[Pending]) -> None:
        loop = asyncio.get_running_loop()
        latest = max(e.deadline for e in batch)
        try:
            conn = await self._pool.acquire(
                timeout=max(0.01, min(self._acquire_timeout_s, latest - loop.time()))
            )
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            DB_UNAVAILABLE.labels(op="write").inc()
            self._refuse(batch, "the database is unavailable")
            return
        try:
            await self._send(conn, batch)
        finally:
            await self._pool.release(conn)

    async def _send(self, conn: asyncpg.Connection, batch: list[Pending]) -> None:
        live = self._still_sendable(batch)
        if not live:
            return
        for entry in live:
            entry.state = State.SENT
        requests = [e.request for e in live]
        try:
            created = await insert_batch(conn, requests, timeout_s=self._statement_timeout_s)
        except asyncpg.PostgresError as exc:
            if connection_lost(exc):
                await self._lost(conn, live, exc)
                return
            # The server answered with an error: the single-statement transaction rolled back.
            if is_unavailable(exc):
                DB_UNAVAILABLE.labels(op="write").inc()
                await forget_connections_after(self._pool, exc)
                self._refuse(live, "the database refused the write (unavailable or read-only)")
            elif len(live) > 1:
                # One bad row must not fail its neighbours: send each on its own.
                for entry in live:
                    entry.state = State.TAKEN
                    await self._send(conn, [entry])
            else:
                # Refused by the database (a constraint, a trigger): rolled back, so still a
                # truthful 503 not_written — but a defect to look at, hence the error log.
                log.error("order_write_refused", sqlstate=exc.sqlstate, error=str(exc))
                self._refuse(live, f"the database refused the write ({exc.sqlstate})")
            return
        except Exception as exc:
            if type(exc) is asyncpg.InterfaceError:
                # asyncpg refused before sending anything (the connection was already closed).
                DB_UNAVAILABLE.labels(op="write").inc()
                self._refuse(live, "the database connection was closed")
                return
            if not is_unavailable(exc):
                raise
            await self._lost(conn, live, exc)
            return
        WRITE_BATCH_SIZE.observe(len(live))
        # Committed orders get their answer now, whatever happens to the follow-up read.
        refused = [e for e in live if e.request.order.id not in created]
        for entry in live:
            if entry.request.order.id in created:
                entry.settle(WriteOutcome(created=True))
        if refused:
            await self._answer_duplicates(conn, refused)

    async def _lost(
        self, conn: asyncpg.Connection, sent: list[Pending], exc: BaseException
    ) -> None:
        """Sent, answer lost: it may have committed. Never call that "not written"."""
        DB_UNAVAILABLE.labels(op="write").inc()
        discard_connection(conn)
        await forget_connections_after(self._pool, exc)
        for entry in sent:
            entry.settle(
                OutcomeUnknown(
                    "the database connection was lost during the commit", entry.request.order.id
                )
            )

    def _still_sendable(self, batch: Sequence[Pending]) -> list[Pending]:
        """Drop entries whose callers gave up while the batch waited for a connection, and
        those too close to their deadline for an answer to arrive: they are NotWritten."""
        cutoff = asyncio.get_running_loop().time() + SEND_MARGIN_S
        live = []
        for entry in batch:
            if entry.state is State.ABANDONED or entry.future.done():
                continue
            if entry.deadline <= cutoff:
                entry.state = State.ABANDONED
                WRITES_REFUSED.labels(reason="deadline").inc()
                entry.settle(NotWritten("the database did not take the write in time"))
                continue
            live.append(entry)
        return live

    async def _answer_duplicates(self, conn: asyncpg.Connection, refused: list[Pending]) -> None:
        """Keys already taken by an earlier request: replay its stored response."""
        claims: list[IdempotencyClaim] = [e.request.claim for e in refused if e.request.claim]
        try:
            stored = await stored_responses(conn, claims, timeout_s=self._statement_timeout_s)
        except Exception as exc:
            # Nothing of these requests was written: a retry with the key gets the replay.
            log.warning("idempotency_replay_read_failed", error=repr(exc), requests=len(refused))
            if is_unavailable(exc):
                discard_connection(conn)
            self._refuse(refused, "the stored response could not be read; retry with the key")
            return
        for entry in refused:
            claim = entry.request.claim
            earlier = stored.get((claim.principal, claim.key)) if claim else None
            if earlier is None:
                # The key's row vanished between the conflict and the read (TTL purge).
                entry.settle(NotWritten("idempotency record changed concurrently; retry"))
            else:
                entry.settle(WriteOutcome(created=False, earlier=earlier))

    def _refuse(self, entries: Sequence[Pending], why: str) -> None:
        for entry in entries:
            entry.state = State.ABANDONED
            entry.settle(NotWritten(why))
