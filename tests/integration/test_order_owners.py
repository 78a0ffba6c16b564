"""Per-owner orders with auth on (DESIGN.md §3): every order records who placed it; reads,
listings and cancellations serve only the caller's own orders — another's is a 404, never
listed — and the scope `orders:admin` reads every order. Stock needs `stock:write`.

Breaks caught (the old api): any token with `orders:read` read and listed every order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from order_service.config import Settings
from tests.integration.conftest import secured_client
from tests.jwt_helpers import JwksServer, SigningKey, claims, make_key, mint

pytestmark = pytest.mark.integration


@pytest.fixture
async def key_and_client(settings: Settings) -> AsyncIterator[tuple[SigningKey, httpx.AsyncClient]]:
    key = make_key("RS256")
    server = JwksServer()
    await server.start()
    server.publish(key)
    try:
        async with secured_client(settings, server.url) as client:
            yield key, client
    finally:
        await server.stop()


def as_(key: SigningKey, subject: str, scope: str = "orders:read orders:write") -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(key, claims(sub=subject, scope=scope))}"}


async def test_each_caller_sees_only_its_own_orders_and_an_admin_sees_all(
    key_and_client: tuple[SigningKey, httpx.AsyncClient], db: asyncpg.Connection
) -> None:
    key, client = key_and_client
    alice, bob = as_(key, "alice"), as_(key, "bob")
    admin = as_(key, "ops", scope="orders:read orders:admin")
    mine = (await client.post("/orders", json={"item": "a", "quantity": 1}, headers=alice)).json()
    theirs = (await client.post("/orders", json={"item": "b", "quantity": 1}, headers=bob)).json()

    assert (await client.get(f"/orders/{mine['id']}", headers=alice)).status_code == 200
    hidden = await client.get(f"/orders/{theirs['id']}", headers=alice)
    assert hidden.status_code == 404
    assert hidden.headers["content-type"] == "application/problem+json"
    assert [o["id"] for o in (await client.get("/orders", headers=alice)).json()["items"]] == [
        mine["id"]
    ]
    assert {o["id"] for o in (await client.get("/orders", headers=admin)).json()["items"]} == {
        mine["id"],
        theirs["id"],
    }
    assert (await client.get(f"/orders/{theirs['id']}", headers=admin)).status_code == 200
    owners = dict(await db.fetch("SELECT id::text, owner FROM orders"))
    assert owners == {mine["id"]: "alice", theirs["id"]: "bob"}


async def test_another_callers_order_cannot_be_cancelled_and_looks_unknown(
    key_and_client: tuple[SigningKey, httpx.AsyncClient], db: asyncpg.Connection
) -> None:
    key, client = key_and_client
    alice, bob = as_(key, "alice"), as_(key, "bob")
    order = (await client.post("/orders", json={"item": "a", "quantity": 1}, headers=alice)).json()

    attempt = await client.post(f"/orders/{order['id']}/cancel", headers=bob)
    unknown = await client.post("/orders/0193f3a0-0000-7000-8000-000000000000/cancel", headers=bob)

    assert attempt.status_code == unknown.status_code == 404
    assert attempt.json()["detail"].replace(order["id"], "X") == unknown.json()["detail"].replace(
        "0193f3a0-0000-7000-8000-000000000000", "X"
    )  # the same answer: nothing tells bob the order exists
    assert await db.fetchval("SELECT status FROM orders") == "PENDING"
    own = await client.post(f"/orders/{order['id']}/cancel", headers=alice)
    assert own.status_code == 200 and own.json()["status"] == "CANCELLED"


async def test_setting_stock_needs_the_stock_write_scope(
    key_and_client: tuple[SigningKey, httpx.AsyncClient],
) -> None:
    key, client = key_and_client
    refused = await client.put("/stock/book", json={"available": 3}, headers=as_(key, "alice"))
    allowed = await client.put(
        "/stock/book", json={"available": 3}, headers=as_(key, "ops", scope="stock:write")
    )
    read = await client.get("/stock/book", headers=as_(key, "alice"))

    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert allowed.status_code == 200
    assert read.json() == {"item": "book", "available": 3, "reserved": 0}
