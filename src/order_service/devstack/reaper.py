"""Before `make dev` checks its ports, stop what an earlier `make dev` on this data dir left.

Only what is provably ours is touched: a pid record under `run/` whose start time still
matches, the postmaster named by our own `postmaster.pid`, or a broker writing to our
`tansu.log` (the last two also recognise leftovers of versions that kept no records). A port
held by anything else is left alone and stays the supervisor's one-line error.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil

from order_service.devstack import pidfiles
from order_service.devstack.observe import NAMES as OBSERVE_BACKENDS

SERVICES = ("api", "relay", "worker")
# `--observe`: Prometheus, Alertmanager, the exporters, the Collector, Jaeger.
BACKENDS = OBSERVE_BACKENDS
INFRASTRUCTURE = ("broker", "postgres")


class StackRunning(RuntimeError):
    def __init__(self, pid: int, base: Path) -> None:
        super().__init__(
            f"another `order-service dev` (pid {pid}) is running with data in {base};"
            f" stop it first (Ctrl-C in its terminal, or kill {pid})"
        )


@dataclass(frozen=True)
class Leftover:
    name: str
    process: psutil.Process
    stop_signal: int


def reclaim(base: Path, timeout_s: float = 15.0) -> list[Leftover]:
    """Stop every leftover of an earlier run on `base`; return what was stopped.

    The services go first, as in a normal stop, so the relay can still reach the broker
    while it drains. Raises StackRunning while that earlier supervisor is alive: its
    processes are not leftovers.
    """
    run_dir = base / "run"
    supervisor = pidfiles.read(run_dir, "supervisor")
    if supervisor is not None and supervisor.pid != os.getpid() and supervisor.process():
        raise StackRunning(supervisor.pid, base)
    found: dict[int, Leftover] = {}
    for name in (*SERVICES, *BACKENDS, *INFRASTRUCTURE):
        record = pidfiles.read(run_dir, name)
        process = record.process() if record else None
        if record is not None and process is not None:
            found.setdefault(process.pid, Leftover(name, process, record.stop_signal))
    for legacy in (_postmaster(base / "postgres" / "data"), _broker(base / "tansu.log")):
        if legacy is not None:
            found.setdefault(legacy.process.pid, legacy)
    leftovers = list(found.values())
    _stop([lo for lo in leftovers if lo.name in SERVICES], timeout_s)
    _stop([lo for lo in leftovers if lo.name not in SERVICES], timeout_s)
    for name in (*SERVICES, *BACKENDS, *INFRASTRUCTURE):
        pidfiles.remove(run_dir, name)
    return leftovers


def _postmaster(data_dir: Path) -> Leftover | None:
    """The live postmaster `postmaster.pid` names; a stale file is removed.

    Its first line is the pid and its third the start time (epoch seconds). PostgreSQL reuses
    a stale file itself only when that pid is dead; a pid since taken by another process
    (which, running as `embedded_postgres`, it cannot even signal) makes it refuse to start.
    """
    lock = data_dir / "postmaster.pid"
    try:
        lines = lock.read_text().splitlines()
        pid, started = int(lines[0]), int(lines[2])
    except FileNotFoundError:
        return None
    except (OSError, IndexError, ValueError):
        pid, started = 0, 0
    process = (
        pidfiles.live_process(
            pid, lambda p: p.name() == "postgres" and abs(p.create_time() - started) < 2
        )
        if pid > 0
        else None
    )
    if process is None:
        with contextlib.suppress(OSError):
            lock.unlink(missing_ok=True)
        return None
    return Leftover("postgres", process, signal.SIGINT)


def _broker(log: Path) -> Leftover | None:
    """A broker whose stdout is this data dir's `tansu.log`: only our supervisor starts one."""
    if not sys.platform.startswith("linux") or not log.exists():
        return None
    target = str(log.resolve())
    for process in psutil.process_iter():
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{process.pid}/fd/1") == target:
                return Leftover("broker", process, signal.SIGTERM)
    return None


def _stop(leftovers: list[Leftover], timeout_s: float) -> None:
    """The clean stop signal first; SIGKILL for the process tree of whatever lingers."""
    for leftover in leftovers:
        with contextlib.suppress(psutil.NoSuchProcess):
            leftover.process.send_signal(leftover.stop_signal)
    _, alive = psutil.wait_procs([lo.process for lo in leftovers], timeout=timeout_s)
    doomed: list[psutil.Process] = []
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            doomed += [process, *process.children(recursive=True)]
    for process in doomed:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(doomed, timeout=5)
