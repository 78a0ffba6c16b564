"""The rig's faults do what they say against a real PostgreSQL, and leave nothing behind."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest

from tests.netfault.leftovers import sweep_leftovers
from tests.netfault.namespaces import NetLab, link_names, namespace_names, scratch_names
from tests.netfault.servers import NetPostgres
from tests.netfault.tools import RigError, find_tool

REPO = Path(__file__).resolve().parents[2]
CONNECTION_BROKEN = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)


async def _connect(pg: NetPostgres, timeout_s: float = 5.0) -> asyncpg.Connection:
    return await asyncpg.connect(pg.dsn(driver="postgresql"), timeout=timeout_s)


async def test_a_refused_port_fails_connects_at_once_and_resets_open_connections(
    netns_postgres: NetPostgres,
) -> None:
    pg = netns_postgres
    conn = await _connect(pg)
    pg.namespace.refuse(pg.port)

    started = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        await _connect(pg)
    with pytest.raises(CONNECTION_BROKEN):
        await conn.fetchval("SELECT 1", timeout=5)
    assert time.monotonic() - started < 1.0

    pg.namespace.heal()
    healed = await _connect(pg)
    assert await healed.fetchval("SELECT 1") == 1
    await healed.close()
    conn.terminate()


async def test_a_blackholed_port_times_out_connects_and_hangs_open_connections(
    netns_postgres: NetPostgres,
) -> None:
    pg = netns_postgres
    conn = await _connect(pg)
    pg.namespace.blackhole(pg.port)

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.open_connection(pg.address, pg.port), 1.0)
    with pytest.raises(TimeoutError):
        await _connect(pg, timeout_s=1.0)
    with pytest.raises(TimeoutError):
        await conn.fetchval("SELECT 1", timeout=1.0)
    assert time.monotonic() - started >= 2.9  # every one waited for its own timeout

    pg.namespace.heal()
    healed = await _connect(pg)
    assert await healed.fetchval("SELECT 1") == 1
    await healed.close()
    conn.terminate()


def test_a_closed_lab_leaves_nothing_behind_even_after_an_error(netfault_host: None) -> None:
    with pytest.raises(RuntimeError), NetLab() as lab:  # noqa: PT012 - the error is the point
        namespace = lab.namespace()
        namespace.blackhole(5432)
        namespace.refuse(9092)
        inside = subprocess.Popen(namespace.exec_args("sleep", "60"))
        names = [namespace.name, namespace.host_veth, lab.bridge, str(lab.scratch_dir("pg"))]
        raise RuntimeError("the test failed")

    assert inside.wait(5) != 0  # killed with its namespace
    assert not set(names) & set(_ours())


def test_the_sweep_removes_a_killed_runs_lab_but_not_a_live_one(netlab: NetLab) -> None:
    live = netlab.namespace()
    killed_run = (
        "import os, signal, subprocess\n"
        "from tests.netfault.namespaces import NetLab\n"
        "lab = NetLab()\n"
        "namespace = lab.namespace()\n"
        "quiet = {'stdout': subprocess.DEVNULL, 'stderr': subprocess.DEVNULL}\n"
        "subprocess.Popen(namespace.exec_args('sleep', '60'), **quiet)\n"
        "print(namespace.name, namespace.host_veth, lab.scratch_dir('pg'), flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", killed_run],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=False,
    )
    leftovers = child.stdout.split()
    assert len(leftovers) == 3, child.stderr
    assert set(leftovers) <= set(_ours())

    removed = sweep_leftovers()

    assert set(leftovers) <= set(removed)
    assert not set(leftovers) & set(_ours())
    assert {live.name, live.host_veth, netlab.bridge} <= set(_ours())


def test_a_missing_tool_fails_the_test_naming_its_package() -> None:
    with pytest.raises(RigError, match="install the Debian package no-such-package"):
        find_tool("no-such-tool", "no-such-package")
    assert issubclass(RigError, AssertionError)  # a failure, never a skip


def _ours() -> list[str]:
    return namespace_names() + link_names() + scratch_names()
