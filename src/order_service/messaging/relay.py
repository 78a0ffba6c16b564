"""The transactional-outbox relay: committed outbox rows → Kafka, at least once, in order per key.

One loop: claim a batch (lanes + rows, see outbox_store), publish it with acks=all, await every
acknowledgement, and only then mark the rows and commit (G3). A failed send rolls the whole batch
back, so nothing is marked that the broker does not hold; a relay that dies mid-batch leaves its
rows unmarked for another relay. LISTEN/NOTIFY wakes the loop; polling covers a lost listener.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaProducer
from opentelemetry.trace import Span

from order_service.config import Settings
from order_service.domain.events import StatusEventType
from order_service.messaging.batch_send import OutgoingMessage, send_in_batches
from order_service.messaging.broker_errors import BROKER_ERRORS, watch_aiokafka
from order_service.messaging.envelope import cloud_event_headers
from order_service.messaging.housekeeping import Housekeeping
from order_service.messaging.kafka_client import create_producer
from order_service.messaging.kafka_tracing import end_spans, start_publish_span
from order_service.messaging.lifecycle import (
    ShutdownClock,
    prepare_topics,
    start_producer,
    stop_quietly,
    unless_stopped,
    wait_any,
)
from order_service.messaging.outbox_listener import OutboxListener
from order_service.messaging.outbox_store import ClaimedRow, claim_batch, mark_published
from order_service.messaging.producer_health import ProducerSlot, replacement_reason
from order_service.observability.exemplars import traceparent_exemplar
from order_service.observability.logging import get_logger
from order_service.observability.metrics import (
    OUTBOX_BATCH_SIZE,
    OUTBOX_PUBLISH_FAILURES,
    OUTBOX_PUBLISH_LATENCY,
    OUTBOX_PUBLISHED,
    PRODUCER_RECREATED,
    STATUS_EVENTS_PUBLISHED,
)
from order_service.persistence.database import open_pool
from order_service.retry import backoff_delays
from order_service.service_http import db_check, kafka_check, serve_http

log = get_logger(__name__)

STATUS_EVENT_TYPES = frozenset(t.value for t in StatusEventType)


class PublishFailed(Exception):
    """The broker did not acknowledge the whole batch; it was rolled back and will be retried."""


ProducerFactory = Callable[[], AIOKafkaProducer]


class Relay:
    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer | None,
        *,
        new_producer: ProducerFactory | None = None,
    ) -> None:
        self._settings = settings
        self._pool = pool
        # Bounded so the claiming transaction never outlives idle_in_transaction_session_timeout,
        # and so a wedged producer costs one timeout, not a stalled relay.
        self._publish_timeout_s = settings.relay_publish_timeout_s
        self._producers = ProducerSlot(
            new_producer or (lambda: create_producer(settings)),
            start_timeout_s=self._publish_timeout_s,
            replaced=PRODUCER_RECREATED,
            owner="relay",
            producer=producer,
        )
        self.wake = asyncio.Event()
        # Bounds the wait for a connection and its release: a hung database costs a timeout.
        self._acquire_timeout_s = settings.db_connect_timeout_s
        self._housekeeping = Housekeeping(settings, pool)
        self._source = settings.service_name

    @property
    def producer(self) -> AIOKafkaProducer | None:
        return self._producers.current

    async def close_producer(self, timeout_s: float) -> None:
        """Abandon the producer: an unacknowledged batch belongs to a claim that was rolled
        back, and a `stop()` would wait for it as long as the broker refuses it (#1018)."""
        await self._producers.close(timeout_s)

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
                    reason = replacement_reason(exc)
                    if reason is not None:
                        await self._producers.replace(reason)
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
        producer = await self._producers.get()
        async with self._pool.acquire(timeout=self._acquire_timeout_s) as conn, conn.transaction():
            rows = await claim_batch(
                conn,
                max_lanes=self._settings.relay_lanes,
                batch_size=self._settings.relay_batch_size,
            )
            if not rows:
                return 0
            await self._publish(producer, rows)
            await mark_published(conn, [r.id for r in rows])
        BROKER_ERRORS.progress()
        OUTBOX_PUBLISHED.inc(len(rows))
        OUTBOX_BATCH_SIZE.observe(len(rows))
        log.debug("relay_batch_published", rows=len(rows))
        return len(rows)

    async def _publish(self, producer: AIOKafkaProducer, rows: list[ClaimedRow]) -> None:
        spans: list[Span] = []
        try:
            outgoing = []
            for row in rows:
                complete = cloud_event_headers(row.headers, key=row.key, source=self._source)
                span, headers = start_publish_span(row.topic, row.key, row.event_id, complete)
                spans.append(span)
                outgoing.append(OutgoingMessage(row.topic, row.key.encode(), row.payload, headers))
            # The whole publish is bounded: metadata, a full accumulator and the acks alike.
            async with asyncio.timeout(self._publish_timeout_s):
                futures = await send_in_batches(producer, outgoing)
                results = await asyncio.gather(*futures, return_exceptions=True)
        except Exception as exc:
            end_spans(spans, exc)
            raise PublishFailed(f"sending {len(rows)} events failed: {exc!r}") from exc
        failures = [r for r in results if isinstance(r, BaseException)]
        for failure in failures:
            BROKER_ERRORS.seen_error(failure)
        if failures:
            end_spans(spans, failures[0])
            raise PublishFailed(
                f"{len(failures)} of {len(rows)} sends failed: {failures[0]!r}"
            ) from failures[0]
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
        await self._housekeeping.refresh_backlog()

    async def housekeeping(self) -> dict[str, int]:
        return await self._housekeeping.delete_expired()

    async def maintain(self, stop: asyncio.Event) -> None:
        await self._housekeeping.maintain(stop)


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
    watch_aiokafka()
    topics = (settings.kafka_order_topic, settings.kafka_status_topic)
    checks = {
        "postgres": db_check(pool),
        "kafka": kafka_check(lambda: relay.producer, topics, BROKER_ERRORS),
    }
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
        await relay.close_producer(clock.remaining(0.5))
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
