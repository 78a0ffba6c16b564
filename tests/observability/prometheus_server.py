"""A real Prometheus (Debian's `prometheus` binary) started for a test, and its HTTP API."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from order_service.devstack.ports import free_port

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def tool(name: str) -> str:
    """The path of a Debian-packaged tool; a missing tool fails the test, it is never skipped."""
    path = shutil.which(name)
    assert path, f"{name} not found: run scripts/system-deps.sh (Debian prometheus packages)"
    return path


class QueryRejected(AssertionError):
    pass


@dataclass(frozen=True)
class Prometheus:
    url: str

    def _get(self, path: str, params: dict[str, str]) -> Any:
        response = httpx.get(f"{self.url}{path}", params=params, timeout=10.0)
        body = response.json()
        if body.get("status") != "success":
            raise QueryRejected(f"{params.get('query')!r}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._get("/api/v1/query", {"query": expr})["result"]
        return result

    def query_range(self, expr: str, start: float, end: float, step: str = "1s") -> list[Any]:
        params = {"query": expr, "start": str(start), "end": str(end), "step": step}
        result: list[Any] = self._get("/api/v1/query_range", params)["result"]
        return result

    def exemplars(self, expr: str, start: float, end: float) -> list[Any]:
        params = {"query": expr, "start": str(start), "end": str(end)}
        result: list[Any] = self._get("/api/v1/query_exemplars", params)
        return result

    def metric_names(self) -> list[str]:
        names: list[str] = self._get("/api/v1/label/__name__/values", {})
        return names

    def targets_up(self) -> dict[str, str]:
        data = self._get("/api/v1/targets", {})
        return {t["labels"]["job"]: t["health"] for t in data["activeTargets"]}


@contextmanager
def running_prometheus(workdir: Path, config: dict[str, Any]) -> Iterator[Prometheus]:
    """Starts Prometheus with `config` on a free port; stops it (and only it) afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    log = (workdir / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            tool("prometheus"),
            f"--config.file={config_path}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--enable-feature=exemplar-storage",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, workdir / "prometheus.log")
        yield Prometheus(url)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"prometheus exited: {log_path.read_text(errors='replace')}")
        try:
            if httpx.get(f"{url}/-/ready", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"prometheus not ready after 30s: {log_path.read_text(errors='replace')}")
