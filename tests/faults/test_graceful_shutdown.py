"""G8 under load: SIGTERM to the api, a relay and a worker mid-stream — in-flight work finishes
or is handed back, nothing is lost or half-written, each exits within SHUTDOWN_TIMEOUT_S."""

from __future__ import annotations

import asyncio
import signal
import time

import asyncpg

from order_service.config import Settings
from tests.e2e.processes import Service, Stack
from tests.faults.stream import OrderStream
from tests.faults.verdicts import assert_books_balance, settled_within

SLACK_S = 1.0


def terminate(service: Service, budget_s: float) -> tuple[int, float]:
    started = time.monotonic()
    code = service.stop(signal.SIGTERM, timeout_s=budget_s + 10)
    return code, time.monotonic() - started


async def test_sigterm_to_api_relay_and_worker_under_load_loses_nothing_and_exits_in_time(
    stack: Stack, settings: Settings, db: asyncpg.Connection
) -> None:
    budget = settings.shutdown_timeout_s + SLACK_S
    api = stack.start("api")
    relay = stack.start("relay")
    worker = stack.start("worker")

    async with OrderStream(api.url, rate=80) as stream:
        await asyncio.sleep(2.0)
        code, took = await asyncio.to_thread(terminate, relay, budget)
        assert code == 0 and took <= budget, (code, took, relay.output()[-2000:])
        await asyncio.sleep(1.0)
        code, took = await asyncio.to_thread(terminate, worker, budget)
        assert code == 0 and took <= budget, (code, took, worker.output()[-2000:])
        await asyncio.sleep(1.0)
        code, took = await asyncio.to_thread(terminate, api, budget)
        assert code == -signal.SIGTERM and took <= budget, (code, took, api.output()[-2000:])
        await asyncio.sleep(0.5)
        await stream.stop()

        # Nothing in flight got a 5xx; a request after the api stopped is simply refused.
        assert not [s for s in stream.outcomes.statuses() if s >= 500]
        api = stack.start("api")
        stack.start("relay")
        stack.start("worker")
        stream.point_at(api.url)
        await stream.resolve()

    assert stream.outcomes.unsent, "the stream never met the stopped api"
    assert all("Traceback" not in s.output() for s in stack.services)
    took = await settled_within(db, stream.outcomes, timeout_s=60)
    await assert_books_balance(db, stream.outcomes)
    print(
        f"\n[sigterm] {len(stream.outcomes.accepted)} accepted, "
        f"{len(stream.outcomes.unsent)} refused connections, confirmed {took:.1f}s after restart"
    )
