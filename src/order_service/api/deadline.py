"""Every request's deadline: REQUEST_TIMEOUT_S from the moment it arrives (DESIGN.md §3).

Set once, outermost, in the ASGI scope's state; the body reader, the group commit and the
database reads all stop at this one instant, so the whole request — queueing included — is
answered within REQUEST_TIMEOUT_S.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

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
