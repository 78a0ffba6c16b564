"""Zero-downtime rollouts (issue: operations): two api instances are restarted one after the
other under load, as a Deployment rolls them, and clients see no 5xx and lose no order.

The client is a small load balancer: it spreads requests over the instances in rotation,
takes an instance out when its /readyz answers 503 (polled every 0.2 s, as a target group's
health check or an endpoints controller would), and retries a refused connection on the
next one. On SIGTERM an api answers /readyz 503 at once and keeps serving for
SHUTDOWN_DRAIN_S (responses say `Connection: close`, so no keep-alive connection outlives the
drain), then stops accepting and finishes what is in flight within SHUTDOWN_TIMEOUT_S.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import asyncpg
import httpx

from order_service.config import Settings
from tests.e2e.processes import Service, running_stack
from tests.faults.stream import Outcomes, item_of
from tests.faults.verdicts import assert_books_balance, settled_within

DRAIN_S = 1.5
ENV = {"SHUTDOWN_DRAIN_S": str(DRAIN_S), "SHUTDOWN_TIMEOUT_S": "5"}


class Balancer:
    def __init__(self, urls: list[str]) -> None:
        self.urls = list(urls)
        self.ready = dict.fromkeys(self.urls, True)
        self.outcomes = Outcomes()
        self.retried_refusals = 0
        self.transport_errors: list[str] = []
        self._turn = itertools.count()
        self._client = httpx.AsyncClient(timeout=10)
        self._stop = asyncio.Event()

    def replace(self, old: str, new: str) -> None:
        self.urls[self.urls.index(old)] = new
        self.ready.pop(old, None)
        self.ready[new] = False  # joins once its /readyz says so

    def _pick(self) -> list[str]:
        start = next(self._turn)
        rotation = [u for u in self.urls if self.ready.get(u)] or list(self.urls)
        return rotation[start % len(rotation) :] + rotation[: start % len(rotation)]

    async def health_checks(self) -> None:
        while not self._stop.is_set():
            for url in list(self.urls):
                try:
                    response = await self._client.get(f"{url}/readyz", timeout=1)
                    self.ready[url] = response.status_code == 200
                except httpx.TransportError:
                    self.ready[url] = False
            await asyncio.sleep(0.2)

    async def post(self, key: str) -> None:
        out = self.outcomes
        for attempt, url in enumerate(self._pick()):
            started = time.monotonic()
            try:
                response = await self._client.post(
                    f"{url}/orders",
                    json={"item": item_of(key), "quantity": 1},
                    headers={"Idempotency-Key": key},
                )
            except httpx.ConnectError:
                self.retried_refusals += attempt == 0
                continue  # refused: nothing was sent, the next instance gets it
            except httpx.TransportError as exc:
                self.transport_errors.append(f"{url}: {exc!r}")
                out.unknown.add(key)
                return
            out.latencies.append((started, time.monotonic() - started, response.status_code))
            if response.is_success:
                out.accepted[key] = response.json()["id"]
            else:
                out.refused[key] = response.status_code
            return
        out.unsent.add(key)

    async def run(self, rate: float) -> None:
        tasks: set[asyncio.Task[None]] = set()
        while not self._stop.is_set():
            task = asyncio.create_task(self.post(uuid.uuid4().hex))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            await asyncio.sleep(1.0 / rate)
        if tasks:
            await asyncio.wait(tasks)

    def stop(self) -> None:
        self._stop.set()

    async def aclose(self) -> None:
        await self._client.aclose()


def terminate(service: Service) -> float:
    started = time.monotonic()
    service.stop(signal.SIGTERM, timeout_s=30)
    return time.monotonic() - started


async def test_rolling_two_api_instances_under_load_gives_no_5xx_and_loses_no_order(
    settings: Settings, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """Every commit takes 0.3 s here (a trigger), so each api has requests in flight when its
    SIGTERM comes. Breaks caught: an api that drops them (resets, lost answers — seen with
    SIGKILL in place of SIGTERM), and one that stops accepting at SIGTERM while its /readyz
    still says 200 (with SHUTDOWN_DRAIN_S=0 the balancer met refused connections: it retried
    them elsewhere, but a balancer that does not would have failed them)."""
    await db.execute("""
        CREATE FUNCTION test_slow() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_sleep(0.3); RETURN NULL; END $$;
        CREATE TRIGGER test_slow AFTER INSERT ON outbox
          FOR EACH STATEMENT EXECUTE FUNCTION test_slow();
    """)
    with running_stack(settings, tmp_path) as stack:
        apis = [stack.start("api", **ENV), stack.start("api", **ENV)]
        stack.start("relay")
        stack.start("worker")
        balancer = Balancer([a.url for a in apis])
        checks = asyncio.create_task(balancer.health_checks())
        load = asyncio.create_task(balancer.run(rate=60))
        exits = []
        try:
            await asyncio.sleep(2.0)
            for i, old in enumerate(list(apis)):
                took = await asyncio.to_thread(terminate, old)
                exits.append(took)
                assert old.process.returncode == 0, old.output()[-2000:]
                new = stack.start("api", **ENV)
                balancer.replace(old.url, new.url)
                apis[i] = new
                await asyncio.sleep(2.0)  # both serve again before the next one rolls
        finally:
            balancer.stop()
            await load
            checks.cancel()
            await balancer.aclose()
        await db.execute("DROP TRIGGER test_slow ON outbox")
        await settled_within(db, balancer.outcomes, timeout_s=60)

    statuses = Counter(s for _, _, s in balancer.outcomes.latencies)
    assert not [s for s in statuses if s >= 500], statuses
    assert not balancer.transport_errors, balancer.transport_errors[:3]
    assert not balancer.outcomes.unsent and not balancer.outcomes.unknown
    assert set(statuses) == {201}, statuses
    assert all(took <= DRAIN_S + 5 + 1 for took in exits), exits
    assert balancer.retried_refusals == 0  # taken out of rotation by its 503 before it closed
    await assert_books_balance(db, balancer.outcomes)
    print(
        f"\n[rolling restart] {sum(statuses.values())} orders, all 201; api exits took "
        f"{[round(t, 2) for t in exits]} s; {balancer.retried_refusals} refusals retried"
    )
