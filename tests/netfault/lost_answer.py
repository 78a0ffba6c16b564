"""A proxy in front of PostgreSQL that lets one statement commit and loses its answer.

The deterministic form of G1's `unknown`: the server received the statement, ran it and
committed, and the client never hears so — its connection is reset instead. A timeout cannot
stage this reliably (the commit may or may not have happened when it fires); this can.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

from tests.netfault.proxy import CHUNK, DelayProxy

# The server's ReadyForQuery message ('Z', length 5, then the transaction status): sent only
# once the statement's implicit transaction has committed (PostgreSQL protocol, Sync).
READY_FOR_QUERY = b"Z\x00\x00\x00\x05"


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST, not FIN (SO_LINGER 0): what a crashed peer or a middlebox sends."""
    sock = writer.transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class LostAnswerProxy(DelayProxy):
    """Forwards every connection untouched until `lose_answer_to(marker)`: then the first
    client message that carries `marker` (a value bound into the statement, e.g. the order's
    item) goes to the server, the server's whole answer up to its ReadyForQuery is swallowed,
    and both ends of that connection are reset. `lost` counts the answers lost so."""

    def __init__(self, target_host: str, target_port: int) -> None:
        super().__init__(target_host, target_port)
        self._marker: bytes | None = None
        self.lost = 0
        self.swallowed = b""  # the last lost answer, for a test to look at

    def lose_answer_to(self, marker: bytes) -> None:
        self._marker = marker  # read by the proxy's thread; one assignment, atomic

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(client_w)
            return
        self._writers |= {client_w, server_w}
        doomed = asyncio.Event()
        try:
            await asyncio.gather(
                self._upstream(client_r, server_w, doomed),
                self._downstream(server_r, client_w, server_w, doomed),
                return_exceptions=True,
            )
        finally:
            for writer in (client_w, server_w):
                self._writers.discard(writer)
                _reset(writer)

    async def _upstream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, doomed: asyncio.Event
    ) -> None:
        while data := await reader.read(CHUNK):
            marker = self._marker
            if marker is not None and marker in data:
                self._marker = None
                doomed.set()  # before the server can answer: it has not got the data yet
            writer.write(data)
            await writer.drain()
        with contextlib.suppress(OSError, RuntimeError):
            writer.write_eof()

    async def _downstream(
        self,
        reader: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        server_w: asyncio.StreamWriter,
        doomed: asyncio.Event,
    ) -> None:
        swallowed = b""
        while data := await reader.read(CHUNK):
            if not doomed.is_set():
                client_w.write(data)
                await client_w.drain()
                continue
            swallowed += data
            if READY_FOR_QUERY in swallowed:  # committed (or rolled back): the answer is lost
                self.swallowed = swallowed
                self.lost += 1
                _reset(client_w)
                _reset(server_w)
                return
        with contextlib.suppress(OSError, RuntimeError):
            client_w.write_eof()  # the server closed: so does the client's side
