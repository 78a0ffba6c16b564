"""Every error leaves as `application/problem+json` (RFC 9457), naming the field if any."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from order_service.api.auth import AuthError, AuthUnavailable
from order_service.domain.errors import (
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    InvalidTransition,
    OrderNotFound,
    ServiceUnavailable,
)
from order_service.observability.logging import get_logger
from order_service.observability.metrics import VALIDATION_FAILURES

PROBLEM_JSON = "application/problem+json"
_log = get_logger(__name__)


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    type_: str = "about:blank",
    errors: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
    instance: str | None = None,
    extensions: Mapping[str, object] | None = None,
) -> Response:
    body: dict[str, Any] = {"type": type_, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = errors
    if extensions:
        body.update(extensions)
    return Response(orjson.dumps(body), status, headers=headers, media_type=PROBLEM_JSON)


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] or parts
    return ".".join(parts) or "body"


async def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for err in exc.errors():
        field = _field_name(tuple(err.get("loc", ())))
        message = str(err.get("msg", "invalid"))
        if err.get("type") == "json_invalid":
            field, message = "body", "body is not valid JSON"
        errors.append({"field": field, "message": message})
        VALIDATION_FAILURES.labels(field=field.split(".")[0]).inc()
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return problem(
        422,
        "Request validation failed",
        detail,
        type_="/problems/validation-error",
        errors=errors,
        instance=request.url.path,
    )


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    from http import HTTPStatus

    title = HTTPStatus(exc.status_code).phrase
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
    return problem(exc.status_code, title, detail, headers=exc.headers, instance=request.url.path)


async def _key_reused(request: Request, exc: Exception) -> Response:
    return problem(
        422,
        "Idempotency-Key reused with a different request",
        str(exc),
        type_="/problems/idempotency-key-reused",
        errors=[{"field": "Idempotency-Key", "message": str(exc)}],
        instance=request.url.path,
    )


async def _key_in_flight(request: Request, exc: Exception) -> Response:
    return problem(
        409,
        "A request with this Idempotency-Key is still in progress",
        str(exc),
        type_="/problems/idempotency-key-in-flight",
        headers={"Retry-After": "1"},
        instance=request.url.path,
    )


async def _not_found(request: Request, exc: Exception) -> Response:
    return problem(404, "Not Found", str(exc), instance=request.url.path)


async def _invalid_transition(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InvalidTransition)
    return problem(
        409,
        "The order cannot make this change",
        f"the order is {exc.current}; it cannot become {exc.target}",
        type_="/problems/invalid-transition",
        instance=request.url.path,
        extensions={"status_now": str(exc.current)},
    )


async def _unavailable(request: Request, exc: Exception) -> Response:
    # A write says what became of it (DESIGN.md §3): `outcome` "not_written" (nothing was
    # committed, nor will be) or "unknown" (ask with the same key, or GET `order_id`).
    extensions: dict[str, object] = {}
    outcome = getattr(exc, "outcome", None)
    if outcome is not None:
        extensions["outcome"] = outcome
        order_id = getattr(exc, "order_id", None)
        if order_id is not None:
            extensions["order_id"] = str(order_id)
    return problem(
        503,
        "Service unavailable",
        str(exc) or "a dependency is unavailable; retry with the same Idempotency-Key",
        type_="/problems/dependency-unavailable",
        headers={"Retry-After": "1"},
        instance=request.url.path,
        extensions=extensions,
    )


async def _auth(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthError)
    headers = {"WWW-Authenticate": exc.www_authenticate} if exc.www_authenticate else None
    return problem(exc.status, exc.title, exc.detail, headers=headers, instance=request.url.path)


async def _unexpected(request: Request, exc: Exception) -> Response:
    _log.error("unhandled_error", path=request.url.path, exc_info=exc)
    return problem(500, "Internal Server Error", "an unexpected error occurred")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(IdempotencyKeyReused, _key_reused)
    app.add_exception_handler(IdempotencyKeyInFlight, _key_in_flight)
    app.add_exception_handler(OrderNotFound, _not_found)
    app.add_exception_handler(InvalidTransition, _invalid_transition)
    app.add_exception_handler(ServiceUnavailable, _unavailable)
    app.add_exception_handler(AuthUnavailable, _unavailable)
    app.add_exception_handler(AuthError, _auth)
    app.add_exception_handler(Exception, _unexpected)
