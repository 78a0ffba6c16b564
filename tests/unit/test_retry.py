"""The one retry helper: bounded, jittered, and it gives up on what is not retryable."""

from __future__ import annotations

import itertools

import pytest

from order_service.retry import backoff_delays, retry


def test_backoff_grows_and_is_capped() -> None:
    delays = list(itertools.islice(backoff_delays(0.1, 1.0), 12))

    assert 0.05 <= delays[0] <= 0.1
    assert all(d <= 1.0 for d in delays)
    assert delays[-1] >= 0.5


async def test_retry_returns_once_the_operation_succeeds() -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError("not yet")
        return "ok"

    assert await retry(flaky, retry_on=lambda e: True, initial_s=0.001, max_s=0.002) == "ok"
    assert calls == 3


async def test_retry_gives_up_after_the_attempts() -> None:
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        await retry(broken, retry_on=lambda e: True, initial_s=0.001, max_s=0.002, attempts=4)
    assert calls == 4


async def test_retry_does_not_retry_what_is_not_retryable() -> None:
    calls = 0

    async def bad() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("bug")

    with pytest.raises(ValueError, match="bug"):
        await retry(
            bad, retry_on=lambda e: isinstance(e, ConnectionError), initial_s=0.001, max_s=0.01
        )
    assert calls == 1


async def test_retry_stops_at_the_deadline() -> None:
    async def down() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        await retry(down, retry_on=lambda e: True, initial_s=0.05, max_s=0.05, deadline_s=0.2)
