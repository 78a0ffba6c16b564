"""The seed's HTTP metrics as a plain ASGI middleware, labelled by route template, not raw path."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from order_service.observability.exemplars import current_trace_exemplar
from order_service.observability.metrics import HTTP_DURATION, HTTP_IN_PROGRESS, HTTP_REQUESTS


class HttpMetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        status = 500
        in_progress = HTTP_IN_PROGRESS.labels(method)
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
            HTTP_DURATION.labels(method, route).observe(
                time.perf_counter() - start, exemplar=current_trace_exemplar()
            )
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
