"""The service's processes run for real (`order-service api|relay|worker`) for the tests that
scrape them with a real Prometheus, and a prober standing in for the kubelet."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from order_service.config import Settings
from tests.observability.prometheus_server import REPO, Prometheus

CLI = REPO / ".venv" / "bin" / "order-service"


class Process:
    """A child process with its log in a file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.log_path = workdir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            args, env=env, cwd=workdir, stdout=self._log, stderr=subprocess.STDOUT
        )

    @classmethod
    def service(cls, command: str, port: int, env: dict[str, str], workdir: Path) -> Process:
        """`order-service <command>` listening on 127.0.0.1:`port`."""
        assert CLI.exists(), f"{CLI} missing: run `make install`"
        args = [str(CLI), command, "--host", "127.0.0.1", "--port", str(port)]
        return cls(command, args, env, workdir)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def wait_http(self, url: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"{self.name} exited:\n{self.log()}"
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name} not serving {url} after {timeout_s}s:\n{self.log()}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


class ReadinessProber:
    """GETs each `/readyz` every `interval_s` in a thread, as the kubelet would: the
    `dependency_up` gauges are set by those checks and exist only once probed."""

    def __init__(self, urls: list[str], interval_s: float = 0.5) -> None:
        self._urls = urls
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ReadinessProber:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with httpx.Client(timeout=3) as client:
            while not self._stop.wait(self._interval_s):
                for url in self._urls:
                    # A probe that times out is what an outage looks like: carry on.
                    with contextlib.suppress(httpx.HTTPError):
                        client.get(url)


def service_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    for name, value in settings.model_dump(exclude_none=True).items():
        env[name.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def scrape_job(name: str, port: int) -> dict[str, Any]:
    return {"job_name": name, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}


def wait_for(prom: Prometheus, expr: str, timeout_s: float, what: str) -> list[dict[str, Any]]:
    """Polls the instant query until it returns series; returns them."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := prom.query(expr):
            return result
        time.sleep(0.5)
    raise AssertionError(f"{what}: `{expr}` still empty after {timeout_s}s")
