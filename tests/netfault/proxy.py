"""A userspace TCP proxy that adds latency and can freeze, for a slow database (no tc netem here).

It runs its own asyncio loop in a daemon thread, so it keeps forwarding while the test's
thread blocks (time.sleep, subprocess waits, a blocking fixture) and works the same from sync
and async tests. Every method is safe to call from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any

CHUNK = 64 * 1024


class DelayProxy:
    """Listens on `listen_host`:`port` and forwards each connection to target_host:target_port.

    Guarantees: every chunk read from one side is written to the other `delay_s` after it
    was read (pipelined: latency, not a bandwidth cap; order kept); while paused nothing is
    read or written in either direction, so clients hang exactly like on a stalled link;
    `cut()` resets every open connection; `close()` stops listening and resets all.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        delay_s: float = 0.0,
        listen_host: str = "127.0.0.1",
    ) -> None:
        self.target = (target_host, target_port)
        self.delay_s = delay_s
        self.listen_host = listen_host
        self.port = 0
        self.accepted = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._flowing = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def address(self) -> str:
        """`host:port` to put in a DSN or a bootstrap-servers list."""
        return f"{self.listen_host}:{self.port}"

    def start(self) -> DelayProxy:
        self._thread.start()
        self._call(self._start())
        return self

    def set_delay(self, seconds: float) -> None:
        """Latency for chunks read from now on."""
        self.delay_s = seconds

    def pause(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def resume(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.set)

    def cut(self) -> None:
        self._call(self._cut())

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> DelayProxy:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    async def _start(self) -> None:
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, self.listen_host, self.port)
        sock: socket.socket = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])

    async def _cut(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._cut()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            return
        self._writers |= {client_w, server_w}
        try:
            await asyncio.gather(
                self._pipe(client_r, server_w, client_w), self._pipe(server_r, client_w, server_w)
            )
        finally:
            for writer in (client_w, server_w):
                self._writers.discard(writer)
                writer.transport.abort()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, own: asyncio.StreamWriter
    ) -> None:
        """reader -> writer; on a reset either way both ends are reset (`own` is reader's)."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        sender = asyncio.create_task(self._send(queue, writer))
        try:
            while True:
                await self._flowing.wait()
                data = await reader.read(CHUNK)
                await queue.put((self._loop.time() + self.delay_s, data))
                if not data:
                    break
            await sender
        except OSError:
            own.transport.abort()
            writer.transport.abort()
        finally:
            sender.cancel()

    async def _send(
        self, queue: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter
    ) -> None:
        while True:
            due, data = await queue.get()
            await asyncio.sleep(max(0.0, due - self._loop.time()))
            await self._flowing.wait()
            if not data:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()
