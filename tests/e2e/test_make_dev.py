"""`order-service dev` (what `make dev` runs): the whole stack from nothing, and nothing left
behind however it ends, so the next `make dev` starts.

The runs share one data dir and one set of ports (a dev start takes seconds): each test ends
the run an earlier test left up (or starts one when run alone), checks that nothing of it
remains, then proves the next run starts on the same ports and data and serves an order; that
run is the one the following test ends.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

import orjson
import psutil
import pytest

from order_service.devstack import pidfiles
from tests.e2e.dev_runs import (
    DevHome,
    Terminal,
    alive,
    kill_stack,
    places_and_confirms_an_order,
    stack_of,
    wait_all_gone,
)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevHome]:
    dev_home = DevHome(tmp_path_factory.mktemp("make-dev"))
    yield dev_home
    dev_home.stop()


def _sigterm(dev: Terminal) -> None:
    dev.process.send_signal(signal.SIGTERM)


def _sigkill(dev: Terminal) -> None:
    dev.process.kill()


ENDINGS: dict[str, Callable[[Terminal], None]] = {
    "ctrl_c": Terminal.ctrl_c,
    "sigterm": _sigterm,
    "terminal_closed": Terminal.hang_up,
    "sigkill": _sigkill,
}
EXIT_CODE = {"ctrl_c": 0, "sigterm": 0, "terminal_closed": 0, "sigkill": -signal.SIGKILL}


def _started_and_served(home: DevHome) -> None:
    dev = home.start()
    assert "curl -X POST" in dev.output()  # the banner shows the seed's curl
    places_and_confirms_an_order(home.api)


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_however_dev_ends_nothing_of_it_is_left_and_the_next_dev_serves_an_order(
    home: DevHome, ending: str
) -> None:
    """Ctrl-C, SIGTERM, a closed terminal (SIGHUP) or SIGKILL of the supervisor: within
    seconds no process it started runs and every port is free.

    Catches, per ending: the stop signal not handled as a clean stop (SIGINT, SIGTERM or
    SIGHUP missing from the supervisor's handlers: a traceback or death by the signal, not
    exit 0; with SIGHUP this was the reported bug, PostgreSQL and the broker left running);
    a write to the hung-up terminal aborting the stop; a child without its parent death
    signal (drop `preexec_fn` from postgres.py: the SIGKILL case leaves the postmaster).
    """
    dev = home.running()
    stack = stack_of(dev)
    names = {p.name() for p in stack}
    assert {"postgres", "python"} <= names and any(n.startswith("tansu") for n in names)
    assert len(stack) >= 8, names  # supervisor, postgres, broker, api, relay, worker, backends

    ended = time.monotonic()
    ENDINGS[ending](dev)
    code = dev.process.wait(30)
    took = wait_all_gone(stack, home, since=ended)
    print(f"{ending}: every process gone and every port free {took:.1f}s after it")
    assert code == EXIT_CODE[ending], dev.output()[-3000:]
    if ending in ("ctrl_c", "sigterm"):
        assert "stopped: every process ended" in dev.output()
    dev.hang_up()

    if ending == "sigkill":
        # A postmaster.pid naming a live process that is not PostgreSQL (a reused pid).
        stranger = subprocess.Popen(["sleep", "60"])
        lock = home.data_dir / "postgres" / "data" / "postmaster.pid"
        started = int(psutil.Process(stranger.pid).create_time())
        lock.write_text(f"{stranger.pid}\n{lock.parent}\n{started}\n{home.ports['pg']}\n")
        try:
            _started_and_served(home)
            assert stranger.poll() is None, "the stranger named by postmaster.pid was killed"
        finally:
            stranger.kill()
            stranger.wait()
    else:
        _started_and_served(home)


def test_a_dev_killed_while_postgres_is_still_starting_leaves_nothing(home: DevHome) -> None:
    """SIGKILL the supervisor the moment the postmaster exists (before it is ready, before
    any pid record of it is written): the postmaster still goes, and the next run starts.

    Catches: PostgreSQL started without its parent death signal (drop the `preexec_fn` of
    its Popen), or a start-up that only a pid record could have cleaned up.
    """
    home.stop()
    dev = home.launch()
    deadline = time.monotonic() + 30
    postmaster: list[psutil.Process] = []
    while not postmaster and time.monotonic() < deadline:
        children = psutil.Process(dev.process.pid).children()
        postmaster = [p for p in children if p.name() == "postgres"]
        time.sleep(0.01)
    assert postmaster, dev.output()
    stack = stack_of(dev)
    ended = time.monotonic()
    dev.process.kill()
    dev.process.wait(10)
    took = wait_all_gone(stack, home, since=ended)
    print(f"killed mid-start: stack gone in {took:.1f}s")
    dev.hang_up()
    _started_and_served(home)


def test_what_an_older_dev_left_running_is_reclaimed_by_the_next_one(home: DevHome) -> None:
    """A supervisor without parent death signals is SIGKILLed and its whole stack lives on;
    PostgreSQL and the broker are not even recorded (as before pid records existed): the
    next run stops them all, then starts and serves an order.

    Catches: leftovers found only through pid records (PostgreSQL is found through its
    postmaster.pid, the broker through its `tansu.log`), a recorded service not reclaimed;
    any of them gives "port … is already in use" instead.
    """
    home.stop()
    legacy = home.start(legacy=True)
    leftovers = stack_of(legacy)[1:]
    legacy.process.kill()
    legacy.process.wait(10)
    legacy.hang_up()
    try:
        time.sleep(1)
        assert len(alive(leftovers)) == len(leftovers)  # the leftover is real
        assert not home.ports_free()
        pidfiles.remove(home.data_dir / "run", "postgres")
        pidfiles.remove(home.data_dir / "run", "broker")

        _started_and_served(home)
        assert home.current is not None
        assert "reclaimed what a previous `make dev` left running" in home.current.output()
        assert not alive(leftovers)
    finally:
        kill_stack(leftovers)


def test_a_second_dev_on_a_running_ones_data_is_one_line_and_exit_1(home: DevHome) -> None:
    """While a dev runs, another on the same data dir refuses and stops nothing of it.

    Catches: the reaper treating a live stack's records as leftovers (drop the supervisor
    check in reaper.py: the running stack is killed under the user's feet).
    """
    running = home.running()
    stack = stack_of(running)
    second = subprocess.run(
        [sys.executable, "-m", "order_service", *home.argv()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    assert second.stderr.strip().splitlines() == [
        f"order-service: another `order-service dev` (pid {running.process.pid}) is running"
        f" with data in {home.data_dir}; stop it first (Ctrl-C in its terminal, or kill"
        f" {running.process.pid})"
    ]
    assert len(alive(stack)) == len(stack)
    places_and_confirms_an_order(home.api)


def test_a_port_held_by_a_foreign_process_is_one_line_exit_1_and_it_survives(
    tmp_path: Path,
) -> None:
    """A foreign listener on PostgreSQL's port, whose pid a stale record and a stale
    postmaster.pid under `.dev/` both name (a pid since reused): the one-line error, exit 1,
    and the foreign process is untouched.

    Catches: the reaper trusting a pid alone (drop the start-time check in pidfiles.py, or
    the name check on postmaster.pid in reaper.py: the foreign process is killed).
    """
    home = DevHome(tmp_path)
    squatter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket, time; s = socket.socket();"
            f" s.bind(('127.0.0.1', {home.ports['pg']})); s.listen(); time.sleep(60)",
        ]
    )
    try:
        deadline = time.monotonic() + 10
        while home.ports_free() and time.monotonic() < deadline:
            time.sleep(0.05)
        started = psutil.Process(squatter.pid).create_time()
        # The record of a postmaster that ran an hour ago under the pid the squatter now has.
        record = pidfiles.ProcessRecord("postgres", squatter.pid, started - 3600, [], 2)
        (home.data_dir / "run").mkdir(parents=True)
        (home.data_dir / "run" / "postgres.json").write_bytes(orjson.dumps(asdict(record)))
        lock = home.data_dir / "postgres" / "data" / "postmaster.pid"
        lock.parent.mkdir(parents=True)
        lock.write_text(f"{squatter.pid}\n{lock.parent}\n{int(started)}\n{home.ports['pg']}\n")

        dev = subprocess.run(
            [sys.executable, "-m", "order_service", *home.argv()],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert dev.returncode == 1
        assert (dev.stdout + dev.stderr).strip().splitlines() == [
            f"order-service: port 127.0.0.1:{home.ports['pg']} for PostgreSQL is already in use;"
            " free it or pick another"
        ]
        assert squatter.poll() is None
    finally:
        squatter.kill()
        squatter.wait()
