"""Run the real `order-service` processes (api, relay, worker) as OS processes for e2e tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from order_service.config import Settings
from order_service.devstack.ports import free_port


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that makes a child process see the same Settings as the test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "POSTGRES", "KAFKA"))}
    env.update(
        ENVIRONMENT="test",
        POSTGRES_DSN=settings.postgres_dsn,
        KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers,
        KAFKA_ORDER_TOPIC=settings.kafka_order_topic,
        KAFKA_STATUS_TOPIC=settings.kafka_status_topic,
        KAFKA_CONSUMER_GROUP=settings.kafka_consumer_group,
        # The production producer: make_settings turns idempotence on.
        KAFKA_ENABLE_IDEMPOTENCE=str(settings.kafka_enable_idempotence).lower(),
        RELAY_POLL_INTERVAL_S=str(settings.relay_poll_interval_s),
        SHUTDOWN_TIMEOUT_S=str(settings.shutdown_timeout_s),
        STARTUP_TIMEOUT_S="20",
        LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def wait_ok(
    url: str, timeout_s: float = 30.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise TimeoutError(f"the process behind {url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout_s}s: {last}")


@dataclass
class Service:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Stack:
    settings: Settings
    workdir: Path
    services: list[Service] = field(default_factory=list)

    def start(self, name: str, *, wait: bool = True, **env: str) -> Service:
        port = free_port()
        log = self.workdir / f"{name}-{port}.log"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "order_service",
                name,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=settings_env(self.settings, **env),
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        service = Service(name, port, process, log)
        self.services.append(service)
        if wait:
            try:
                wait_ok(f"{service.url}/readyz", process=process)
            except TimeoutError:
                service.stop(signal.SIGKILL)
                raise AssertionError(f"{name} did not start:\n{service.output()}") from None
        return service

    def stop_all(self) -> None:
        for service in self.services:
            if service.process.poll() is None:
                service.stop()


@contextmanager
def running_stack(settings: Settings, workdir: Path) -> Iterator[Stack]:
    stack = Stack(settings, workdir)
    try:
        yield stack
    finally:
        stack.stop_all()
