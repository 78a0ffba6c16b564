"""The one retry helper: capped exponential backoff with full jitter."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

T = TypeVar("T")


def backoff_delays(initial_s: float, max_s: float) -> Iterator[float]:
    """Endless delays: full jitter over initial * 2^n, capped at max_s (AWS architecture blog)."""
    attempt = 0
    while True:
        ceiling = min(max_s, initial_s * (2**attempt))
        yield random.uniform(ceiling / 2, ceiling)
        attempt = min(attempt + 1, 30)


async def retry(
    operation: Callable[[], Awaitable[T]],
    *,
    retry_on: Callable[[BaseException], bool],
    initial_s: float,
    max_s: float,
    attempts: int | None = None,
    deadline_s: float | None = None,
    on_retry: Callable[[BaseException, float], None] | None = None,
) -> T:
    """Run `operation` until it succeeds, a non-retryable error, `attempts`, or `deadline_s`."""
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + deadline_s if deadline_s is not None else None
    delays = backoff_delays(initial_s, max_s)
    tried = 0
    while True:
        tried += 1
        try:
            return await operation()
        except Exception as exc:
            delay = next(delays)
            out_of_attempts = attempts is not None and tried >= attempts
            out_of_time = stop_at is not None and loop.time() + delay > stop_at
            if not retry_on(exc) or out_of_attempts or out_of_time:
                raise
            if on_retry is not None:
                on_retry(exc, delay)
            await asyncio.sleep(delay)
