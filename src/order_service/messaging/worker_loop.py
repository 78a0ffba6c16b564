"""The worker's consume loop: poll, triage, apply once, dead-letter, commit offsets after.

Per batch: every record is triaged (a valid event, one to skip, or poison for the DLQ — no
record can raise out of here); the valid ones are applied in one transaction (G5, G9); unknown
orders are dead-lettered; the DLQ acknowledgements are awaited; then the offsets are committed.

A failover, an outage or an overloaded database (`persistence.database.is_transient`) and a
broker that is away are waited out with backoff — the same batch again, never dead-lettered.
A message that keeps failing for another reason is retried `worker_max_attempts` times alone,
then dead-lettered, and the partition moves on (G6). Should a batch fail in a way nobody
foresaw, the loop rewinds to the batch's first offsets and tries again after a pause: it
neither dies nor skips.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import TypeVar
from uuid import UUID

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from order_service.config import Settings
from order_service.messaging.broker_errors import BROKER_ERRORS
from order_service.messaging.dlq import DeadLetter, header, send_dead_letters
from order_service.messaging.kafka_client import is_retriable
from order_service.messaging.kafka_tracing import TraceOf, process_spans
from order_service.messaging.lag import record_lag
from order_service.messaging.lifecycle import wait_any
from order_service.messaging.producer_health import ProducerSlot, fatal_for_the_producer
from order_service.messaging.record_triage import Valid, triage
from order_service.messaging.worker_effects import OrderEffects, account
from order_service.observability.logging import get_logger
from order_service.observability.metrics import (
    EVENTS_DEAD_LETTERED,
    EVENTS_DUPLICATE,
    EVENTS_FAILED,
    EVENTS_PROCESSED,
)
from order_service.persistence.database import forget_connections_after, is_transient
from order_service.persistence.order_settlement import Applied, Outcome
from order_service.retry import backoff_delays

T = TypeVar("T")
POLL_TIMEOUT_MS = 500
log = get_logger(__name__)

Batch = dict[TopicPartition, list[ConsumerRecord]]


class Abandoned(Exception):
    """Stop was requested while a batch waited for a dependency: it is left uncommitted."""


class ProducerReplaced(Exception):
    """The dead-letter producer hit an error fatal for its producer id and was replaced: the
    same dead letters go again, with the new one."""


def is_dependency_down(exc: BaseException) -> bool:
    """Wait and retry the same work: never a reason to dead-letter an event."""
    if isinstance(exc, ProducerReplaced):
        return True
    if isinstance(exc, KafkaError):
        return is_retriable(exc)
    return is_transient(exc)


class Worker:
    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        producers: ProducerSlot,
        consumer: AIOKafkaConsumer,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._producers = producers
        self._consumer = consumer
        self._effects = OrderEffects(
            pool,
            status_topic=settings.kafka_status_topic,
            source=settings.service_name,
            acquire_timeout_s=settings.db_connect_timeout_s,
        )
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
            if not batch:
                delays = self._delays()
                continue
            async with self.busy:
                try:
                    await self.handle(batch, stop)
                    delays = self._delays()
                except Abandoned:
                    log.info("worker_batch_abandoned", messages=sum(map(len, batch.values())))
                    return
                except Exception as exc:  # a defect: keep the records, stay alive
                    delay = next(delays)
                    EVENTS_FAILED.labels(reason="internal_error").inc()
                    log.exception("worker_batch_crashed", error=repr(exc), retry_in_s=delay)
                    self._rewind(batch)
                    await wait_any(stop, timeout_s=delay)

    def _delays(self) -> Iterator[float]:
        s = self._settings
        return backoff_delays(s.retry_initial_backoff_s, s.retry_max_backoff_s)

    def _rewind(self, batch: Batch) -> None:
        """Fetch the batch again: nothing of it was committed, nothing may be skipped."""
        assigned = self._consumer.assignment()
        for tp, records in batch.items():
            if tp in assigned and records:
                self._consumer.seek(tp, records[0].offset)

    async def handle(self, batch: Batch, stop: asyncio.Event) -> None:
        records = [r for rs in batch.values() for r in rs]
        sorted_out = triage(records)
        valid, dead, duplicates = sorted_out.valid, sorted_out.dead, sorted_out.duplicates
        with process_spans(records, self._settings.kafka_consumer_group) as trace_of:
            results = await self._apply_all(valid, dead, trace_of, stop)
            for event_id, applied in results.items():
                if applied.outcome is Outcome.UNKNOWN_ORDER:
                    record, event = valid[event_id]
                    dead.append(
                        DeadLetter(
                            record, "unknown_order", f"order {event.order_id} does not exist", 1
                        )
                    )
            await self._when_available(lambda: self._send_dead_letters(dead), stop)
            await self._commit(batch, stop)
        self._account(results, duplicates, dead, batch, valid)

    async def _apply_all(
        self, valid: Valid, dead: list[DeadLetter], trace_of: TraceOf, stop: asyncio.Event
    ) -> dict[UUID, Applied]:
        pairs = [(eid, ev.order_id) for eid, (_, ev) in valid.items()]
        traces = {ev.order_id: trace_of(record) for record, ev in valid.values()}
        try:
            return await self._when_available(lambda: self._effects.apply(pairs, traces), stop)
        except Abandoned:
            raise
        except Exception as exc:
            log.warning("worker_batch_failed_retrying_singly", error=repr(exc), events=len(pairs))
        # One bad event must not hold the others back: retry each alone, a bounded number of times.
        results: dict[UUID, Applied] = {}
        for event_id, order_id in pairs:
            outcome = await self._apply_one(event_id, order_id, traces, stop)
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
        self,
        event_id: UUID,
        order_id: UUID,
        traces: dict[UUID, dict[str, str]],
        stop: asyncio.Event,
    ) -> Applied | Exception:
        delays = self._delays()
        for attempt in range(1, self._settings.worker_max_attempts + 1):
            try:
                result = await self._when_available(
                    lambda: self._effects.apply([(event_id, order_id)], traces), stop
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

    async def _send_dead_letters(self, dead: list[DeadLetter]) -> None:
        producer = await self._producers.get()
        try:
            await send_dead_letters(producer, self._settings.dlq_topic, dead)
        except Exception as exc:
            BROKER_ERRORS.seen_error(exc)
            if not fatal_for_the_producer(exc):
                raise
            # A sequence gap (aiokafka #1017): every later send of this producer would fail.
            await self._producers.replace("producer_id")
            raise ProducerReplaced(repr(exc)) from exc

    async def _commit(self, batch: Batch, stop: asyncio.Event) -> None:
        assigned = self._consumer.assignment()
        offsets = {tp: rs[-1].offset + 1 for tp, rs in batch.items() if tp in assigned}
        if not offsets:
            return
        try:
            await self._when_available(lambda: self._consumer.commit(offsets), stop)
            BROKER_ERRORS.progress()
        except (CommitFailedError, IllegalStateError) as exc:
            # The partitions went to another member: it re-reads them, the inbox absorbs it (G5).
            log.warning("worker_commit_lost_to_rebalance", error=repr(exc))

    async def _when_available(
        self, operation: Callable[[], Awaitable[T]], stop: asyncio.Event
    ) -> T:
        """Run `operation`, waiting out a dependency that is down (until stop: Abandoned)."""
        delays = self._delays()
        while True:
            try:
                return await operation()
            except (CommitFailedError, IllegalStateError):
                raise
            except Exception as exc:
                if not is_dependency_down(exc):
                    raise
                broker = isinstance(exc, KafkaError | ProducerReplaced)
                reason = "broker_unavailable" if broker else "db_unavailable"
                EVENTS_FAILED.labels(reason=reason).inc()
                await forget_connections_after(self._pool, exc)
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
        batch: Batch,
        valid: Valid,
    ) -> None:
        applied, redelivered = account(results)
        duplicates += redelivered
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
        for record, event in valid.values():
            if event.occurred_at is not None:
                tp = TopicPartition(record.topic, record.partition)
                event_times[tp] = max(event.occurred_at, event_times.get(tp, event.occurred_at))
        record_lag(self._consumer, {tp: rs[-1].offset + 1 for tp, rs in batch.items()}, event_times)
        if applied or duplicates:
            log.debug(
                "worker_batch_committed", applied=applied, duplicates=duplicates, dead=len(dead)
            )
