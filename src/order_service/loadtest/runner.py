"""Drives the load: the open model (arrivals on a schedule) or the closed model (N workers)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import aiohttp

from order_service.loadtest.bodies import RequestFactory
from order_service.loadtest.client import post_order
from order_service.loadtest.options import LoadOptions
from order_service.loadtest.outcome import Kind, Outcome
from order_service.loadtest.recorder import Recorder
from order_service.loadtest.schedule import Budget, arrival_offset, worker_start_offsets

_INTERRUPT_GRACE_S = 2.0


@dataclass(frozen=True)
class RunResult:
    started_at: float  # loop clock
    ended_at: float
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
    ) -> None:
        self._options = options
        self._session = session
        self._factory = factory
        self._recorder = recorder
        self._stop = stop
        self._budget = Budget(options.total, options.duration_s)
        self._in_flight: set[asyncio.Task[None]] = set()
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
        return RunResult(self.started_at, self._loop.time(), self._stop.is_set(), cancelled)

    async def _one(self, due: float) -> None:
        planned = self._factory.next(self._recorder.replayable)
        outcome = await post_order(
            self._session, self._options, planned, due=due, offset_s=due - self.started_at
        )
        self._recorder.record(outcome)

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
