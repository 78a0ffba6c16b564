"""413 for bodies over the limit, whether announced by Content-Length or streamed chunked;
408 for a body that does not arrive within the request timeout (a slow client holds nothing)."""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from order_service.api.deadline import scope_deadline
from order_service.api.problems import problem


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int, body_timeout_s: float | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.max_bytes):
                await self._refuse(scope, receive, send)
                return
        seen = 0
        refused = False
        complete = False
        deadline: float | None = None

        async def counting_receive() -> Message:
            nonlocal seen, refused, complete, deadline
            if refused:
                return {"type": "http.disconnect"}
            if complete or self.body_timeout_s is None:
                message = await receive()
            else:
                # One deadline for the whole body: a byte now and then must not keep it alive.
                # The request's own deadline when set: the body counts against the request.
                if deadline is None:
                    deadline = scope_deadline(scope) or (
                        asyncio.get_running_loop().time() + self.body_timeout_s
                    )
                try:
                    async with asyncio.timeout_at(deadline):
                        message = await receive()
                except TimeoutError:
                    refused = True
                    await self._refuse(scope, receive, send, 408)
                    return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                complete = not message.get("more_body", False)
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Answer 413 now and tell the app the client left, so it stops reading.
                    refused = True
                    await self._refuse(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counting_receive, guarded_send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, status: int = 413) -> None:
        if status == 408:
            title, detail = "Request Timeout", f"the body did not arrive in {self.body_timeout_s}s"
        else:
            title, detail = (
                "Content Too Large",
                f"the request body must not exceed {self.max_bytes} bytes",
            )
        response = problem(status, title, detail, headers={"Connection": "close"})
        await response(scope, receive, send)
