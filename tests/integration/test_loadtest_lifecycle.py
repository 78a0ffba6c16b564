"""`order-service loadtest` through the order lifecycle, against a real stack in this process:
the api under uvicorn, the relay and the worker as tasks, on the session's PostgreSQL and
Apache Kafka. A stock-managed item with far less stock than demand, cancellations racing the
worker, and `--verify` judging the outcome — and seen failing when the books are cooked or
the orders never leave PENDING."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import asyncpg
import httpx
import pytest
import uvicorn
from rich.console import Console

from order_service.bootstrap import api_app
from order_service.config import Settings
from order_service.devstack.ports import free_port
from order_service.loadtest.command import EXIT_LOST, execute, exit_code
from order_service.loadtest.options import LoadOptions, build_options
from order_service.loadtest.summary import Summary
from order_service.messaging.kafka_client import ensure_topics
from order_service.messaging.relay import run_relay
from order_service.messaging.worker import run_worker
from tests.factories import Background

pytestmark = pytest.mark.integration

ITEM = "loadtest lamp"
STOCK = 60
# A reservation that also "finds" one unit: the books no longer balance (a G9 breach).
LEAKING_STOCK = """
CREATE FUNCTION leak_a_unit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.reserved > OLD.reserved THEN NEW.available := NEW.available + 1; END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER leak_a_unit BEFORE UPDATE ON stock FOR EACH ROW EXECUTE FUNCTION leak_a_unit();
"""


class _QuietServer(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Iterator[None]:  # the test runner keeps its own signals
        yield


@asynccontextmanager
async def serving_api(settings: Settings) -> AsyncIterator[str]:
    port = free_port()
    config = uvicorn.Config(
        api_app(settings),
        host="127.0.0.1",
        port=port,
        lifespan="on",
        access_log=False,
        log_config=None,
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(30):
        while not server.started:
            assert not task.done(), "the api did not start"
            await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def worker_deciding(url: str) -> None:
    """One order through to CONFIRMED: the worker holds its partitions, so the load's cancels
    race its decisions instead of all meeting PENDING orders."""
    async with httpx.AsyncClient(base_url=url) as client, asyncio.timeout(30):
        order = (await client.post("/orders", json={"item": "warm-up", "quantity": 1})).json()
        while (await client.get(f"/orders/{order['id']}")).json()["status"] != "CONFIRMED":
            await asyncio.sleep(0.05)


def lifecycle_options(url: str, **overrides: object) -> LoadOptions:
    values: dict[str, object] = {
        "url": url,
        "rate": 50.0,
        "duration_s": 3.0,
        "stock": STOCK,
        "managed_item": ITEM,
        "managed_share": 0.6,
        "cancel_ratio": 0.3,
        "replay_ratio": 0.1,
        "seed": 11,
    }
    values.update(overrides)
    return build_options(**values)


async def run_loadtest(options: LoadOptions, verify_timeout_s: float = 60.0) -> Summary:
    console = Console(file=io.StringIO(), width=120)
    summary, _ = await execute(options, console, verify=True, verify_timeout_s=verify_timeout_s)
    return summary


async def books_in_the_database(db: asyncpg.Connection) -> tuple[int, int, int]:
    """(available, reserved, units held by CONFIRMED orders) as PostgreSQL holds them."""
    stock = await db.fetchrow("SELECT available, reserved FROM stock WHERE item = $1", ITEM)
    held = await db.fetchval(
        "SELECT COALESCE(sum(quantity), 0) FROM orders WHERE item = $1 AND status = 'CONFIRMED'",
        ITEM,
    )
    return stock["available"], stock["reserved"], held


async def test_a_managed_item_short_of_stock_with_cancels_settles_and_balances(
    settings: Settings, db: asyncpg.Connection
) -> None:
    """Catches a --verify that still waits for CONFIRMED only (REJECTED and CANCELLED orders
    would never settle), a cancel's 409 for a REJECTED order judged an error, and books that
    count the units of rejected or cancelled orders; the database is read to check the
    loadtest's own reading of the stock."""
    await ensure_topics(settings)
    async with (
        serving_api(settings) as url,
        Background(run_worker, settings),
        Background(run_relay, settings),
    ):
        await worker_deciding(url)
        started = time.monotonic()
        # Cancels spread over a second: some meet PENDING orders, some the worker's decision.
        summary = await run_loadtest(lifecycle_options(url, cancel_delay_s=1.0))
        took = time.monotonic() - started

    data = summary.as_dict()
    verify = summary.verify
    assert verify is not None and verify.ok, data["verify"]
    assert exit_code(summary, lifecycle_options(url)) == 0
    assert sum(summary.errors.values()) == 0, data
    assert summary.outcomes["replayed"] > 0
    assert verify.states.get("REJECTED", 0) > 0, "demand must far exceed the stock"
    assert verify.states.get("CANCELLED", 0) > 0
    assert verify.settled == verify.expected == summary.accepted
    cancels = summary.cancels
    assert cancels is not None and sum(cancels.errors.values()) == 0, data["cancels"]
    assert cancels.outcomes["cancelled"] + cancels.outcomes["refused_rejected"] == cancels.orders
    assert cancels.outcomes["refused_rejected"] > 0, "no cancel met a REJECTED order"
    books = verify.books
    assert books is not None and books.ok
    assert 0 < books.confirmed_units <= STOCK
    available, reserved, held = await books_in_the_database(db)
    assert (books.available, books.reserved, books.confirmed_units) == (available, reserved, held)
    assert available + held == STOCK
    assert took < 60


async def test_verify_fails_when_a_reservation_makes_up_a_unit(
    settings: Settings, db: asyncpg.Connection
) -> None:
    """The deliberately broken stock keeping (a trigger adds a unit whenever one is
    reserved): every order settles, yet --verify must fail on the books and exit 1."""
    await ensure_topics(settings)
    await db.execute(LEAKING_STOCK)
    async with (
        serving_api(settings) as url,
        Background(run_worker, settings),
        Background(run_relay, settings),
    ):
        await worker_deciding(url)
        options = lifecycle_options(url, duration_s=2.0, cancel_ratio=0.0, replay_ratio=0.0)
        summary = await run_loadtest(options)

    verify = summary.verify
    assert verify is not None
    assert verify.settled == verify.expected  # nothing lost, nothing pending: only the books
    assert verify.books is not None and not verify.books.ok
    assert any(f"not the {STOCK} set" in p for p in verify.books.problems), verify.problems
    assert not verify.ok
    assert exit_code(summary, options) == EXIT_LOST


async def test_verify_fails_when_orders_are_left_pending(settings: Settings) -> None:
    """No worker: the orders stay PENDING; --verify must wait out its timeout and fail,
    while the orders cancelled meanwhile count as settled and the untouched books balance."""
    await ensure_topics(settings)
    async with serving_api(settings) as url, Background(run_relay, settings):
        options = lifecycle_options(url, rate=30.0, duration_s=1.0, replay_ratio=0.0)
        summary = await run_loadtest(options, verify_timeout_s=1.5)

    verify = summary.verify
    assert verify is not None and not verify.ok
    assert verify.timed_out and verify.drain_s is None
    assert verify.states.get("PENDING", 0) > 0
    assert verify.states.get("CANCELLED", 0) == summary.cancels.orders  # type: ignore[union-attr]
    assert verify.books is not None and verify.books.ok  # no worker: no unit moved
    assert exit_code(summary, options) == EXIT_LOST
