"""G1, G3, G4, G5, G9 under load: api, two relays and two workers as OS processes, faults in
sequence.

One stack (own PostgreSQL + own Apache Kafka node, so freezing them disturbs no other test)
takes a steady stream of orders — half of them for one stock-managed item with far less stock
than demand, a fifth of the accepted ones cancelled a moment later, racing the worker — while
the broker hangs, processes are SIGKILLed, PostgreSQL goes away and a third worker joins. After each
fault: nothing is PENDING, one order per 2xx and none for a refusal, each order's event applied
once (one inbox row, one decision), the item's units conserved (available + confirmed = the
stock set, never below zero). At the end every event is on its topic, in commit order per
order, and each order's status events follow its transitions to its final status.

Deterministic mid-batch kills (the kill lands between a commit and its offset commit, or
between an ack and its mark) are in tests/integration/test_worker.py and test_relay.py; here a
SIGKILL lands wherever the stream happens to be.
"""

from __future__ import annotations

import asyncio
import signal
import time

import asyncpg
import httpx

from tests.e2e.processes import Service, Stack
from tests.faults.conftest import FAST_FAILURE_ENV, OwnInfra
from tests.faults.stream import HOT_ITEM, OrderStream
from tests.faults.verdicts import (
    assert_books_balance,
    assert_events_on_the_topics,
    settled_within,
)
from tests.scrape import ready_status

RATE = 60.0
HOT_STOCK = 40
REQUEST_TIMEOUT_S = float(FAST_FAILURE_ENV["REQUEST_TIMEOUT_S"])


def readyz(service: Service) -> int:
    return ready_status(service.url)


STOCK_SEEN = {"min": HOT_STOCK}


async def lowest_stock_seen(dsn: str) -> None:
    """Samples the item's available units all along (G9: never below zero)."""
    while True:
        try:
            conn = await asyncpg.connect(dsn, timeout=1)
            try:
                while True:
                    value = await conn.fetchval(
                        "SELECT available FROM stock WHERE item = $1", HOT_ITEM, timeout=1
                    )
                    STOCK_SEEN["min"] = min(STOCK_SEEN["min"], value)
                    await asyncio.sleep(0.05)
            finally:
                conn.terminate()
        except (OSError, asyncpg.PostgresError, TimeoutError):
            await asyncio.sleep(0.2)  # PostgreSQL is away in phase 3


async def settle(what: str, stream: OrderStream, dsn: str, fault_over: float) -> None:
    """Pause the stream so the books can be balanced, check them, and carry on."""
    await stream.stop()
    await stream.resolve()
    db = await asyncpg.connect(dsn)  # a fresh one: the last may have died with PostgreSQL
    try:
        took = await settled_within(db, stream.outcomes, timeout_s=60)
        await assert_books_balance(db, stream.outcomes, hot_stock=HOT_STOCK)
    finally:
        await db.close()
    recovered = time.monotonic() - fault_over
    print(
        f"\n[{what}] recovered {recovered:.1f}s after the fault ended "
        f"(last order settled {took:.1f}s after the check began); "
        f"{len(stream.outcomes.accepted)} accepted, {len(stream.outcomes.refused)} refused"
    )
    stream.resume()


async def test_orders_survive_broker_hang_kills_database_outage_and_rebalance_exactly_once(
    own_infra: OwnInfra, own_stack: Stack
) -> None:
    settings = own_infra.settings
    dsn = settings.asyncpg_dsn
    api = own_stack.start("api", **FAST_FAILURE_ENV)
    relays = [own_stack.start("relay", **FAST_FAILURE_ENV) for _ in range(2)]
    workers = [own_stack.start("worker", **FAST_FAILURE_ENV) for _ in range(2)]

    async with httpx.AsyncClient(base_url=api.url) as client:
        stocked = await client.put(f"/stock/{HOT_ITEM}", json={"available": HOT_STOCK})
        assert stocked.status_code == 200
    lowest = asyncio.create_task(lowest_stock_seen(dsn))

    async with OrderStream(api.url, rate=RATE, hot_share=0.5, cancel_share=0.2) as stream:
        # Warm-up: both workers have joined the group once the first orders are confirmed.
        await asyncio.sleep(1.0)
        await settle("warm-up", stream, dsn, time.monotonic())

        # 1. The broker hangs: the api never waits on Kafka, so it keeps accepting, fast.
        hang_started = time.monotonic()
        own_infra.broker.signal(signal.SIGSTOP)
        await asyncio.sleep(5.0)
        own_infra.broker.signal(signal.SIGCONT)
        hang_over = time.monotonic()
        during = stream.outcomes.statuses(hang_started, hang_over)
        assert set(during) == {201}, during
        assert sum(during.values()) >= RATE * 4
        # Well under the 5 s hang: no request waited for the broker (speed is for make bench).
        assert stream.outcomes.slowest(hang_started, hang_over) < 2.5
        await asyncio.sleep(1.0)
        await settle("broker SIGSTOP 5s", stream, dsn, hang_over)

        # 2. A relay and a worker die mid-batch and come back.
        relays[0].stop(signal.SIGKILL)
        workers[0].stop(signal.SIGKILL)
        await asyncio.sleep(1.0)
        relays[0] = own_stack.start("relay", **FAST_FAILURE_ENV)
        workers[0] = own_stack.start("worker", **FAST_FAILURE_ENV)
        restarted = time.monotonic()
        await asyncio.sleep(1.0)
        await settle("relay + worker SIGKILL", stream, dsn, restarted)

        # 3. PostgreSQL goes away: fast 503 problem+json, readiness red, then green by itself.
        outage_started = time.monotonic()
        own_infra.postgres.stop()
        await asyncio.sleep(1.5)
        assert await asyncio.to_thread(readyz, api) == 503
        await asyncio.sleep(1.5)
        own_infra.postgres.start()
        outage_over = time.monotonic()
        deadline = outage_over + 20
        while await asyncio.to_thread(readyz, api) != 200:
            assert time.monotonic() < deadline, "api /readyz did not turn green"
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        answered = stream.outcomes.statuses(outage_started, outage_over)
        assert answered[503] > 0, answered
        assert set(answered) <= {201, 503}, answered
        assert stream.outcomes.slowest(outage_started, outage_over) < REQUEST_TIMEOUT_S + 1
        assert not stream.outcomes.not_problem_json, stream.outcomes.not_problem_json[:3]
        await settle("PostgreSQL down 3s", stream, dsn, outage_over)

        # 4. A third worker joins while messages are in flight: the group rebalances.
        workers.append(own_stack.start("worker", **FAST_FAILURE_ENV))
        joined = time.monotonic()
        await asyncio.sleep(6.0)
        await settle("rebalance to 3 workers", stream, dsn, joined)
        await stream.stop()

    lowest.cancel()
    assert all(w.process.poll() is None for w in [*workers, *relays, api])
    db = await asyncpg.connect(dsn)
    try:
        records, duplicates = await assert_events_on_the_topics(
            db,
            settings.kafka_bootstrap_servers,
            settings.kafka_order_topic,
            settings.kafka_status_topic,
        )
        states = dict(
            await db.fetch(
                "SELECT status, count(*) FROM orders WHERE item = $1 GROUP BY status", HOT_ITEM
            )
        )
    finally:
        await db.close()
    assert states.get("CONFIRMED", 0) + states.get("CANCELLED", 0) > 0
    assert states.get("REJECTED", 0) > HOT_STOCK  # far more demand than stock: the surplus
    assert stream.outcomes.cancels, "the stream cancelled nothing"
    assert STOCK_SEEN["min"] >= 0
    print(
        f"[topics] {records} records, {duplicates} redelivered duplicates; hot item {states}; "
        f"{len(stream.outcomes.cancels)} cancels; lowest available seen {STOCK_SEEN['min']}"
    )
    async with httpx.AsyncClient(base_url=api.url) as client:
        assert (await client.get("/readyz")).status_code == 200
