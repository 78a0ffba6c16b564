"""What a test watches while the cluster misbehaves: /readyz bodies, metric samples, rows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
from prometheus_client import REGISTRY


def metric(name: str, **labels: str) -> float:
    """This process's sample (the relay or worker under test runs in-process)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def until(
    check: Callable[[], Awaitable[bool]], timeout_s: float, what: str, every_s: float = 0.2
) -> float:
    """Wait for `check`; returns how long it took."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"not within {timeout_s:.0f} s: {what}")
        await asyncio.sleep(every_s)
    return time.monotonic() - started


async def unpublished(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"))


@dataclass
class ReadinessWatch:
    """GET /readyz every 0.2 s in the background; keeps every answer (status, body)."""

    url: str
    seen: list[tuple[float, int, dict[str, Any]]] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def _poll(self) -> None:
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                try:
                    response = await client.get(f"{self.url}/readyz")
                    self.seen.append((time.monotonic(), response.status_code, response.json()))
                except httpx.HTTPError:
                    pass  # not listening yet
                await asyncio.sleep(0.2)

    async def __aenter__(self) -> ReadinessWatch:
        self._task = asyncio.create_task(self._poll())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()

    def reasons(self) -> list[str]:
        """Every distinct kafka reason answered so far, in order."""
        found: list[str] = []
        for _, _, body in self.seen:
            reason = body.get("reasons", {}).get("kafka")
            if reason and reason not in found:
                found.append(reason)
        return found

    def last_status(self) -> int:
        return self.seen[-1][1] if self.seen else 0
