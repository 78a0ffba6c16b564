"""One record per process `order-service dev` starts, under `<data dir>/run/<name>.json`.

A record is the pid *and* the process's start time: a pid the kernel has since given to an
unrelated process does not match, so a later `make dev` never signals it by mistake.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson
import psutil


@dataclass(frozen=True)
class ProcessRecord:
    name: str
    pid: int
    started: float  # psutil's create_time(): seconds since the epoch, clock-tick resolution
    cmdline: list[str]  # for people reading the file: may be the parent's, read before exec
    stop_signal: int  # the signal that makes this process stop cleanly

    def process(self) -> psutil.Process | None:
        """The recorded process if it still runs (same pid, same start), else None."""
        return live_process(self.pid, lambda p: abs(p.create_time() - self.started) < 0.01)


def live_process(pid: int, same: Callable[[psutil.Process], bool]) -> psutil.Process | None:
    """`pid` as a running, non-zombie process for which `same` holds, else None."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE or not same(process):
            return None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return process


def write(run_dir: Path, name: str, pid: int, stop_signal: int = signal.SIGTERM) -> None:
    try:
        process = psutil.Process(pid)
        record = ProcessRecord(name, pid, process.create_time(), process.cmdline(), stop_signal)
    except psutil.NoSuchProcess:
        return  # already gone: nothing to reclaim later
    run_dir.mkdir(parents=True, exist_ok=True)
    partial = run_dir / f".{name}.json.tmp"
    partial.write_bytes(orjson.dumps(asdict(record)))
    partial.replace(run_dir / f"{name}.json")  # a reader never sees half a record


def remove(run_dir: Path, name: str) -> None:
    (run_dir / f"{name}.json").unlink(missing_ok=True)


def read(run_dir: Path, name: str) -> ProcessRecord | None:
    path = run_dir / f"{name}.json"
    try:
        record = ProcessRecord(**orjson.loads(path.read_bytes()))
    except FileNotFoundError:
        return None
    except (orjson.JSONDecodeError, TypeError):
        record = None
    if record is None or not isinstance(record.pid, int) or not isinstance(record.started, float):
        # A record from another version or a torn disk: it names nothing we can trust.
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    return record
