"""Wires the processes together. Nothing is created at import time; everything here, once."""

from __future__ import annotations

import asyncpg

from order_service.api.auth import Authenticator
from order_service.api.container import ApiContainer
from order_service.api.readiness import Readiness
from order_service.config import Settings
from order_service.persistence.database import create_pool, is_unavailable
from order_service.persistence.order_writer import OrderWriter
from order_service.retry import retry
from order_service.service.place_order import OrderPlacement


class StartupError(RuntimeError):
    """A dependency stayed unreachable for STARTUP_TIMEOUT_S: the CLI prints this and exits 1."""


async def connect_pool(settings: Settings) -> asyncpg.Pool:
    try:
        return await retry(
            lambda: create_pool(settings),
            retry_on=is_unavailable,
            initial_s=settings.retry_initial_backoff_s,
            max_s=settings.retry_max_backoff_s,
            deadline_s=settings.startup_timeout_s,
        )
    except Exception as exc:
        if is_unavailable(exc):
            raise StartupError(
                f"PostgreSQL unreachable at start-up after {settings.startup_timeout_s:.0f}s "
                f"({type(exc).__name__}: {exc}); check POSTGRES_DSN"
            ) from exc
        raise


async def build_api(settings: Settings) -> ApiContainer:
    pool = await connect_pool(settings)
    writer = OrderWriter(
        pool,
        max_batch=settings.write_batch_max,
        max_concurrent_flushes=max(1, settings.db_pool_max_size // 2),
        acquire_timeout_s=settings.db_connect_timeout_s,
    )
    placement = OrderPlacement(
        writer, topic=settings.kafka_order_topic, source=settings.service_name
    )
    return ApiContainer(
        settings=settings,
        pool=pool,
        placement=placement,
        authenticator=Authenticator(settings),
        readiness=Readiness(pool, settings.kafka_bootstrap_servers),
    )


async def close_api(container: ApiContainer) -> None:
    await container.authenticator.aclose()
    await container.pool.close()
