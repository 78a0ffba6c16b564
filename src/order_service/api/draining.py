"""The api's graceful stop: on SIGTERM, /readyz turns 503 at once, the api keeps serving for
SHUTDOWN_DRAIN_S while load balancers take it out of rotation (every response then says
`Connection: close`, so no keep-alive connection outlives the drain), then uvicorn stops
accepting and finishes the requests in flight within SHUTDOWN_TIMEOUT_S.

On Kubernetes the Helm chart's preStop pause does the waiting before SIGTERM (the endpoint is
removed while the pod still serves), so the drain there is 0; behind a load balancer that
only health-checks (an ALB target group without the chart, compose behind a proxy), the drain
is what lets it see the 503 before the listener closes.
"""

from __future__ import annotations

import signal
import time
from types import FrameType

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_draining = False


def begin() -> None:
    global _draining
    _draining = True


def is_draining() -> bool:
    return _draining


class DrainingServer(uvicorn.Server):
    """uvicorn's server with a drain period between SIGTERM and the stop of the listener."""

    drain_s: float = 0.0

    def __init__(self, config: uvicorn.Config, drain_s: float = 0.0) -> None:
        super().__init__(config)
        self.drain_s = drain_s
        self._stop_at: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        begin()
        if self.drain_s > 0 and self._stop_at is None and not self.should_exit:
            self._stop_at = time.monotonic() + self.drain_s
            return  # a second signal (or the end of the drain) stops for real
        # As uvicorn does, minus re-raising the signal at exit: a stop asked for and carried
        # out is a clean exit (status 0), as for the relay and the worker.
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        if self._stop_at is not None and time.monotonic() >= self._stop_at:
            return True
        return await super().on_tick(counter)


class CloseWhileDraining:
    """While draining, every response asks the client to close its connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _draining:
            await self.app(scope, receive, send)
            return

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, closing)


def serve(config: uvicorn.Config, drain_s: float) -> None:
    """Run the api like `uvicorn.run`, with the drain. With `--workers N` uvicorn's own
    supervisor runs plain servers (no drain; on Kubernetes scale replicas, not workers)."""
    if config.workers > 1:
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return
    config.load_app()
    server = DrainingServer(config, drain_s)
    server.run()
    if not server.started:
        raise SystemExit(3)  # uvicorn's STARTUP_FAILURE
