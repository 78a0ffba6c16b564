"""Wires the processes together. Nothing is created at import time; everything here, once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from order_service.api.app import create_app
from order_service.api.auth import Authenticator
from order_service.api.container import ApiContainer
from order_service.api.readiness import Readiness
from order_service.config import Settings
from order_service.persistence.database import open_pool
from order_service.persistence.order_writer import OrderWriter
from order_service.service.cancel_order import OrderCancellation
from order_service.service.idempotency import InFlightKeys
from order_service.service.place_order import OrderPlacement


async def build_api(settings: Settings) -> ApiContainer:
    # Same start-up retries and one-line failure (ServiceUnavailable) as the relay and worker.
    pool = await open_pool(settings)
    writer = OrderWriter(
        pool,
        max_batch=settings.write_batch_max,
        max_concurrent_flushes=max(1, settings.db_pool_max_size // 2),
        acquire_timeout_s=settings.db_connect_timeout_s,
        statement_timeout_s=settings.db_statement_timeout_ms / 1000 + 1,
        max_queue=settings.write_queue_max,
    )
    # One in-flight guard: a key is one key, whichever POST it is sent with.
    in_flight = InFlightKeys()
    placement = OrderPlacement(
        writer, topic=settings.kafka_order_topic, source=settings.service_name, in_flight=in_flight
    )
    cancellation = OrderCancellation(
        pool,
        status_topic=settings.kafka_status_topic,
        source=settings.service_name,
        acquire_timeout_s=settings.db_connect_timeout_s,
        in_flight=in_flight,
    )
    return ApiContainer(
        settings=settings,
        pool=pool,
        placement=placement,
        cancellation=cancellation,
        authenticator=Authenticator(settings),
        readiness=Readiness(pool, settings.kafka_bootstrap_servers),
    )


async def close_api(container: ApiContainer) -> None:
    await container.authenticator.aclose()
    await container.pool.close()


@asynccontextmanager
async def api_container(settings: Settings) -> AsyncIterator[ApiContainer]:
    container = await build_api(settings)
    try:
        yield container
    finally:
        await close_api(container)


def api_app(settings: Settings) -> FastAPI:
    """The api as served: the app, with the container it opens at start-up and closes at stop."""
    return create_app(settings, api_container)


def app_from_environment() -> FastAPI:
    """uvicorn factory (`--factory`): settings are read when the server starts, not at import."""
    from order_service.config import get_settings
    from order_service.observability.logging import configure_logging
    from order_service.observability.tracing import configure_tracing

    settings = get_settings()
    # Again here: each uvicorn worker process starts from nothing and needs both.
    configure_logging(settings, "api")
    configure_tracing(settings, "api")
    return api_app(settings)
