"""A database outage gives a fast 503 problem+json, never a hang or a half-written order (G1)."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from order_service.bootstrap import api_app
from order_service.devstack.postgres import EmbeddedPostgres
from tests.conftest import Infra, make_settings

BODY = {"item": "book", "quantity": 1}


@pytest.fixture
async def outage_client(
    own_postgres: EmbeddedPostgres, infra: Infra
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(infra, "orderdb", postgres_dsn=own_postgres.dsn())
    app = api_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


async def _counts(pg: EmbeddedPostgres) -> tuple[int, int, int]:
    conn = await asyncpg.connect(pg.dsn("postgresql"))
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM outbox),"
            " (SELECT count(*) FROM idempotency_keys)"
        )
    finally:
        await conn.close()
    return row[0], row[1], row[2]


async def test_a_stopped_database_gives_503_fast_and_service_resumes_by_itself(
    own_postgres: EmbeddedPostgres, outage_client: httpx.AsyncClient
) -> None:
    assert (await outage_client.post("/orders", json=BODY)).status_code == 201
    own_postgres.stop()

    started = time.monotonic()
    down = await outage_client.post("/orders", json=BODY, headers={"Idempotency-Key": "a"})
    read = await outage_client.get(f"/orders/{uuid.uuid4()}")
    listing = await outage_client.get("/orders")
    ready = await outage_client.get("/readyz")
    elapsed = time.monotonic() - started

    assert down.status_code == 503
    assert down.headers["content-type"] == "application/problem+json"
    assert down.headers["retry-after"] == "1"
    assert ready.status_code == 503 and ready.json()["checks"]["database"] == "down"
    assert read.status_code == listing.status_code == 503
    assert read.headers["content-type"] == "application/problem+json"
    assert elapsed < 10

    own_postgres.start()
    await asyncio.sleep(1.1)  # readiness is cached for a second
    again = await outage_client.post("/orders", json=BODY, headers={"Idempotency-Key": "a"})
    assert again.status_code == 201
    assert (await outage_client.get("/readyz")).status_code == 200
    assert await _counts(own_postgres) == (2, 2, 1)


async def test_a_frozen_database_gives_503_within_the_timeout_not_a_hang(
    own_postgres: EmbeddedPostgres, outage_client: httpx.AsyncClient
) -> None:
    assert (await outage_client.post("/orders", json=BODY)).status_code == 201
    own_postgres.signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        # More requests than pooled connections: the waits for a connection are bounded too.
        responses = await asyncio.gather(
            *(outage_client.post("/orders", json=BODY) for _ in range(30)),
            *(outage_client.get("/orders") for _ in range(15)),
        )
        elapsed = time.monotonic() - started
    finally:
        own_postgres.signal(signal.SIGCONT)

    assert {r.status_code for r in responses} == {503}
    assert elapsed < 10
    # Whatever was in flight either committed whole or not at all: never half an order.
    orders, events, _ = await _counts(own_postgres)
    assert orders == events
    await asyncio.sleep(0.5)
    assert (await outage_client.post("/orders", json=BODY)).status_code == 201
