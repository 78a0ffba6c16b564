"""Every request's deadline: REQUEST_TIMEOUT_S from the moment it arrives (DESIGN.md §3).

Set once, outermost, in the ASGI scope's state; the body reader, the group commit and the
database reads all stop at this one instant, so the whole request — queueing included — is
answered within REQUEST_TIMEOUT_S.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from order_service.config import Settings
from order_service.persistence.database import database_errors_as_unavailable

_KEY = "deadline"


class DeadlineMiddleware:
    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            state = scope.setdefault("state", {})
            state[_KEY] = asyncio.get_running_loop().time() + self.timeout_s
        await self.app(scope, receive, send)


def scope_deadline(scope: Scope) -> float | None:
    deadline = scope.get("state", {}).get(_KEY)
    return float(deadline) if deadline is not None else None


def request_deadline(request: Request, fallback_s: float) -> float:
    """The request's deadline (event-loop time); `fallback_s` from now when none was set."""
    deadline = scope_deadline(request.scope)
    return deadline if deadline is not None else asyncio.get_running_loop().time() + fallback_s


@contextlib.asynccontextmanager
async def database_call(request: Request, settings: Settings, op: str) -> AsyncIterator[None]:
    """A read or a single statement for `request`: bounded by the request's deadline, an
    unreachable database (or the deadline) a 503 counted under `op`."""
    deadline = request_deadline(request, settings.request_timeout_s)
    with database_errors_as_unavailable(op):
        async with asyncio.timeout_at(deadline):
            yield
