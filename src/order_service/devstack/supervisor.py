"""`order-service dev`: PostgreSQL + Kafka broker + migrations + api, relay and worker.

Every child is ours: Ctrl-C, SIGTERM, a closed terminal's SIGHUP (or any child dying) stops
them all and frees every port. If the supervisor itself is killed, each child gets its parent
death signal (`pdeathsig.py`), and the next run reclaims anything still recorded (`reaper.py`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from order_service.devstack import pidfiles, reaper
from order_service.devstack.broker import Broker, BrokerStartError, TansuBroker
from order_service.devstack.kafka import KafkaBroker
from order_service.devstack.kafka_runtime import KafkaRuntimeError
from order_service.devstack.pdeathsig import die_with_parent
from order_service.devstack.ports import PortInUse, ensure_free
from order_service.devstack.postgres import EmbeddedPostgres

_console = Console(stderr=True)
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class DevStackError(RuntimeError):
    pass


class _Stopped(Exception):
    """A stop signal arrived while the stack was still starting."""


def _say(message: str) -> None:
    # After a closed terminal's SIGHUP every write to it fails (EIO); the stop must go on.
    with contextlib.suppress(OSError):
        _console.print(message, soft_wrap=True)  # the banner keeps its own line breaks


def _wait_http_ok(
    url: str, timeout_s: float, process: subprocess.Popen[bytes], stopping: Callable[[], bool]
) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if stopping():
            raise _Stopped
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


@dataclass
class DevStack:
    data_dir: str = ".dev"
    postgres_port: int = 5432
    kafka_port: int = 9092
    api_port: int = 8000
    relay_port: int = 8001
    worker_port: int = 8002
    host: str = "127.0.0.1"
    broker: str = "tansu"  # or "kafka": Apache Kafka from the cached runtime
    _children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _stopping: bool = False

    @property
    def _base(self) -> Path:
        return Path(self.data_dir).resolve()

    @property
    def _run_dir(self) -> Path:
        return self._base / "run"  # a pid record per process (pidfiles.py)

    def _check_ports(self) -> None:
        for what, port in (
            ("PostgreSQL", self.postgres_port),
            ("the Kafka broker", self.kafka_port),
            *((("Kafka's controller", self.kafka_port + 1),) if self.broker == "kafka" else ()),
            ("the api", self.api_port),
            ("the relay", self.relay_port),
            ("the worker", self.worker_port),
        ):
            try:
                ensure_free(self.host, port, what)
            except PortInUse as exc:
                raise DevStackError(str(exc)) from None

    def _make_broker(self, base: Path) -> Broker:
        if self.broker == "tansu":
            return TansuBroker(port=self.kafka_port, host=self.host, log_path=base / "tansu.log")
        if self.broker == "kafka":
            return KafkaBroker(
                base / "kafka",  # kept, like PostgreSQL's data: topics survive a restart
                port=self.kafka_port,
                controller_port=self.kafka_port + 1,
                host=self.host,
                log_path=base / "kafka.log",
            )
        raise DevStackError(f"DEV_BROKER (--broker) must be tansu or kafka, not {self.broker!r}")

    def _env(self, postgres: EmbeddedPostgres, broker: Broker) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            POSTGRES_DSN=postgres.dsn(),
            KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers,
            # Tansu's memory engine refuses InitProducerId (DESIGN.md §7); Apache Kafka runs
            # the production setting.
            KAFKA_ENABLE_IDEMPOTENCE=str(self.broker == "kafka").lower(),
            LOG_FORMAT=env.get("LOG_FORMAT", "console"),
            ENVIRONMENT=env.get("ENVIRONMENT", "dev"),
        )
        return env

    def _spawn(self, name: str, port: int, env: dict[str, str]) -> None:
        cli = [
            sys.executable,
            "-m",
            "order_service",
            name,
            "--host",
            self.host,
            "--port",
            str(port),
        ]
        # A session of its own: the terminal's signals reach only the supervisor, which stops
        # the services in order and with SIGTERM (they drain), not all at once.
        self._children[name] = subprocess.Popen(
            cli, env=env, start_new_session=True, preexec_fn=die_with_parent(signal.SIGTERM)
        )
        pidfiles.write(self._run_dir, name, self._children[name].pid)

    def _reclaim(self) -> None:
        try:
            leftovers = reaper.reclaim(self._base)
        except reaper.StackRunning as exc:
            raise DevStackError(str(exc)) from None
        if leftovers:
            stopped = ", ".join(f"{lo.name} (pid {lo.process.pid})" for lo in leftovers)
            _say(f"[bold]reclaimed[/] what a previous `make dev` left running: {stopped}")

    def run(self) -> int:
        base = self._base
        broker = self._make_broker(base)
        self._reclaim()
        self._check_ports()
        postgres = EmbeddedPostgres(base / "postgres", port=self.postgres_port, host=self.host)
        previous = {s: signal.getsignal(s) for s in _STOP_SIGNALS}
        for sig, handler in previous.items():
            # An ignored SIGHUP is `nohup make dev`: the user asked to outlive the terminal.
            if sig != signal.SIGHUP or handler != signal.SIG_IGN:
                signal.signal(sig, self._on_signal)
        pidfiles.write(self._run_dir, "supervisor", os.getpid())
        try:
            self._start(base, postgres, broker)
            self._print_banner(postgres, broker)
            return self._watch()
        except _Stopped:
            return 0
        finally:
            self._stop_children()
            broker.stop()
            pidfiles.remove(self._run_dir, "broker")
            postgres.stop()
            pidfiles.remove(self._run_dir, "postgres")
            pidfiles.remove(self._run_dir, "supervisor")
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            _say("[bold]stopped[/]: every process ended, every port freed")

    def _start(self, base: Path, postgres: EmbeddedPostgres, broker: Broker) -> None:
        _say(
            f"[bold]starting PostgreSQL[/] on {self.host}:{self.postgres_port} "
            f"(data in {base / 'postgres'})"
        )
        postgres.start()
        if postgres.pid is not None:
            pidfiles.write(self._run_dir, "postgres", postgres.pid, signal.SIGINT)
        self._check_stopping()
        name = "Apache Kafka" if self.broker == "kafka" else "Tansu"
        _say(f"[bold]starting Kafka broker ({name})[/] on {broker.bootstrap_servers}")
        try:
            broker.start()
        except (BrokerStartError, KafkaRuntimeError) as exc:
            raise DevStackError(str(exc)) from None
        if broker.pid is not None:
            pidfiles.write(self._run_dir, "broker", broker.pid)
        self._check_stopping()
        env = self._env(postgres, broker)
        _say("[bold]applying migrations[/]")
        migrate = subprocess.run(
            [sys.executable, "-m", "order_service", "migrate"],
            env=env,
            preexec_fn=die_with_parent(signal.SIGTERM),
        )
        self._check_stopping()
        if migrate.returncode != 0:
            raise DevStackError("migrations failed (see above)")
        ports = {"api": self.api_port, "relay": self.relay_port, "worker": self.worker_port}
        for name, port in ports.items():
            self._spawn(name, port, env)
        for name, port in ports.items():
            url = f"http://{self.host}:{port}/readyz"
            if not _wait_http_ok(url, 60, self._children[name], lambda: self._stopping):
                raise DevStackError(f"{name} did not become ready at {url}")

    def _on_signal(self, signum: int, _frame: object) -> None:
        # SIGHUP too: a closed terminal must stop the stack as cleanly as Ctrl-C does.
        self._stopping = True

    def _check_stopping(self) -> None:
        if self._stopping:
            raise _Stopped

    def _watch(self) -> int:
        while not self._stopping:
            for name, child in self._children.items():
                if child.poll() is not None:
                    _say(f"[red]{name} exited with {child.returncode}; stopping[/]")
                    return 1
            time.sleep(0.3)
        return 0

    def _stop_children(self) -> None:
        for child in self._children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for name, child in self._children.items():
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            pidfiles.remove(self._run_dir, name)

    def _print_banner(self, postgres: EmbeddedPostgres, broker: Broker) -> None:
        h = self.host
        _say(f"""
[bold green]order-service is up[/]
  API          http://{h}:{self.api_port}   (docs: http://{h}:{self.api_port}/docs)
  API metrics  http://{h}:{self.api_port}/metrics
  relay        http://{h}:{self.relay_port}/metrics   /readyz
  worker       http://{h}:{self.worker_port}/metrics   /readyz
  PostgreSQL   {postgres.dsn()}
  Kafka        {broker.bootstrap_servers}   topic orders.created

Try it:
  curl -X POST http://{h}:{self.api_port}/order \\
    -H "Content-Type: application/json" \\
    -d '{{"item": "book", "quantity": 2}}'

The lifecycle:
  PUT /stock/{{item}} {{"available": N}}   makes an item stock-managed: its orders are
                                     CONFIRMED while units last, then REJECTED out_of_stock
  POST /orders/{{id}}/cancel           CANCELLED; a confirmed order's units go back
  .venv/bin/order-service events     the status events on orders.status, as they happened
  .venv/bin/order-service doctor     checks the whole stack

Traces: run an OpenTelemetry Collector (deploy/otel/otel-collector-config.yaml)
and start with OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 to export spans.
Ctrl-C stops everything.
""")
