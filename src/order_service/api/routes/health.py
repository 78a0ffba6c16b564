"""Liveness, readiness, the seed's /db_health, and /metrics."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from order_service.api.deps import ContainerDep
from order_service.observability.exposition import render_metrics
from order_service.persistence.database import ping

router = APIRouter(tags=["operations"])


def _json(body: dict[str, object], status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


@router.get("/healthz", summary="The process is alive")
async def healthz() -> Response:
    return _json({"status": "ok"})


@router.get(
    "/readyz",
    summary="PostgreSQL is reachable (the broker's state is reported, not required)",
)
async def readyz(container: ContainerDep) -> Response:
    state = await container.readiness.check()
    body: dict[str, object] = {
        "status": "ready" if state.ready else "not ready",
        "checks": {
            "database": "ok" if state.database else "down",
            "broker": "ok" if state.broker else "down",
        },
    }
    if state.draining:
        body["draining"] = True
    return _json(body, 200 if state.ready else 503)


@router.get("/db_health", summary="The seed's database check")
async def db_health(container: ContainerDep) -> Response:
    if await ping(container.pool, container.settings.db_connect_timeout_s):
        return _json({"status": "ok", "database": "reachable"})
    return _json({"status": "error", "database": "unreachable"}, 503)


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    content, content_type = render_metrics(request.headers.get("accept"))
    return Response(content, media_type=content_type)
