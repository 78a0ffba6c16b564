"""Run the real `order-service dev` the way a developer does: in a terminal of its own.

The supervisor is the controlling process of a pseudo-terminal, as a shell's foreground job
is, so Ctrl-C is a byte written to the terminal and closing the terminal is a real hang-up
(SIGHUP, then EIO on every write), not a signal sent by hand.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from order_service.devstack.ports import free_port, is_free
from tests.e2e.processes import wait_ok

# What a terminal's shell does for a foreground job: a session whose controlling terminal is
# stdin, and SIGINT/SIGHUP at their defaults (pytest may run under nohup); then exec, so the
# pid stays the supervisor's.
_TAKE_TERMINAL = (
    "import fcntl, os, signal, sys, termios; os.setsid(); fcntl.ioctl(0, termios.TIOCSCTTY, 0);"
    " signal.signal(signal.SIGHUP, signal.SIG_DFL); signal.signal(signal.SIGINT, signal.SIG_DFL);"
    " os.execv(sys.argv[1], sys.argv[1:])"
)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# How a version without parent-death signals ran the stack (what users were left with).
LEGACY_DEV = (
    "import sys; import order_service.devstack.pdeathsig as p;"
    " p.die_with_parent = lambda signum: None;"
    " from order_service.cli import app; app(sys.argv[1:], prog_name='order-service')"
)


class Terminal:
    def __init__(self, argv: list[str], log: Path) -> None:
        master, slave = os.openpty()
        self.process = subprocess.Popen(
            [sys.executable, "-S", "-c", _TAKE_TERMINAL, *argv],
            stdin=slave,
            stdout=slave,
            stderr=slave,
        )
        os.close(slave)
        self.log = log
        log.touch()
        self._master: int | None = master
        self._closing = threading.Event()
        self._drain = threading.Thread(target=self._copy_output, daemon=True)
        self._drain.start()

    def _copy_output(self) -> None:
        assert self._master is not None
        with self.log.open("ab") as out:
            while not self._closing.is_set():
                ready, _, _ = select.select([self._master], [], [], 0.1)
                if ready:
                    try:
                        chunk = os.read(self._master, 65536)
                    except OSError:  # EIO: every process holding the terminal has gone
                        return
                    out.write(chunk)
                    out.flush()

    def ctrl_c(self) -> None:
        assert self._master is not None
        os.write(self._master, b"\x03")

    def hang_up(self) -> None:
        """Close the terminal window: the kernel sends SIGHUP to its controlling process."""
        self._closing.set()
        self._drain.join()
        if self._master is not None:
            os.close(self._master)
            self._master = None

    def output(self) -> str:
        """What the terminal showed, without its colours."""
        return _ANSI.sub("", self.log.read_text(errors="replace"))


@dataclass
class DevHome:
    """One data dir and one set of ports that successive `order-service dev` runs share."""

    root: Path
    ports: dict[str, int] = field(
        default_factory=lambda: {n: free_port() for n in ("pg", "kafka", "api", "relay", "worker")}
    )
    current: Terminal | None = None
    runs: int = 0
    broker: str = "tansu"
    start_timeout_s: float = 90

    @property
    def data_dir(self) -> Path:
        return self.root / "dev"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    def argv(self) -> list[str]:
        return [
            "dev",
            "--data-dir",
            str(self.data_dir),
            *("--postgres-port", str(self.ports["pg"]), "--kafka-port", str(self.ports["kafka"])),
            *("--api-port", str(self.ports["api"]), "--relay-port", str(self.ports["relay"])),
            *("--worker-port", str(self.ports["worker"])),
            *("--broker", self.broker),
        ]

    def launch(self, *, legacy: bool = False) -> Terminal:
        self.runs += 1
        log = self.root / f"dev-{self.runs}.log"
        program = ["-c", LEGACY_DEV] if legacy else ["-m", "order_service"]
        self.current = Terminal([sys.executable, *program, *self.argv()], log)
        return self.current

    def start(self, *, legacy: bool = False) -> Terminal:
        """A dev run, ready on every port (its banner, printed once every /readyz answered)."""
        launched = time.monotonic()
        dev = self.launch(legacy=legacy)
        deadline = launched + self.start_timeout_s
        while "order-service is up" not in dev.output():
            if dev.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"dev did not come up:\n{dev.output()[-3000:]}")
            time.sleep(0.05)
        for name in ("api", "relay", "worker"):
            wait_ok(f"http://127.0.0.1:{self.ports[name]}/readyz", 5, dev.process)
        print(f"dev run {self.runs} up in {time.monotonic() - launched:.1f}s")
        return dev

    def running(self) -> Terminal:
        """The run an earlier test left up, or a new one."""
        if self.current is None or self.current.process.poll() is not None:
            return self.start()
        return self.current

    def stop(self) -> None:
        dev, self.current = self.current, None
        if dev is not None and dev.process.poll() is None:
            dev.ctrl_c()
            try:
                dev.process.wait(60)
            except subprocess.TimeoutExpired:
                dev.process.kill()
                dev.process.wait()
        if dev is not None:
            dev.hang_up()

    def ports_free(self) -> bool:
        # Apache Kafka's controller listens two ports above the broker's.
        extra = [self.ports["kafka"] + 2] if self.broker == "kafka" else []
        return all(is_free("127.0.0.1", port) for port in [*self.ports.values(), *extra])


def stack_of(dev: Terminal) -> list[psutil.Process]:
    """The supervisor and every process under it, PostgreSQL's backends included."""
    supervisor = psutil.Process(dev.process.pid)
    return [supervisor, *supervisor.children(recursive=True)]


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    living = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            # is_running() compares start times: a reused pid is not "still running".
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                living.append(process)
    return living


def wait_all_gone(
    processes: list[psutil.Process], home: DevHome, since: float, timeout_s: float = 10.0
) -> float:
    """Seconds from `since` (monotonic) until none of `processes` runs and every port is free:
    at most a few (AssertionError after `timeout_s`)."""
    while time.monotonic() - since < timeout_s:
        if not alive(processes) and home.ports_free():
            return time.monotonic() - since
        time.sleep(0.05)
    left = [f"{p.pid} {' '.join(p.cmdline())[:80]}" for p in alive(processes)]
    busy = [n for n, port in home.ports.items() if not is_free("127.0.0.1", port)]
    raise AssertionError(f"after {timeout_s}s still running: {left}; ports in use: {busy}")


def kill_stack(processes: list[psutil.Process]) -> None:
    """Test clean-up for a stack meant to be left behind (never anything else)."""
    for process in alive(processes):
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGKILL)


def places_and_confirms_an_order(api: str) -> str:
    """The seed's POST /order, then its status until CONFIRMED; returns the order id."""
    placed = httpx.post(f"{api}/order", json={"item": "book", "quantity": 2}, timeout=10)
    assert placed.status_code == 200, placed.text
    assert placed.json()["message"] == "Order placed successfully"
    order_id = placed.json()["order_id"]
    deadline = time.monotonic() + 20
    status = ""
    while time.monotonic() < deadline and status != "CONFIRMED":
        status = httpx.get(f"{api}/orders/{order_id}", timeout=5).json()["status"]
        time.sleep(0.1)
    assert status == "CONFIRMED"
    return str(order_id)
