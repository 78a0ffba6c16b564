"""The transactional-outbox relay: committed outbox rows → Kafka, at least once, in order per key.

One loop: claim a batch (lanes + rows, see outbox_store), publish it with acks=all, await every
acknowledgement, and only then mark the rows and commit (G3). A failed send rolls the whole batch
back, so nothing is marked that the broker does not hold; a relay that dies mid-batch leaves its
rows unmarked for another relay. LISTEN/NOTIFY wakes the loop; polling covers a lost listener.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaProducer
from opentelemetry.trace import Span

from order_service.config import Settings
from order_service.domain.events import StatusEventType
from order_service.messaging.batch_send import OutgoingMessage, send_in_batches
from order_service.messaging.kafka_tracing import end_spans, start_publish_span
from order_service.messaging.lifecycle import (
    ShutdownClock,
    open_pool,
    prepare_topics,
    start_producer,
    stop_quietly,
    unless_stopped,
    wait_any,
)
from order_service.messaging.outbox_listener import OutboxListener
from order_service.messaging.outbox_store import (
    ClaimedRow,
    backlog,
    claim_batch,
    delete_idempotency_keys_before,
    delete_published_before,
    mark_published,
)
from order_service.observability.exemplars import traceparent_exemplar
from order_service.observability.logging import get_logger
from order_service.observability.metrics import (
    OUTBOX_BACKLOG,
    OUTBOX_BATCH_SIZE,
    OUTBOX_OLDEST_AGE,
    OUTBOX_PUBLISH_FAILURES,
    OUTBOX_PUBLISH_LATENCY,
    OUTBOX_PUBLISHED,
    STATUS_EVENTS_PUBLISHED,
)
from order_service.retry import backoff_delays
from order_service.service_http import db_check, kafka_check, serve_http

log = get_logger(__name__)

STATUS_EVENT_TYPES = frozenset(t.value for t in StatusEventType)
GAUGE_INTERVAL_S = 5.0
HOUSEKEEPING_EVERY = 12  # gauge ticks: deletes run about once a minute


class PublishFailed(Exception):
    """The broker did not acknowledge the whole batch; it was rolled back and will be retried."""


class Relay:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, producer: AIOKafkaProducer) -> None:
        self._settings = settings
        self._pool = pool
        self._producer = producer
        self.wake = asyncio.Event()
        # Bounded so the claiming transaction never outlives idle_in_transaction_session_timeout.
        self._publish_timeout_s = max(1.0, settings.db_statement_timeout_ms * 3 / 1000)

    async def run(self, stop: asyncio.Event) -> None:
        """Drain until `stop`; the batch in flight when `stop` is set is finished, never cut."""
        delays = self._delays()
        while not stop.is_set():
            self.wake.clear()
            try:
                published = await self.publish_batch()
            except Exception as exc:
                if isinstance(exc, PublishFailed):
                    OUTBOX_PUBLISH_FAILURES.inc()
                delay = next(delays)
                log.warning("relay_batch_failed", error=repr(exc), retry_in_s=round(delay, 2))
                await wait_any(stop, timeout_s=delay)
                continue
            delays = self._delays()
            if published == 0:
                await wait_any(self.wake, stop, timeout_s=self._settings.relay_poll_interval_s)

    def _delays(self) -> Iterator[float]:
        return backoff_delays(
            self._settings.retry_initial_backoff_s, self._settings.retry_max_backoff_s
        )

    async def publish_batch(self) -> int:
        """One claim → publish → mark transaction; returns the rows published (0: nothing to do)."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await claim_batch(
                conn,
                max_lanes=self._settings.relay_lanes,
                batch_size=self._settings.relay_batch_size,
            )
            if not rows:
                return 0
            await self._publish(rows)
            await mark_published(conn, [r.id for r in rows])
        OUTBOX_PUBLISHED.inc(len(rows))
        OUTBOX_BATCH_SIZE.observe(len(rows))
        log.debug("relay_batch_published", rows=len(rows))
        return len(rows)

    async def _publish(self, rows: list[ClaimedRow]) -> None:
        spans: list[Span] = []
        try:
            outgoing = []
            for row in rows:
                span, headers = start_publish_span(row.topic, row.key, row.event_id, row.headers)
                spans.append(span)
                outgoing.append(OutgoingMessage(row.topic, row.key.encode(), row.payload, headers))
            futures = await send_in_batches(self._producer, outgoing)
            async with asyncio.timeout(self._publish_timeout_s):
                results = await asyncio.gather(*futures, return_exceptions=True)
        except Exception as exc:
            end_spans(spans, exc)
            raise PublishFailed(f"sending {len(rows)} events failed: {exc!r}") from exc
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            end_spans(spans, failures[0])
            raise PublishFailed(f"{len(failures)} of {len(rows)} sends failed: {failures[0]!r}")
        acked = datetime.now(UTC)
        for row in rows:
            OUTBOX_PUBLISH_LATENCY.observe(
                max(0.0, (acked - row.created_at).total_seconds()),
                exemplar=traceparent_exemplar(row.headers.get("traceparent")),
            )
            event_type = row.headers.get("ce_type", "")
            if event_type in STATUS_EVENT_TYPES:
                STATUS_EVENTS_PUBLISHED.labels(type=event_type).inc()
        end_spans(spans, None)

    async def refresh_backlog(self) -> None:
        async with self._pool.acquire() as conn:
            state = await backlog(conn)
        OUTBOX_BACKLOG.set(state.rows)
        OUTBOX_OLDEST_AGE.set(state.oldest_age_s)

    async def housekeeping(self) -> None:
        async with self._pool.acquire() as conn:
            outbox = await delete_published_before(conn, self._settings.outbox_retention_hours)
            keys = await delete_idempotency_keys_before(conn, self._settings.idempotency_ttl_hours)
        if outbox or keys:
            log.info("relay_housekeeping", outbox_deleted=outbox, idempotency_keys_deleted=keys)

    async def maintain(self, stop: asyncio.Event, interval_s: float = GAUGE_INTERVAL_S) -> None:
        tick = 0
        while not stop.is_set():
            try:
                await self.refresh_backlog()
                if tick % HOUSEKEEPING_EVERY == 0:
                    await self.housekeeping()
            except Exception as exc:  # metrics and cleanup wait for the next tick
                log.warning("relay_maintenance_failed", error=repr(exc))
            tick += 1
            await wait_any(stop, timeout_s=interval_s)


async def run_relay(
    settings: Settings,
    *,
    stop: asyncio.Event,
    http_host: str | None = None,
    http_port: int | None = None,
) -> None:
    started = await unless_stopped(stop, _start(settings))
    if started is None:
        return
    pool, producer = started
    clock = ShutdownClock(settings.shutdown_timeout_s)
    relay = Relay(settings, pool, producer)
    listener = OutboxListener(settings, relay.wake)
    checks = {"postgres": db_check(pool), "kafka": kafka_check(producer.client)}
    log.info("relay_started", topic=settings.kafka_order_topic)
    try:
        async with serve_http(checks, http_host, http_port):
            tasks = [
                asyncio.create_task(relay.run(stop), name="relay-loop"),
                asyncio.create_task(listener.run(stop), name="relay-listener"),
                asyncio.create_task(relay.maintain(stop), name="relay-maintenance"),
            ]
            await stop.wait()
            clock.start()
            log.info("relay_stopping")
            _done, pending = await asyncio.wait(tasks, timeout=clock.remaining(0.6))
            for task in pending:
                # Cancelling the batch rolls its transaction back: its rows stay unpublished (G3).
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    finally:
        # Nothing unacked depends on these closes: an unmarked row is simply published again.
        await stop_quietly("kafka producer", producer.stop(), clock.remaining(0.5))
        await stop_quietly("postgres pool", pool.close(), clock.remaining())
        log.info("relay_stopped")


async def _start(settings: Settings) -> tuple[asyncpg.Pool, AIOKafkaProducer]:
    await prepare_topics(settings)
    pool = await open_pool(settings, min_size=1, max_size=3)
    try:
        return pool, await start_producer(settings)
    except BaseException:
        await stop_quietly("postgres pool", pool.close(), settings.shutdown_timeout_s)
        raise
