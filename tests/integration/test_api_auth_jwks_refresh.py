"""The issuer going silent behind a warm key cache, seen through the real app.

The JWKS endpoint is a bare socket server that, once silent, accepts connections, reads the
request and never answers: the fault that costs a caller its whole fetch timeout (3 s here).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from prometheus_client import REGISTRY

from order_service.bootstrap import api_app
from order_service.config import Settings
from tests.jwt_helpers import AUDIENCE, ISSUER, RawJwksServer, SigningKey, make_key, mint

# Keys are due for a refresh this soon, so the test need not wait 10 minutes; still above
# the cache's 2 s retry cooldown, as 600 s is in production.
MAX_AGE_S = 2.5
CONCURRENT = 20
MakeClient = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def issuer() -> AsyncIterator[RawJwksServer]:
    server = RawJwksServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def make_client(settings: Settings, issuer: RawJwksServer) -> AsyncIterator[MakeClient]:
    async with contextlib.AsyncExitStack() as stack:

        async def make(**overrides: object) -> httpx.AsyncClient:
            secured = settings.model_copy(
                update={
                    "auth_enabled": True,
                    "auth_issuer": ISSUER,
                    "auth_audience": AUDIENCE,
                    "auth_jwks_url": issuer.url,
                    "auth_jwks_fetch_timeout_s": 3.0,
                    "auth_jwks_max_age_s": MAX_AGE_S,
                    **overrides,
                }
            )
            app = api_app(secured)
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app)
            return await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://t")
            )

        yield make


def _bearer(key: SigningKey) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(key)}"}


def _refreshes(outcome: str) -> float:
    return REGISTRY.get_sample_value("auth_jwks_refresh_total", {"outcome": outcome}) or 0.0


async def _timed(call: Awaitable[httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = await call
    return response, time.perf_counter() - started


async def _eventually(condition: Callable[[], bool], timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def _warm_then_silence(client: httpx.AsyncClient, issuer: RawJwksServer) -> SigningKey:
    key = make_key("RS256")
    issuer.publish(key)
    assert (await client.get("/orders", headers=_bearer(key))).status_code == 200
    issuer.silent = True
    await asyncio.sleep(MAX_AGE_S + 0.1)  # the cached keys are now past their refresh age
    return key


async def test_requests_with_cached_keys_never_wait_for_a_silent_issuer(
    make_client: MakeClient, issuer: RawJwksServer
) -> None:
    """Catches the refresh on the request path: with the old lock-and-fetch, every request
    queued behind the hung fetch and took the full 3 s fetch timeout."""
    client = await make_client()
    key = await _warm_then_silence(client, issuer)

    for _wave in range(2):
        results = await asyncio.gather(
            *(_timed(client.get("/orders", headers=_bearer(key))) for _ in range(CONCURRENT))
        )

        assert [response.status_code for response, _ in results] == [200] * CONCURRENT
        slowest = max(elapsed for _, elapsed in results)
        assert slowest < 0.3, f"slowest request took {slowest:.3f} s behind a 3 s fetch"
        await _eventually(lambda: issuer.waiting == 1)
    # One fetch warmed the cache; exactly one more is in flight, however many requests came.
    assert issuer.connections == 2


async def test_the_issuer_answering_again_puts_its_rotated_keys_in_service(
    make_client: MakeClient, issuer: RawJwksServer
) -> None:
    """Catches a refresh that blocks the request that starts it (the old code's request
    waited for the hung fetch itself, which then timed out instead of being answered), and a
    refresh whose keys are not put in service."""
    ok_before = _refreshes("ok")
    client = await make_client()
    old = await _warm_then_silence(client, issuer)
    served, elapsed = await _timed(client.get("/orders", headers=_bearer(old)))
    assert served.status_code == 200
    assert elapsed < 0.3, f"the request that started the refresh waited {elapsed:.3f} s"
    await _eventually(lambda: issuer.waiting == 1)

    rotated = make_key("RS256")
    issuer.answer(rotated)  # the issuer has rotated: only the new kid is published

    assert (await client.get("/orders", headers=_bearer(rotated))).status_code == 200
    stale = await client.get("/orders", headers=_bearer(old))
    assert stale.status_code == 401
    assert issuer.connections == 2
    assert _refreshes("ok") - ok_before == 2


async def test_keys_past_max_stale_with_the_issuer_silent_get_503_problem_json(
    make_client: MakeClient, issuer: RawJwksServer
) -> None:
    """Catches keys trusted forever: the old code served cached keys however long every
    refresh failed, so a key the issuer revoked during its outage stayed valid."""
    failed_before = _refreshes("failed")
    client = await make_client(auth_jwks_fetch_timeout_s=1.0, auth_jwks_max_stale_s=MAX_AGE_S + 0.3)
    key = await _warm_then_silence(client, issuer)
    assert (await client.get("/orders", headers=_bearer(key))).status_code == 200
    await asyncio.sleep(0.3)  # past max_stale_s since the last successful fetch

    response, elapsed = await _timed(client.get("/orders", headers=_bearer(key)))

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "retry-after" in response.headers
    assert "cannot be refreshed" in response.json()["detail"]
    assert elapsed < 1.0 + 0.5  # at most the fetch it joined, never a queue of fetches
    assert _refreshes("failed") - failed_before == 1
