"""The relay's and the worker's small HTTP listener: /metrics, /healthz, /readyz.

It runs under uvicorn inside the process's own asyncio loop, so a probe sees the same pool and
Kafka client the work uses. uvicorn's signal capture is switched off: the CLI owns SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

import asyncpg
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from order_service.observability.exposition import render_metrics
from order_service.observability.metrics import DEPENDENCY_UP
from order_service.persistence.database import ping

Check = Callable[[], Awaitable[bool]]
# Well inside the readiness probe's own timeout (the chart: 2 s), so a dependency that hangs
# (a blackholed broker) gives a definite 503, not a probe that times out with no answer.
CHECK_TIMEOUT_S = 1.0


def create_app(checks: Mapping[str, Check]) -> Starlette:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        names = list(checks)
        results = await asyncio.gather(*(_run_check(checks[n]) for n in names))
        for name, ok in zip(names, results, strict=True):
            DEPENDENCY_UP.labels(dependency=name).set(int(ok))
        status = dict(zip(names, ("ok" if ok else "unavailable" for ok in results), strict=True))
        ready = all(results)
        return JSONResponse(
            {"status": "ok" if ready else "unavailable", "checks": status},
            status_code=200 if ready else 503,
        )

    async def metrics(request: Request) -> Response:
        body, content_type = render_metrics(request.headers.get("accept"))
        return Response(body, media_type=content_type)

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
        ]
    )


async def _run_check(check: Check) -> bool:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            return await check()
    except Exception:  # a probe that fails in any way means "not ready"
        return False


def db_check(pool: asyncpg.Pool) -> Check:
    async def check() -> bool:
        return await ping(pool, CHECK_TIMEOUT_S)

    return check


def kafka_check(client: Any) -> Check:
    """One metadata round-trip. `client`: a started producer or consumer (its AIOKafkaClient
    is used), or a callable giving the current one — the relay replaces its producer."""

    async def check() -> bool:
        current = client() if callable(client) else client
        if current is None:
            return False  # between a discarded producer and its successor
        await getattr(current, "client", current).fetch_all_metadata()
        return True

    return check


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serve_http(
    checks: Mapping[str, Check], host: str | None, port: int | None
) -> AsyncIterator[None]:
    """Serve while the block runs; no-op when no port is given (tests, `dlq replay`)."""
    if port is None:
        yield
        return
    bind_host = host or "0.0.0.0"
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((bind_host, port))
    except OSError as exc:
        sock.close()
        raise RuntimeError(f"cannot listen on {bind_host}:{port}: {exc.strerror}") from exc
    # log_config=None: the process has set up logging already (observability.logging), and
    # uvicorn's records reach its renderer like any library's.
    config = uvicorn.Config(
        create_app(checks), log_config=None, access_log=False, lifespan="off", log_level="warning"
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn has no event
            await asyncio.sleep(0.01)
        yield
    finally:
        server.should_exit = True
        try:
            async with asyncio.timeout(3.0):
                await task
        except (TimeoutError, SystemExit):
            task.cancel()
        sock.close()
