"""A lean ASGI path for the two hot endpoints, `POST /orders` and `POST /order`.

The happy path — a JSON body that validates, a valid key, an authorised caller — skips
FastAPI's routing and dependency injection (most of the per-request CPU at load). Anything
else is handed to FastAPI with the body replayed, so every error response, the OpenAPI schema
and the validation rules stay defined once, by the FastAPI routes and `OrderIn`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from opentelemetry import trace
from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from order_service.api.auth import AuthError, AuthUnavailable
from order_service.api.container import ApiContainer
from order_service.api.deadline import scope_deadline
from order_service.api.order_replies import place_and_reply
from order_service.api.schemas import OrderIn
from order_service.domain.errors import DomainError, ServiceUnavailable
from order_service.service.idempotency import MAX_KEY_LENGTH

_ENDPOINTS = {"/orders": "orders", "/order": "order"}


@dataclass(frozen=True)
class _RouteTemplate:
    """What the metrics middleware reads from `scope["route"]`."""

    path: str


_TEMPLATES = {path: _RouteTemplate(path) for path in _ENDPOINTS}


class OrderFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = _ENDPOINTS.get(scope["path"]) if scope["type"] == "http" else None
        if endpoint is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:  # the client left
            return
        replay = _replaying(body, receive)
        headers = _interesting_headers(scope)
        content_type = headers.get("content-type", "")
        key = headers.get("idempotency-key")
        if not content_type.startswith("application/json") or (
            key is not None and not 0 < len(key) <= MAX_KEY_LENGTH
        ):
            await self.app(scope, replay, send)
            return
        try:
            order = OrderIn.model_validate_json(body)
        except ValidationError:
            await self.app(scope, replay, send)
            return
        container: ApiContainer = scope["app"].state.container
        try:
            principal = await container.authenticator.authenticate(headers.get("authorization"))
            container.authenticator.require(principal, "orders:write")
        except (AuthError, AuthUnavailable):
            await self.app(scope, replay, send)
            return
        path = scope["path"]
        scope["route"] = _TEMPLATES[path]
        span = trace.get_current_span()
        if span.is_recording():
            span.update_name(f"POST {path}")
            span.set_attribute("http.route", path)
        response: ASGIApp
        try:
            deadline = scope_deadline(scope) or (
                asyncio.get_running_loop().time() + container.settings.request_timeout_s
            )
            response = await place_and_reply(
                container,
                path,
                order.item,
                order.quantity,
                principal.subject,
                key,
                endpoint,
                deadline,
                headers,
            )
        except (DomainError, ServiceUnavailable) as exc:
            response = await _handled(scope, exc)
        await response(scope, replay, send)


async def _handled(scope: Scope, exc: Exception) -> ASGIApp:
    """The app's own exception handler for `exc`: the same problem+json as the routes."""
    handlers = scope["app"].exception_handlers
    for cls in type(exc).__mro__:
        if cls in handlers:
            response: ASGIApp = await handlers[cls](Request(scope), exc)
            return response
    raise exc


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


_WANTED = {
    b"content-type",
    b"idempotency-key",
    b"authorization",
    b"traceparent",
    b"tracestate",
}


def _interesting_headers(scope: Scope) -> dict[str, str]:
    return {
        name.decode(): value.decode("latin-1")
        for name, value in scope["headers"]
        if name in _WANTED
    }
