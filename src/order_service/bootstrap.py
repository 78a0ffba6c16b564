"""Wires the processes together. Nothing is created at import time; everything here, once."""

from __future__ import annotations

from order_service.api.auth import Authenticator
from order_service.api.container import ApiContainer
from order_service.api.readiness import Readiness
from order_service.config import Settings
from order_service.messaging.lifecycle import open_pool
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
