"""The delay proxy makes a real PostgreSQL slow, frozen or cut, on demand."""

from __future__ import annotations

import time
from collections.abc import Callable

import asyncpg
import pytest

from tests.netfault.proxy import DelayProxy
from tests.netfault.servers import NetPostgres

CONNECTION_BROKEN = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)


async def test_delay_proxy_delays_each_round_trip_and_pause_hangs_queries(
    netns_postgres: NetPostgres, delay_proxy: Callable[..., DelayProxy]
) -> None:
    proxy = delay_proxy(netns_postgres.address, netns_postgres.port)
    dsn = f"postgresql://postgres:postgres@{proxy.address}/orderdb"
    conn = await asyncpg.connect(dsn, timeout=5)
    assert await conn.fetchval("SELECT 1") == 1

    proxy.set_delay(0.2)
    started = time.monotonic()
    assert await conn.fetchval("SELECT 2") == 2
    assert time.monotonic() - started >= 0.4  # 0.2 s each way

    proxy.set_delay(0.0)
    proxy.pause()
    with pytest.raises(TimeoutError):
        await conn.fetchval("SELECT 3", timeout=1.0)
    proxy.resume()
    fresh = await asyncpg.connect(dsn, timeout=5)
    assert await fresh.fetchval("SELECT 4") == 4

    proxy.cut()
    with pytest.raises(CONNECTION_BROKEN):
        await fresh.fetchval("SELECT 5", timeout=5)
    conn.terminate()
    assert proxy.accepted >= 2
