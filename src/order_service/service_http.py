"""The relay's and the worker's small HTTP listener: /metrics, /healthz, /readyz.

It runs under uvicorn inside the process's own asyncio loop, so a probe sees the same pool and
Kafka client the work uses. uvicorn's signal capture is switched off: the CLI owns SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any

import asyncpg
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from order_service.messaging.broker_errors import BrokerErrors, kind_of
from order_service.observability.exposition import render_metrics
from order_service.observability.metrics import DEPENDENCY_UP
from order_service.persistence.database import ping

Check = Callable[[], Awaitable[bool]]
# Well inside the readiness probe's own timeout (the chart: 2 s), so a dependency that hangs
# (a blackholed broker) gives a definite 503, not a probe that times out with no answer.
CHECK_TIMEOUT_S = 1.0


class NotReady(Exception):
    """A check's "not ready", with the reason `/readyz` gives for it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def create_app(checks: Mapping[str, Check]) -> Starlette:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        names = list(checks)
        results = await asyncio.gather(*(_run_check(checks[n]) for n in names))
        answers = dict(zip(names, results, strict=True))
        for name, (ok, _reason) in answers.items():
            DEPENDENCY_UP.labels(dependency=name).set(int(ok))
        status = {n: "ok" if ok else "unavailable" for n, (ok, _reason) in answers.items()}
        reasons = {n: reason for n, (_ok, reason) in answers.items() if reason}
        ready = all(ok for ok, _reason in results)
        body: dict[str, Any] = {"status": "ok" if ready else "unavailable", "checks": status}
        if reasons:
            body["reasons"] = reasons
        return JSONResponse(body, status_code=200 if ready else 503)

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


async def _run_check(check: Check) -> tuple[bool, str | None]:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            return await check(), None
    except NotReady as exc:
        return False, exc.reason
    except TimeoutError:
        return False, "timeout"
    except Exception:  # a probe that fails in any way means "not ready"
        return False, None


def db_check(pool: asyncpg.Pool) -> Check:
    async def check() -> bool:
        return await ping(pool, CHECK_TIMEOUT_S)

    return check


def kafka_check(
    client: Any, topics: Sequence[str] = (), errors: BrokerErrors | None = None
) -> Check:
    """One metadata round-trip. `client`: a started producer or consumer (its AIOKafkaClient
    is used), or a callable giving the current one — the relay replaces its producer.

    Not ready, with the reason, also when a partition of `topics` has no leader, or when a
    broker error holds the process (`errors`: not enough in-sync replicas, the coordinator
    moving): the broker answers, but the work cannot go through."""

    async def check() -> bool:
        current = client() if callable(client) else client
        if current is None:
            raise NotReady("producer_restarting")  # between a discarded one and its successor
        try:
            cluster = await getattr(current, "client", current).fetch_all_metadata()
        except Exception as exc:
            raise NotReady(_unreachable(exc)) from exc
        for topic in topics:
            leaderless = (cluster.partitions_for_topic(topic) or set()) - (
                cluster.available_partitions_for_topic(topic) or set()
            )
            if leaderless:
                raise NotReady(f"no_leader: {topic} partition(s) {sorted(leaderless)}")
        held = errors.holding() if errors is not None else None
        if held is not None:
            raise NotReady(held)
        return True

    return check


def _unreachable(exc: BaseException) -> str:
    kind = kind_of(exc)
    return "broker_unreachable" if kind in (None, "other") else str(kind)


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
