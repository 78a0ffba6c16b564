"""The relay's and the worker's HTTP listener: liveness, readiness on real dependencies, metrics."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from order_service.config import Settings
from order_service.devstack.ports import free_port
from order_service.messaging.relay import run_relay
from order_service.messaging.worker import run_worker
from order_service.persistence.database import create_pool
from order_service.service_http import db_check, serve_http
from tests.factories import Background

pytestmark = pytest.mark.integration


async def get(port: int, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        for _ in range(100):
            try:
                return await client.get(path)
            except httpx.ConnectError:
                await asyncio.sleep(0.1)  # still starting
        return await client.get(path)


@pytest.mark.parametrize("run", [run_relay, run_worker], ids=["relay", "worker"])
async def test_a_running_process_is_live_ready_and_serves_prometheus_metrics(
    settings: Settings, run: object
) -> None:
    port = free_port()
    async with Background(run, settings, http_host="127.0.0.1", http_port=port):
        health = await get(port, "/healthz")
        ready = await get(port, "/readyz")
        metrics = await get(port, "/metrics")
    assert health.status_code == 200
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"postgres": "ok", "kafka": "ok"}
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "outbox_backlog" in metrics.text and "worker_events_processed_total" in metrics.text


async def test_readyz_is_503_naming_postgres_when_the_database_is_unreachable(
    settings: Settings,
) -> None:
    dead = settings.model_copy(
        update={"postgres_dsn": f"postgresql+asyncpg://postgres:x@127.0.0.1:{free_port()}/none"}
    )
    pool = await create_pool(dead, min_size=0)
    port = free_port()
    try:
        async with serve_http({"postgres": db_check(pool)}, "127.0.0.1", port):
            health = await get(port, "/healthz")
            ready = await get(port, "/readyz")
    finally:
        await pool.close()
    assert health.status_code == 200
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"postgres": "unavailable"}
