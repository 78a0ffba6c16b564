"""Auth on the HTTP API: bearer JWTs from a real local JWKS, scopes, problem+json, key scoping."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from order_service.config import Settings
from tests.integration.conftest import secured_client
from tests.jwt_helpers import JwksServer, SigningKey, claims, make_key, mint

BODY = {"item": "book", "quantity": 1}


@pytest.fixture
async def signing_key() -> AsyncIterator[tuple[SigningKey, JwksServer]]:
    key = make_key("RS256")
    server = JwksServer()
    await server.start()
    server.publish(key)
    yield key, server
    await server.stop()


@pytest.fixture
async def auth_client(
    settings: Settings, signing_key: tuple[SigningKey, JwksServer]
) -> AsyncIterator[httpx.AsyncClient]:
    _, server = signing_key
    async with secured_client(settings, server.url) as client:
        yield client


def _bearer(key: SigningKey, **overrides: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(key, claims(**overrides))}"}


async def test_no_token_is_401_problem_with_a_bearer_challenge(
    auth_client: httpx.AsyncClient,
) -> None:
    response = await auth_client.post("/orders", json=BODY)

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_an_expired_token_is_401(
    auth_client: httpx.AsyncClient, signing_key: tuple[SigningKey, JwksServer]
) -> None:
    key, _ = signing_key

    response = await auth_client.get("/orders", headers=_bearer(key, exp=1_000_000))

    assert response.status_code == 401
    assert "invalid_token" in response.headers["www-authenticate"]


async def test_a_token_without_the_write_scope_is_403_on_post_but_may_read(
    auth_client: httpx.AsyncClient, signing_key: tuple[SigningKey, JwksServer]
) -> None:
    key, _ = signing_key
    reader = _bearer(key, scope="orders:read")

    post = await auth_client.post("/orders", json=BODY, headers=reader)
    listing = await auth_client.get("/orders", headers=reader)

    assert post.status_code == 403
    assert post.headers["content-type"] == "application/problem+json"
    assert "insufficient_scope" in post.headers["www-authenticate"]
    assert listing.status_code == 200


async def test_a_valid_token_places_and_reads_an_order(
    auth_client: httpx.AsyncClient, signing_key: tuple[SigningKey, JwksServer]
) -> None:
    key, _ = signing_key
    headers = _bearer(key)

    created = await auth_client.post("/orders", json=BODY, headers=headers)
    read = await auth_client.get(created.headers["location"], headers=headers)

    assert created.status_code == 201
    assert read.status_code == 200 and read.json()["id"] == created.json()["id"]


async def test_idempotency_keys_are_scoped_to_the_tokens_subject(
    auth_client: httpx.AsyncClient,
    signing_key: tuple[SigningKey, JwksServer],
    db: asyncpg.Connection,
) -> None:
    key, _ = signing_key
    alice = {**_bearer(key, sub="alice"), "Idempotency-Key": "shared"}
    bob = {**_bearer(key, sub="bob"), "Idempotency-Key": "shared"}

    a1 = await auth_client.post("/orders", json=BODY, headers=alice)
    b1 = await auth_client.post("/orders", json=BODY, headers=bob)
    a2 = await auth_client.post("/orders", json=BODY, headers=alice)

    assert a1.status_code == b1.status_code == a2.status_code == 201
    assert a1.json()["id"] != b1.json()["id"]
    assert a2.json()["id"] == a1.json()["id"]
    assert await db.fetchval("SELECT count(*) FROM orders") == 2
    principals = await db.fetch("SELECT principal FROM idempotency_keys ORDER BY principal")
    assert [r["principal"] for r in principals] == ["alice", "bob"]


async def test_health_and_metrics_stay_open(auth_client: httpx.AsyncClient) -> None:
    assert (await auth_client.get("/healthz")).status_code == 200
    assert (await auth_client.get("/metrics")).status_code == 200
    assert (await auth_client.get("/readyz")).status_code == 200
