"""Child processes for the bench: start with a log file, wait until ready, stop, sample RSS."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from order_service.devstack.ports import wait_for_listener

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"


class StartError(RuntimeError):
    pass


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    log_path: Path
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def pid(self) -> int:
        assert self._process is not None, f"{self.name} is not running"
        return self._process.pid

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                list(self.argv),
                cwd=ROOT,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _check_alive(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-1500:]
            raise StartError(f"{self.name} exited with {self._process.returncode}:\n{tail}")

    def wait_listening(self, port: int, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._check_alive()
            if wait_for_listener("127.0.0.1", port, 0.2):
                return
        raise StartError(f"{self.name} did not listen on port {port} within {timeout_s:.0f}s")

    def wait_ready(self, url: str, timeout_s: float = 30.0) -> None:
        """Poll `url` until it answers 200 (a readiness endpoint)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                with urllib.request.urlopen(url, timeout=1.0) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise StartError(f"{self.name} was not ready at {url} within {timeout_s:.0f}s")

    def wait_exit(self, timeout_s: float) -> None:
        """For one-shot commands (migrate): wait, and fail loudly unless it exited 0."""
        assert self._process is not None
        try:
            code = self._process.wait(timeout_s)
        except subprocess.TimeoutExpired as exc:
            self.stop()
            raise StartError(f"{self.name} did not finish within {timeout_s:.0f}s") from exc
        if code != 0:
            self._check_alive()

    def stop(self, timeout_s: float = 15.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def python_module(module: str, *args: str) -> list[str]:
    return [str(BIN / "python"), "-m", module, *args]


def uvicorn_argv(app: str, port: int) -> list[str]:
    """Serve `app` as `order-service api` serves ours: uvloop, httptools, 1 worker, no logs."""
    return python_module(
        "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
        "--lifespan", "on",
    )  # fmt: skip


def process_tree(pid: int) -> list[psutil.Process]:
    """The process and its descendants now; empty when it is gone."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_sum(pid: int, measure: Callable[[psutil.Process], float]) -> float:
    """`measure` summed over the process tree, skipping processes that exit meanwhile."""
    total = 0.0
    for process in process_tree(pid):
        try:
            total += measure(process)
        except psutil.NoSuchProcess:
            continue
    return total


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def cpu_snapshot(pids: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds so far (user + system, children included) of each named process tree."""
    return {name: tree_sum(pid, _cpu_s) for name, pid in pids.items()}


def cpu_per_unit(
    before: Mapping[str, float], after: Mapping[str, float], units: int
) -> dict[str, float]:
    """Microseconds of CPU per unit of work (an order, an event) between two snapshots."""
    return {name: (after[name] - before.get(name, 0.0)) / max(1, units) * 1e6 for name in after}


def _tree_rss(pid: int) -> int:
    return int(tree_sum(pid, lambda process: process.memory_info().rss))


class RssSampler:
    """Peak RSS per named process tree, sampled every `interval_s` in a background thread.

    A tree's RSS is the sum over its processes, so PostgreSQL's shared buffers count once per
    backend that touched them: an upper bound, not its private memory.
    """

    def __init__(self, pids: Mapping[str, int], interval_s: float = 0.25) -> None:
        self._pids = dict(pids)
        self._interval_s = interval_s
        self.peak: dict[str, int] = dict.fromkeys(self._pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.sample()

    def sample(self) -> None:
        for name, pid in self._pids.items():
            self.peak[name] = max(self.peak[name], _tree_rss(pid))

    def __enter__(self) -> RssSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def peak_mb(self) -> dict[str, float]:
        return {name: round(rss / 2**20, 1) for name, rss in self.peak.items()}
