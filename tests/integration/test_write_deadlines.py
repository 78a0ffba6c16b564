"""G1 and G10 when the database answers slower than requests arrive: every POST is answered
within REQUEST_TIMEOUT_S, the write queue is bounded, and a 503 says truthfully whether the
order was written (`outcome`), checked against what the database holds afterwards.

The database is slowed for real: a trigger on the outbox sleeps inside the group commit's
statement, exactly where a slow disk, a lock or a synchronous standby would make it wait.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY

from order_service.bootstrap import api_app
from order_service.config import Settings
from order_service.domain.errors import NotWritten
from order_service.persistence.database import create_pool
from order_service.persistence.order_writer import OrderWriter
from order_service.service.place_order import IdempotencyContext, OrderPlacement
from tests.conftest import Infra, make_settings

pytestmark = pytest.mark.integration

SLOW_OUTBOX = """
CREATE TABLE test_slowness (seconds float8 NOT NULL);
INSERT INTO test_slowness VALUES (0);
CREATE FUNCTION test_slow_down() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_sleep((SELECT seconds FROM test_slowness));
  RETURN NULL;
END $$;
CREATE TRIGGER test_slow_outbox AFTER INSERT ON outbox
  FOR EACH STATEMENT EXECUTE FUNCTION test_slow_down();
"""


async def slow_down(db: asyncpg.Connection, seconds: float) -> None:
    await db.execute("UPDATE test_slowness SET seconds = $1", seconds)


async def client_for(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = api_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=30) as c:
            yield c


@pytest.fixture
async def slow_db(db: asyncpg.Connection) -> asyncpg.Connection:
    await db.execute(SLOW_OUTBOX)
    return db


async def post(client: httpx.AsyncClient, item: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await client.post(
        "/orders", json={"item": item, "quantity": 1}, headers={"Idempotency-Key": item}
    )
    return response, time.monotonic() - started


async def stored_items(db: asyncpg.Connection) -> set[str]:
    return {r["item"] for r in await db.fetch("SELECT item FROM orders")}


async def test_requests_queued_past_their_deadline_are_not_written_ever_and_say_so(
    infra: Infra, database: str, slow_db: asyncpg.Connection
) -> None:
    """Breaks caught: a queue wait that ignores the deadline (answers take the commit's 1.6 s),
    a queued write sent after its caller was told not_written (its item would be stored), and a
    lost commit answered not_written (the first order exists although it was refused)."""
    settings = make_settings(
        infra, database, request_timeout_s=1.0, db_pool_max_size=2, db_statement_timeout_ms=8000
    )
    await slow_down(slow_db, 1.6)
    async for client in client_for(settings):
        first = asyncio.create_task(post(client, "in-flight"))
        await asyncio.sleep(0.2)  # its statement is running; the one flush slot is busy
        queued = await asyncio.gather(*(post(client, f"queued-{i}") for i in range(10)))
        in_flight, in_flight_took = await first
        await slow_down(slow_db, 0)

        assert in_flight.status_code == 503
        assert in_flight.json()["outcome"] == "unknown"
        order_id = in_flight.json()["order_id"]
        assert in_flight_took < 1.0 + 0.3
        for response, took in queued:
            assert response.status_code == 503, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["outcome"] == "not_written"
            assert took < 1.0 + 0.3
        # The unknown one is resolvable: it committed once the slow statement finished.
        async with asyncio.timeout(5):
            while (await client.get(f"/orders/{order_id}")).status_code != 200:
                await asyncio.sleep(0.1)
        replay = await client.post(
            "/orders",
            json={"item": "in-flight", "quantity": 1},
            headers={"Idempotency-Key": "in-flight"},
        )
        assert replay.status_code == 201 and replay.headers["idempotency-replayed"] == "true"
        await asyncio.sleep(1.0)  # time for a wrongly kept write to reach the database
    assert await stored_items(slow_db) == {"in-flight"}


async def test_a_full_write_queue_answers_503_not_written_at_once(
    infra: Infra, database: str, slow_db: asyncpg.Connection
) -> None:
    """Breaks caught: an unbounded queue (all 20 would wait and be written), a refusal that
    waits for the deadline, and a refused request that is written anyway."""
    settings = make_settings(
        infra, database, request_timeout_s=3.0, db_pool_max_size=2, write_queue_max=4
    )
    await slow_down(slow_db, 1.0)
    async for client in client_for(settings):
        first = asyncio.create_task(post(client, "in-flight"))
        await asyncio.sleep(0.2)
        await slow_down(slow_db, 0)  # the running statement still sleeps its second
        burst = await asyncio.gather(*(post(client, f"burst-{i}") for i in range(20)))
        assert (await first)[0].status_code == 201

    refused = [r for r, took in burst if r.status_code == 503]
    accepted = [r for r, took in burst if r.status_code == 201]
    assert len(accepted) == 4 and len(refused) == 16, [r.status_code for r, _ in burst]
    assert all(r.json()["outcome"] == "not_written" for r in refused)
    assert max(took for r, took in burst if r.status_code == 503) < 0.5
    assert await stored_items(slow_db) == {"in-flight", *(r.json()["item"] for r in accepted)}


async def test_committed_orders_of_a_batch_get_their_answer_when_the_follow_up_read_fails(
    infra: Infra, database: str, db: asyncpg.Connection
) -> None:
    """A batch commits two new orders and meets a duplicate key; the read of the duplicate's
    stored response then fails (the role may not read it). Break caught: the old writer failed
    the whole batch, so the two committed orders were answered 503."""
    role = f"app_{uuid.uuid4().hex[:8]}"
    await db.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'app'")
    try:
        await db.execute(f"GRANT SELECT, INSERT, UPDATE ON orders, outbox TO {role}")
        await db.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}")
        await db.execute(
            f"GRANT INSERT, SELECT (order_id, principal, idem_key) ON idempotency_keys TO {role}"
        )
        dsn = infra.dsn(database).replace("postgres:postgres@", f"{role}:app@")
        settings = make_settings(infra, database, postgres_dsn=dsn)
        pool = await create_pool(settings)
        try:
            writer = OrderWriter(
                pool,
                max_batch=64,
                max_concurrent_flushes=1,
                acquire_timeout_s=2,
                statement_timeout_s=5,
                max_queue=64,
            )
            placement = OrderPlacement(writer, topic="orders.created.t", source="test")
            deadline = asyncio.get_running_loop().time() + 5

            def render(order: object) -> tuple[int, bytes]:
                return 201, b"{}"

            def keyed(key: str) -> IdempotencyContext:
                return IdempotencyContext("alice", key, "POST", "/orders")

            await placement.place("first", 1, render, keyed("k"), owner="alice", deadline=deadline)
            batches = REGISTRY.get_sample_value("orders_write_batch_size_count") or 0
            results = await asyncio.gather(
                placement.place("a", 1, render, owner="alice", deadline=deadline),
                placement.place("b", 1, render, owner="alice", deadline=deadline),
                placement.place("first", 1, render, keyed("k"), owner="alice", deadline=deadline),
                return_exceptions=True,
            )
            assert (REGISTRY.get_sample_value("orders_write_batch_size_count") or 0) == batches + 1
        finally:
            await pool.close()
    finally:
        await db.execute(f"REASSIGN OWNED BY {role} TO postgres; DROP OWNED BY {role}")
        await db.execute(f"DROP ROLE {role}")

    a, b, duplicate = results
    assert not isinstance(a, BaseException) and not isinstance(b, BaseException), results
    assert isinstance(duplicate, NotWritten), duplicate
    assert await stored_items(db) == {"first", "a", "b"}


async def test_a_write_that_fails_inside_its_transaction_leaves_nothing_and_is_503_not_written(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """G1: the outbox insert fails after the order and the key were inserted in the same
    statement. Breaks caught: separate commits (an order or a key would remain), and a 500
    or a 2xx instead of 503 not_written."""
    await db.execute("""
        CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'outbox refused by test'; END $$;
        CREATE TRIGGER test_refuse_outbox BEFORE INSERT ON outbox
          FOR EACH ROW EXECUTE FUNCTION test_refuse();
    """)
    responses = await asyncio.gather(
        *(
            client.post(
                "/orders",
                json={"item": f"x{i}", "quantity": 1},
                headers={"Idempotency-Key": f"k{i}"},
            )
            for i in range(5)
        )
    )
    for response in responses:
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["outcome"] == "not_written"
    counts = await db.fetchrow(
        "SELECT (SELECT count(*) FROM orders) AS orders, (SELECT count(*) FROM outbox) AS events,"
        " (SELECT count(*) FROM idempotency_keys) AS keys"
    )
    assert dict(counts) == {"orders": 0, "events": 0, "keys": 0}
