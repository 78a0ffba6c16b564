"""G2: Idempotency-Key — replay, 422 on a changed body, 409 in flight, one order under a storm."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest

BODY = {"item": "book", "quantity": 2}


async def test_same_key_and_body_replays_the_first_response_without_a_second_order(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    headers = {"Idempotency-Key": "k-1"}
    first = await client.post("/orders", json=BODY, headers=headers)
    second = await client.post("/orders", json=BODY, headers=headers)

    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["idempotency-replayed"] == "true"
    assert "idempotency-replayed" not in first.headers
    assert second.headers["location"] == first.headers["location"]
    assert await db.fetchval("SELECT count(*) FROM orders") == 1
    assert await db.fetchval("SELECT count(*) FROM outbox") == 1


async def test_the_seed_endpoint_replays_its_own_200_body(client: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "seed-1"}
    first = await client.post("/order", json=BODY, headers=headers)
    second = await client.post("/order", json=BODY, headers=headers)

    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()


async def test_same_key_with_a_different_body_is_422_and_stores_nothing_new(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    headers = {"Idempotency-Key": "k-2"}
    await client.post("/orders", json=BODY, headers=headers)

    other = await client.post("/orders", json={"item": "book", "quantity": 3}, headers=headers)

    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"
    assert await db.fetchval("SELECT count(*) FROM orders") == 1


async def test_same_key_on_the_other_endpoint_is_a_different_request_and_422(
    client: httpx.AsyncClient,
) -> None:
    headers = {"Idempotency-Key": "k-3"}
    await client.post("/orders", json=BODY, headers=headers)

    other = await client.post("/order", json=BODY, headers=headers)

    assert other.status_code == 422


async def test_key_order_and_spacing_of_the_json_body_do_not_matter(
    client: httpx.AsyncClient,
) -> None:
    headers = {"Idempotency-Key": "k-4", "content-type": "application/json"}
    first = await client.post("/orders", content=b'{"item":"book","quantity":2}', headers=headers)
    second = await client.post(
        "/orders", content=b'{ "quantity": 2,  "item": "book" }', headers=headers
    )

    assert second.status_code == 201 and second.json()["id"] == first.json()["id"]


async def test_a_duplicate_while_the_first_is_in_flight_is_409(
    client: httpx.AsyncClient, settings, db: asyncpg.Connection
) -> None:
    # Hold the orders table so the first request's transaction cannot finish yet.
    blocker = await asyncpg.connect(settings.asyncpg_dsn)
    tx = blocker.transaction()
    await tx.start()
    await blocker.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
    headers = {"Idempotency-Key": "k-5"}
    try:
        first = asyncio.create_task(client.post("/orders", json=BODY, headers=headers))
        await asyncio.sleep(0.3)
        second = await client.post("/orders", json=BODY, headers=headers)
        assert second.status_code == 409
        assert second.headers["content-type"] == "application/problem+json"
        assert second.headers["retry-after"] == "1"
    finally:
        await tx.rollback()
        await blocker.close()
    assert (await first).status_code == 201
    third = await client.post("/orders", json=BODY, headers=headers)
    assert third.status_code == 201 and third.headers["idempotency-replayed"] == "true"
    assert await db.fetchval("SELECT count(*) FROM orders") == 1


async def test_fifty_concurrent_duplicates_make_exactly_one_order(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    headers = {"Idempotency-Key": "storm"}

    responses = await asyncio.gather(
        *(client.post("/orders", json=BODY, headers=headers) for _ in range(50))
    )

    codes = [r.status_code for r in responses]
    assert set(codes) <= {201, 409}, codes
    created = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(created) == 1
    assert await db.fetchval("SELECT count(*) FROM orders") == 1
    assert await db.fetchval("SELECT count(*) FROM outbox") == 1
    assert await db.fetchval("SELECT count(*) FROM idempotency_keys") == 1


async def test_fifty_concurrent_duplicates_across_two_api_instances_make_one_order(
    settings, db: asyncpg.Connection
) -> None:
    """Two processes' worth of apps: the database's unique key, not memory, decides."""
    from order_service.api.app import create_app

    apps = [create_app(settings), create_app(settings)]
    async with apps[0].router.lifespan_context(apps[0]), apps[1].router.lifespan_context(apps[1]):
        clients = [
            httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url="http://t")
            for a in apps
        ]
        headers = {"Idempotency-Key": "storm-2"}
        responses = await asyncio.gather(
            *(clients[n % 2].post("/orders", json=BODY, headers=headers) for n in range(50))
        )
        for c in clients:
            await c.aclose()

    ok = [r for r in responses if r.status_code == 201]
    assert {r.status_code for r in responses} <= {201, 409}
    assert len({r.json()["id"] for r in ok}) == 1
    assert any(r.headers.get("idempotency-replayed") == "true" for r in ok) or len(ok) == 1
    assert await db.fetchval("SELECT count(*) FROM orders") == 1


async def test_keys_are_scoped_per_principal(settings, db: asyncpg.Connection) -> None:
    from order_service.bootstrap import build_api, close_api
    from order_service.service.place_order import IdempotencyContext

    container = await build_api(settings)
    try:
        render = lambda order: (201, str(order.id).encode())  # noqa: E731
        deadline = asyncio.get_running_loop().time() + 5
        a = await container.placement.place(
            "book",
            1,
            render,
            IdempotencyContext("alice", "same", "POST", "/orders"),
            owner="alice",
            deadline=deadline,
        )
        b = await container.placement.place(
            "book",
            1,
            render,
            IdempotencyContext("bob", "same", "POST", "/orders"),
            owner="bob",
            deadline=deadline,
        )
    finally:
        await close_api(container)

    assert a.order_id != b.order_id
    assert not a.replayed and not b.replayed
    assert await db.fetchval("SELECT count(*) FROM orders") == 2


@pytest.mark.parametrize("key", ["", "x" * 256])
async def test_an_empty_or_overlong_key_is_422_naming_the_header(
    client: httpx.AsyncClient, key: str
) -> None:
    response = await client.post("/orders", json=BODY, headers={"Idempotency-Key": key})

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "Idempotency-Key"
