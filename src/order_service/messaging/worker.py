"""The worker: consume `order.created`, confirm the order once per event, commit offsets after.

Per batch: decode (poison → DLQ at once), apply every valid event in one transaction (inbox rows
+ status change, G5), dead-letter unknown orders, await the DLQ acks, then commit the offsets.
A database or broker outage retries the same batch until it works or the process stops; nothing
is committed or dead-lettered for it. A message that keeps failing for another reason is retried
`worker_max_attempts` times, then dead-lettered, and the partition moves on (G6).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from order_service.config import Settings
from order_service.messaging.dlq import DeadLetter, header, send_dead_letters
from order_service.messaging.event_codec import OrderCreatedEvent, Poison, decode
from order_service.messaging.inbox_store import Applied, Outcome, apply_order_created
from order_service.messaging.kafka_tracing import process_spans
from order_service.messaging.lag import forget_partitions, record_lag
from order_service.messaging.lifecycle import (
    ShutdownClock,
    open_pool,
    prepare_topics,
    start_consumer,
    start_producer,
    stop_quietly,
    unless_stopped,
    wait_any,
)
from order_service.observability.logging import get_logger
from order_service.observability.metrics import (
    END_TO_END_LATENCY,
    EVENTS_DEAD_LETTERED,
    EVENTS_DUPLICATE,
    EVENTS_FAILED,
    EVENTS_PROCESSED,
)
from order_service.persistence.database import is_unavailable
from order_service.retry import backoff_delays
from order_service.service_http import db_check, kafka_check, serve_http

T = TypeVar("T")
POLL_TIMEOUT_MS = 500
log = get_logger(__name__)


class Abandoned(Exception):
    """Stop was requested while a batch waited for a dependency: it is left uncommitted."""


def is_transient(exc: BaseException) -> bool:
    # Any broker error may clear once the broker is back; retrying never skips a message.
    if isinstance(exc, KafkaError):
        return True
    return is_unavailable(exc) or isinstance(
        exc, asyncpg.SerializationError | asyncpg.DeadlockDetectedError
    )


class HandBack(ConsumerRebalanceListener):  # type: ignore[misc]
    """On revocation, the batch in flight commits before its partitions change hands (G5)."""

    def __init__(self, busy: Callable[[], asyncio.Lock | None], timeout_s: float) -> None:
        self._busy = busy
        self._timeout_s = timeout_s

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        busy = self._busy()  # None while the worker is still starting: nothing in flight
        if busy is not None:
            try:
                async with asyncio.timeout(self._timeout_s), busy:
                    pass
            except TimeoutError:
                log.warning("worker_revoked_with_batch_in_flight", partitions=len(revoked))
        forget_partitions(set(revoked))
        log.info("worker_partitions_revoked", partitions=sorted(tp.partition for tp in revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("worker_partitions_assigned", partitions=sorted(tp.partition for tp in assigned))


class Worker:
    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        consumer: AIOKafkaConsumer,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._producer = producer
        self._consumer = consumer
        # Held while a batch is in flight: a revocation waits for it to commit (see HandBack).
        self.busy = asyncio.Lock()

    async def run(self, stop: asyncio.Event) -> None:
        delays = self._delays()
        while not stop.is_set():
            try:
                batch = await self._consumer.getmany(
                    timeout_ms=POLL_TIMEOUT_MS, max_records=self._settings.worker_batch_size
                )
            except KafkaError as exc:
                delay = next(delays)
                log.warning("worker_poll_failed", error=repr(exc), retry_in_s=round(delay, 2))
                await wait_any(stop, timeout_s=delay)
                continue
            delays = self._delays()
            if not batch:
                continue
            async with self.busy:
                try:
                    await self.handle(batch, stop)
                except Abandoned:
                    log.info("worker_batch_abandoned", messages=sum(map(len, batch.values())))
                    return

    def _delays(self) -> Iterator[float]:
        s = self._settings
        return backoff_delays(s.retry_initial_backoff_s, s.retry_max_backoff_s)

    async def handle(
        self, batch: dict[TopicPartition, list[ConsumerRecord]], stop: asyncio.Event
    ) -> None:
        records = [r for rs in batch.values() for r in rs]
        valid: dict[UUID, tuple[ConsumerRecord, OrderCreatedEvent]] = {}
        dead: list[DeadLetter] = []
        duplicates = 0
        for record in records:
            try:
                event = decode(record.value, record.headers)
            except Poison as poison:
                dead.append(DeadLetter(record, poison.reason, poison.detail, 1))
                continue
            if event.event_id in valid:
                duplicates += 1  # the same event twice in one batch: applied once below
            else:
                valid[event.event_id] = (record, event)

        with process_spans(records, self._settings.kafka_consumer_group):
            results = await self._apply_all(valid, dead, stop)
            for event_id, applied in results.items():
                if applied.outcome is Outcome.UNKNOWN_ORDER:
                    record, event = valid[event_id]
                    dead.append(
                        DeadLetter(
                            record, "unknown_order", f"order {event.order_id} does not exist", 1
                        )
                    )
            await self._transient_retry(
                lambda: send_dead_letters(self._producer, self._settings.dlq_topic, dead), stop
            )
            await self._commit(batch, stop)
        self._account(results, duplicates, dead, batch, valid)

    async def _apply_all(
        self,
        valid: dict[UUID, tuple[ConsumerRecord, OrderCreatedEvent]],
        dead: list[DeadLetter],
        stop: asyncio.Event,
    ) -> dict[UUID, Applied]:
        pairs = [(eid, ev.order_id) for eid, (_, ev) in valid.items()]
        try:
            return await self._transient_retry(lambda: self._apply(pairs), stop)
        except Abandoned:
            raise
        except Exception as exc:
            log.warning("worker_batch_failed_retrying_singly", error=repr(exc), events=len(pairs))
        # One bad event must not hold the others back: retry each alone, a bounded number of times.
        results: dict[UUID, Applied] = {}
        for event_id, order_id in pairs:
            outcome = await self._apply_one(event_id, order_id, stop)
            if isinstance(outcome, Applied):
                results[event_id] = outcome
            else:
                record, _ = valid[event_id]
                dead.append(
                    DeadLetter(
                        record,
                        "processing_error",
                        repr(outcome),
                        self._settings.worker_max_attempts,
                    )
                )
        return results

    async def _apply_one(
        self, event_id: UUID, order_id: UUID, stop: asyncio.Event
    ) -> Applied | Exception:
        delays = self._delays()
        for attempt in range(1, self._settings.worker_max_attempts + 1):
            try:
                result = await self._transient_retry(
                    lambda: self._apply([(event_id, order_id)]), stop
                )
                return result[event_id]
            except Abandoned:
                raise
            except Exception as exc:
                EVENTS_FAILED.labels(reason="processing_error").inc()
                log.warning(
                    "worker_event_failed",
                    event_id=str(event_id),
                    order_id=str(order_id),
                    attempt=attempt,
                    error=repr(exc),
                )
                if attempt == self._settings.worker_max_attempts:
                    return exc
                await wait_any(stop, timeout_s=next(delays))
        raise AssertionError("unreachable")

    async def _apply(self, pairs: list[tuple[UUID, UUID]]) -> dict[UUID, Applied]:
        async with self._pool.acquire() as conn:
            return await apply_order_created(conn, pairs)

    async def _commit(
        self, batch: dict[TopicPartition, list[ConsumerRecord]], stop: asyncio.Event
    ) -> None:
        assigned = self._consumer.assignment()
        offsets = {tp: rs[-1].offset + 1 for tp, rs in batch.items() if tp in assigned}
        if not offsets:
            return
        try:
            await self._transient_retry(lambda: self._consumer.commit(offsets), stop)
        except (CommitFailedError, IllegalStateError) as exc:
            # The partitions went to another member: it re-reads them, the inbox absorbs it (G5).
            log.warning("worker_commit_lost_to_rebalance", error=repr(exc))

    async def _transient_retry(
        self, operation: Callable[[], Awaitable[T]], stop: asyncio.Event
    ) -> T:
        delays = self._delays()
        while True:
            try:
                return await operation()
            except (CommitFailedError, IllegalStateError):
                raise
            except Exception as exc:
                if not is_transient(exc):
                    raise
                reason = "broker_unavailable" if isinstance(exc, KafkaError) else "db_unavailable"
                EVENTS_FAILED.labels(reason=reason).inc()
                delay = next(delays)
                log.warning(
                    "worker_dependency_unavailable",
                    reason=reason,
                    error=repr(exc),
                    retry_in_s=round(delay, 2),
                )
                await wait_any(stop, timeout_s=delay)
                if stop.is_set():
                    raise Abandoned from exc

    def _account(
        self,
        results: dict[UUID, Applied],
        duplicates: int,
        dead: list[DeadLetter],
        batch: dict[TopicPartition, list[ConsumerRecord]],
        valid: dict[UUID, tuple[ConsumerRecord, OrderCreatedEvent]],
    ) -> None:
        now = datetime.now(UTC)
        applied = 0
        for applied_event in results.values():
            if applied_event.outcome is Outcome.APPLIED:
                applied += 1
                if applied_event.confirmed_created_at is not None:
                    END_TO_END_LATENCY.observe(
                        max(0.0, (now - applied_event.confirmed_created_at).total_seconds())
                    )
            elif applied_event.outcome is Outcome.DUPLICATE:
                duplicates += 1
        EVENTS_PROCESSED.inc(applied)
        EVENTS_DUPLICATE.inc(duplicates)
        for letter in dead:
            if letter.reason != "processing_error":
                EVENTS_FAILED.labels(reason=letter.reason).inc()
            EVENTS_DEAD_LETTERED.labels(reason=letter.reason).inc()
            log.warning(
                "worker_event_dead_lettered",
                reason=letter.reason,
                error=letter.detail,
                event_id=header(letter.record.headers, "ce_id"),
                partition=letter.record.partition,
                offset=letter.record.offset,
            )
        event_times: dict[TopicPartition, datetime] = {}
        for _record, event in valid.values():
            if event.occurred_at is not None:
                tp = TopicPartition(_record.topic, _record.partition)
                event_times[tp] = max(event.occurred_at, event_times.get(tp, event.occurred_at))
        record_lag(self._consumer, {tp: rs[-1].offset + 1 for tp, rs in batch.items()}, event_times)
        if applied or duplicates:
            log.debug(
                "worker_batch_committed", applied=applied, duplicates=duplicates, dead=len(dead)
            )


async def run_worker(
    settings: Settings,
    *,
    stop: asyncio.Event,
    http_host: str | None = None,
    http_port: int | None = None,
) -> None:
    clock = ShutdownClock(settings.shutdown_timeout_s)

    def closing(what: str, close: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[None]]:
        return lambda: stop_quietly(what, close(), clock.remaining(0.5))

    async def start(stack: contextlib.AsyncExitStack) -> Worker:
        await prepare_topics(settings)
        pool = await open_pool(settings, min_size=1, max_size=2)
        stack.push_async_callback(closing("postgres pool", pool.close))
        producer = await start_producer(settings)
        stack.push_async_callback(closing("kafka producer", producer.stop))
        holder: list[Worker] = []
        hand_back = HandBack(
            lambda: holder[0].busy if holder else None, settings.shutdown_timeout_s
        )
        consumer = await start_consumer(
            settings, lambda c: c.subscribe([settings.kafka_order_topic], listener=hand_back)
        )
        # Leaving the group hands the partitions to the other members at once (G8).
        stack.push_async_callback(closing("kafka consumer", consumer.stop))
        holder.append(Worker(settings, pool, producer, consumer))
        checks = {"postgres": db_check(pool), "kafka": kafka_check(producer.client)}
        await stack.enter_async_context(serve_http(checks, http_host, http_port))
        return holder[0]

    async with contextlib.AsyncExitStack() as stack:
        worker = await unless_stopped(stop, start(stack))
        if worker is None:
            clock.start()
            return
        log.info(
            "worker_started", topic=settings.kafka_order_topic, group=settings.kafka_consumer_group
        )
        task = asyncio.create_task(worker.run(stop), name="worker-loop")
        await _until(stop, task)
        clock.start()
        log.info("worker_stopping")
        # The batch in flight may use most of the budget to finish; the rest is for closing.
        _done, pending = await asyncio.wait({task}, timeout=clock.remaining(0.6))
        if pending:
            task.cancel()  # uncommitted: the next owner of the partitions re-reads it (G5)
        with contextlib.suppress(asyncio.CancelledError):
            await task
    log.info("worker_stopped")


async def _until(stop: asyncio.Event, task: asyncio.Task[Any]) -> None:
    waiter = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]
