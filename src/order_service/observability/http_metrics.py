"""The seed's HTTP metrics as a plain ASGI middleware, labelled by route template, not raw path."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client.metrics import MetricWrapperBase
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from order_service.observability.exemplars import current_trace_exemplar
from order_service.observability.metrics import HTTP_DURATION, HTTP_IN_PROGRESS, HTTP_REQUESTS


class LabelledChildren:
    """`metric.labels(*values)`, remembered: prometheus_client validates and locks on every
    call (1-2 µs each, three per request); the few label combinations a server sees are kept."""

    def __init__(self, metric: MetricWrapperBase) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


class HttpMetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._in_progress = LabelledChildren(HTTP_IN_PROGRESS)
        self._duration = LabelledChildren(HTTP_DURATION)
        self._requests = LabelledChildren(HTTP_REQUESTS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        status = 500
        in_progress = self._in_progress(method)
        in_progress.inc()
        start = time.perf_counter()

        async def capture_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture_status)
        finally:
            in_progress.dec()
            # Routing stores the matched route in the (shared) scope: label by its template.
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self._duration(method, route).observe(
                time.perf_counter() - start, exemplar=current_trace_exemplar()
            )
            self._requests(method, route, str(status)).inc()
