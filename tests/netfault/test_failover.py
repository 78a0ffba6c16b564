"""The failover pair is really synchronous, and promotion gives a writable new primary."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

import asyncpg
import pytest

from tests.netfault.failover import FailoverPair


async def _connect(dsn: str) -> asyncpg.Connection:
    return await asyncpg.connect(dsn.replace("postgresql+asyncpg://", "postgresql://"), timeout=5)


async def test_a_commit_on_the_primary_is_visible_on_the_standby_at_once(
    pg_failover: FailoverPair,
) -> None:
    primary = await _connect(pg_failover.primary.dsn())
    standby = await _connect(pg_failover.standby.dsn())
    await primary.execute("CREATE TABLE probe (n int)")
    for n in range(1, 21):
        await primary.execute("INSERT INTO probe VALUES ($1)", n)
        assert await standby.fetchval("SELECT count(*) FROM probe") == n
    assert await standby.fetchval("SELECT pg_is_in_recovery()") is True
    assert await standby.fetchval("SELECT count(*) FROM alembic_version") == 1  # migrated
    await primary.close()
    await standby.close()


async def test_a_commit_waits_while_the_standby_is_frozen_or_cut_off(
    pg_failover: FailoverPair,
) -> None:
    """Both ways a standby goes missing: SIGSTOP, then a partition of its namespace."""
    standby = pg_failover.standby
    faults: list[tuple[Callable[[], None], Callable[[], None]]] = [
        (
            lambda: standby.server.signal(signal.SIGSTOP),
            lambda: standby.server.signal(signal.SIGCONT),
        ),
        (standby.namespace.isolate, standby.namespace.heal),
    ]
    primary = await _connect(pg_failover.primary.dsn())
    await primary.execute("CREATE TABLE probe (n int)")
    for n, (break_standby, mend_standby) in enumerate(faults, start=1):
        break_standby()
        commit = asyncio.ensure_future(primary.execute("INSERT INTO probe VALUES ($1)", n))
        await asyncio.sleep(1.5)
        assert not commit.done(), "the commit returned without its synchronous standby"
        mend_standby()
        await asyncio.wait_for(commit, 15)
    assert await primary.fetchval("SELECT count(*) FROM probe") == len(faults)
    await primary.close()


@pytest.mark.parametrize("lose_primary", ["crash_primary", "blackhole_primary"])
async def test_promotion_makes_the_standby_the_writable_host_of_the_multi_host_dsn(
    pg_failover: FailoverPair, lose_primary: str
) -> None:
    before = await _connect(pg_failover.multi_host_dsn())
    assert str(await before.fetchval("SELECT inet_server_addr()")) == pg_failover.primary.address
    await before.execute("CREATE TABLE probe (n int)")
    await before.execute("INSERT INTO probe VALUES (1)")
    before.terminate()

    getattr(pg_failover, lose_primary)()
    took = pg_failover.promote_standby()

    # Straight to B: a blackholed A would eat asyncpg's whole connect timeout (see docs).
    after = await _connect(pg_failover.standby.dsn())
    await after.execute("INSERT INTO probe VALUES (2)")
    assert await after.fetchval("SELECT count(*) FROM probe") == 2
    await after.close()
    if lose_primary == "crash_primary":  # A refuses at once: the multi-host DSN moves on
        moved = await _connect(pg_failover.multi_host_dsn())
        assert str(await moved.fetchval("SELECT inet_server_addr()")) == pg_failover.standby.address
        await moved.close()
    assert took < 10
