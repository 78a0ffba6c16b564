"""The FastAPI application factory.

The app does not build what it serves with: its container (pool, writer, use cases) is opened
by whoever creates the app — `bootstrap.api_app` — so the api never imports the wiring above it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, MutableMapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI

from order_service.api.body_limit import BodyLimitMiddleware
from order_service.api.container import ApiContainer
from order_service.api.deadline import DeadlineMiddleware
from order_service.api.draining import CloseWhileDraining
from order_service.api.fast_path import OrderFastPath
from order_service.api.problems import install_problem_handlers
from order_service.api.routes import health, orders, stock
from order_service.config import Settings
from order_service.gc_tuning import freeze_startup_objects
from order_service.observability.http_metrics import HttpMetricsMiddleware
from order_service.observability.logging import get_logger
from order_service.observability.tracing import tracing_enabled

DESCRIPTION = """
Event-driven order service. Writes go to PostgreSQL together with an outbox row in one
transaction; a relay publishes them to Kafka (`orders.created`, CloudEvents binary mode) and a
worker confirms each order. Send `Idempotency-Key` on POSTs to retry safely.
"""


log = get_logger(__name__)

_PROBES = frozenset({"/healthz", "/readyz", "/metrics", "/db_health"})


def _is_probe(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in _PROBES


OpenContainer = Callable[[Settings], AbstractAsyncContextManager[ApiContainer]]


def create_app(settings: Settings, open_container: OpenContainer) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_container(settings) as container:
            app.state.container = container
            freeze_startup_objects()
            log.info("api_started", auth_enabled=settings.auth_enabled)
            yield
        log.info("api_stopped")  # after the container closed: the pool is gone

    app = FastAPI(
        # FastAPI's native OpenTelemetry: server spans when a tracer provider is installed
        # (configure_tracing runs first). Decided here, not per request: asking the providers
        # costs 3.6 µs a request. Metrics are Prometheus' and logs structlog's, never OTel's.
        telemetry={
            "exclude": _is_probe,
            "tracing": tracing_enabled(),
            "metrics": False,
            "logs": False,
        },
        title="order-service",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.include_router(orders.router)
    app.include_router(stock.router)
    app.include_router(health.router)
    install_problem_handlers(app)
    # Added innermost first: metrics see everything, the body limit refuses before anything
    # parses, and the fast path serves the hot POSTs ahead of FastAPI's routing.
    app.add_middleware(OrderFastPath)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        body_timeout_s=settings.request_timeout_s,
    )
    app.add_middleware(HttpMetricsMiddleware)
    # Outermost: the request's deadline starts when it arrives (DESIGN.md §3).
    app.add_middleware(DeadlineMiddleware, timeout_s=settings.request_timeout_s)
    app.add_middleware(CloseWhileDraining)
    return app
