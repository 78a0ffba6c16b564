"""Drives the load: the open model (arrivals on a schedule) or the closed model (N workers);
cancels a share of the accepted orders a moment later, beside the load."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import aiohttp

from order_service.loadtest.bodies import Planned, PlannedRequest, RequestFactory
from order_service.loadtest.cancels import CancelKind
from order_service.loadtest.client import post_cancel, post_order
from order_service.loadtest.options import LoadOptions
from order_service.loadtest.outcome import Kind, Outcome, retry_wait
from order_service.loadtest.recorder import Recorder
from order_service.loadtest.schedule import (
    Budget,
    arrival_offset,
    cancel_delay,
    worker_start_offsets,
)

_INTERRUPT_GRACE_S = 2.0
# A 409 "still in flight" is asked again after its Retry-After, this many times at most.
IN_FLIGHT_RETRIES = 5


@dataclass(frozen=True)
class RunResult:
    started_at: float  # loop clock
    ended_at: float  # the last order request answered (cancels may still follow)
    interrupted: bool
    cancelled: int  # in flight when an interrupt's grace ran out; their fate is unknown

    @property
    def elapsed_s(self) -> float:
        return self.ended_at - self.started_at


async def sleep_or_stop(stop: asyncio.Event, delay_s: float) -> bool:
    """Sleep `delay_s`; True if `stop` was set first."""
    if delay_s <= 0:
        return stop.is_set()
    try:
        await asyncio.wait_for(stop.wait(), delay_s)
    except TimeoutError:
        return False
    return True


class LoadRun:
    def __init__(
        self,
        options: LoadOptions,
        session: aiohttp.ClientSession,
        factory: RequestFactory,
        recorder: Recorder,
        stop: asyncio.Event,
        cancel_rng: random.Random | None = None,
    ) -> None:
        self._options = options
        self._session = session
        self._factory = factory
        self._recorder = recorder
        self._stop = stop
        # Its own generator: which orders are cancelled depends on the order answers arrive
        # in, and must not shift the seeded sequence of bodies.
        seed = None if options.seed is None else options.seed + 1
        self._cancel_rng = cancel_rng or random.Random(seed)
        self._budget = Budget(options.total, options.duration_s)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._cancelling: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()
        self.started_at = self._loop.time()

    @property
    def issued(self) -> int:
        return self._budget.issued

    def elapsed(self) -> float:
        return self._loop.time() - self.started_at

    async def run(self) -> RunResult:
        self.started_at = self._loop.time()
        driver = asyncio.create_task(
            self._open_model() if self._options.open_model else self._closed_model()
        )
        stopper = asyncio.create_task(self._stop.wait())
        # Ctrl-C must not wait for closed-model workers to finish their current request.
        await asyncio.wait({driver, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        driver.cancel()
        await asyncio.gather(driver, stopper, return_exceptions=True)
        if not driver.cancelled() and driver.exception() is not None:
            raise driver.exception()  # type: ignore[misc]
        cancelled = await self._settle()
        ended_at = self._loop.time()
        await self._settle_cancels()
        return RunResult(self.started_at, ended_at, self._stop.is_set(), cancelled)

    async def _post(self, planned: PlannedRequest, due: float) -> Outcome:
        outcome = await post_order(
            self._session, self._options, planned, due=due, offset_s=due - self.started_at
        )
        self._recorder.record(outcome)
        return outcome

    async def _one(self, due: float) -> None:
        planned = self._factory.next(self._recorder.replayable)
        outcome = await self._post(planned, due)
        for _ in range(IN_FLIGHT_RETRIES):
            if outcome.kind is not Kind.REPLAY_IN_FLIGHT:
                break
            # The client the contract describes: wait as told, then ask again with the key.
            if await sleep_or_stop(self._stop, retry_wait(outcome.retry_after_s)):
                return
            outcome = await self._post(planned, self._loop.time())
        if (
            outcome.kind is Kind.ACCEPTED
            and planned.kind is Planned.NEW
            and outcome.order_id is not None
        ):
            self._maybe_cancel(outcome.order_id)

    def _maybe_cancel(self, order_id: str) -> None:
        delay = cancel_delay(
            self._cancel_rng, self._options.cancel_ratio, self._options.cancel_delay_s
        )
        if delay is None:
            return
        key = str(uuid.UUID(int=self._cancel_rng.getrandbits(128), version=4))
        task = asyncio.create_task(self._cancel(order_id, key, delay))
        self._cancelling.add(task)
        task.add_done_callback(self._cancelling.discard)

    async def _cancel(self, order_id: str, key: str, delay_s: float) -> None:
        if await sleep_or_stop(self._stop, delay_s):
            self._recorder.cancels_abandoned += 1
            return
        for attempt in range(IN_FLIGHT_RETRIES + 1):
            outcome = await post_cancel(self._session, self._options, order_id, key)
            self._recorder.record_cancel(outcome)
            if outcome.kind is not CancelKind.IN_FLIGHT or attempt == IN_FLIGHT_RETRIES:
                return
            if await sleep_or_stop(self._stop, retry_wait(outcome.retry_after_s)):
                return

    async def _open_model(self) -> None:
        rate = self._options.rate
        assert rate is not None
        k = 0
        while not self._stop.is_set():
            offset = arrival_offset(k, rate, self._options.ramp_up_s, self._options.burst)
            if not self._budget.allows(offset):
                return
            due = self.started_at + offset
            if await sleep_or_stop(self._stop, due - self._loop.time()):
                return
            self._budget.take(offset)
            k += 1
            if len(self._in_flight) >= self._options.max_in_flight:
                self._record_dropped(offset)
                continue
            self._spawn(self._one(due))
            if k % 64 == 0:
                await asyncio.sleep(0)  # when behind schedule, let responses be read

    async def _closed_model(self) -> None:
        concurrency = self._options.concurrency
        assert concurrency is not None
        offsets = worker_start_offsets(concurrency, self._options.ramp_up_s)
        await asyncio.gather(*(self._worker(offset) for offset in offsets))

    async def _worker(self, start_offset: float) -> None:
        if await sleep_or_stop(self._stop, start_offset):
            return
        while not self._stop.is_set() and self._budget.take(self.elapsed()):
            task = self._spawn(self._one(self._loop.time()))
            await asyncio.wait({task})

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        return task

    def _record_dropped(self, offset: float) -> None:
        planned = self._factory.next(())
        self._recorder.record(Outcome(planned, Kind.DROPPED, None, 0.0, offset))

    async def _settle(self) -> int:
        """Let requests in flight finish: fully on a normal end, within a grace on Ctrl-C."""
        if not self._in_flight:
            return 0
        grace = _INTERRUPT_GRACE_S if self._stop.is_set() else None
        _done, pending = await asyncio.wait(set(self._in_flight), timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        return len(pending)

    async def _settle_cancels(self) -> None:
        """Cancels scheduled near the end still go out (each within `--cancel-delay`); on
        Ctrl-C the sleeping ones give up at once and the ones in flight get the grace."""
        if not self._cancelling:
            return
        grace = _INTERRUPT_GRACE_S if self._stop.is_set() else None
        _done, pending = await asyncio.wait(set(self._cancelling), timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        self._recorder.cancels_abandoned += len(pending)
